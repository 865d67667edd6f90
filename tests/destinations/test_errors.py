"""TikTok's whole code table: every code TikTok's SDK lists is known, and each class of
code becomes the error that says what to do."""

from __future__ import annotations

import pytest

from destinations.tiktok import errors as e

# The numeric codes in TikTok's official SDK code list (tiktok/tiktok-business-api-sdk,
# `tiktok_code.py`), transcribed independently of errors.py as this test's oracle.
SDK_CODES = (
    [0, 20001, 40000, 40001, 40002, 40003, 40006, 40007, 40008, 40009, 40010, 40011, 40012]
    + [40013, 40014, 40016, 40050, 40051, 40052, 40053, 40061, 40062, 40063]
    + [40100, 40101, 40102, 40103, 40104, 40105, 40106, 40107, 40108, 40109, 40110, 40112]
    + [40113, 40114, 40115, 40116, 40117, 40118, 40119, 40120, 40121, 40122, 40124, 40125]
    + [40126, 40127, 40128, 40129, 40130, 40131, 40132, 41001, 41002, 41013]
    + [40200, 40201, 40202, 40300, 40301, 40302, 40309, 40400, 40502, 40700]
    + list(range(40900, 40917))
    + [41000, 50000, 50002]
    + list(range(51000, 51013))
    + list(range(51014, 51021))
    + list(range(51030, 51068))
    + [51099, 52000, 52001, 52002, 52003, 52100, 52101, 52102, 52103]
    + [52201, 52202, 52203, 52204, 53102, 53103, 60001, 61000, 70001]
)


def test_every_code_in_tiktoks_sdk_list_is_in_the_table_with_a_meaning():
    missing = [code for code in SDK_CODES if code not in e.CODES]
    assert missing == []
    for code in SDK_CODES:
        entry = e.CODES[code]
        assert entry.code == code and entry.name and entry.meaning
        assert isinstance(entry.outcome, e.Outcome)


def test_the_codes_the_spec_adds_are_in_the_table_too():
    assert e.outcome_of(40133) == e.Outcome.RATE_LIMIT
    assert e.outcome_of(51305) == e.Outcome.TRANSIENT


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        # permanent: stop and show TikTok's message
        (40000, "invalid parameter", e.PermanentError),
        (40002, "custom_audience_name is required", e.PermanentError),
        (40012, "nothing to update", e.PermanentError),
        (41000, "blocked", e.PermanentError),
        (41234, "something new", e.PermanentError),  # not in TikTok's list
        (59999, "something new", e.PermanentError),  # not in TikTok's list either
        # retry later
        (40002, "Audience is processing, retry later", e.StillProcessingError),
        (40200, "task error", e.StillProcessingError),
        (40201, "not ready", e.StillProcessingError),
        (40202, "write conflict", e.StillProcessingError),
        # permissions, missing objects
        (40001, "no permission", e.NoPermissionError),
        (40003, "forbidden", e.NoPermissionError),
        (40301, "advertiser role error", e.NoPermissionError),
        (40007, "object does not exist", e.NotFoundError),
        (40300, "advertiser does not exist", e.NotFoundError),
        (40302, "customer advertiser does not exist", e.NotFoundError),
        (40905, "file does not exist", e.NotFoundError),
        # an audience TikTok no longer knows
        (40002, "invalid audience ID", e.AudienceNotFoundError),
        (40002, "audience_ids: Invalid audience id 7123", e.AudienceNotFoundError),
        (40007, "custom_audience_ids: audience 7123 does not exist.", e.AudienceNotFoundError),
        # split the batch
        (40011, "too many ids", e.BatchTooLargeError),
        (40061, "invalid batch size", e.BatchTooLargeError),
        # duplicated request
        (40050, "duplicated request", e.DuplicatedRequestError),
        # rate limits
        (40100, "qps", e.RateLimitedError),
        (40016, "frequency control", e.RateLimitedError),
        (40132, "request frequency limited", e.RateLimitedError),
        (40133, "advertiser qps", e.RateLimitedError),
        (61000, "too many requests", e.RateLimitedError),
        # reauthorize
        (40102, "expired", e.ReauthorizationRequired),
        (40105, "invalid", e.ReauthorizationRequired),
        (40106, "not covered", e.ReauthorizationRequired),
        (40114, "advertiser logged out", e.ReauthorizationRequired),
        (40119, "not covered", e.ReauthorizationRequired),
        (40130, "scope not authorized", e.ReauthorizationRequired),
        # product bugs and configuration
        (40104, "missing", e.AppConfigurationError),
        (40117, "app may not call this", e.AppConfigurationError),
        (40900, "md5 mismatch", e.AppConfigurationError),
        (40909, "bad calculate_type", e.AppConfigurationError),
        (41001, "interface offline", e.AppConfigurationError),
        # TikTok's side: retry with backoff
        (50000, "server error", e.TransientError),
        (50002, "timeout", e.TransientError),
        (51003, "dmp error", e.TransientError),
        (51305, "maintenance", e.TransientError),
        (52103, "cache timeout", e.TransientError),
        (60001, "maintenance", e.TransientError),
    ],
)
def test_each_class_of_code_maps_to_the_error_that_says_what_to_do(code, message, expected):
    error = e.error_for_code(code, message, request_id="rid")
    assert type(error) is expected
    assert (error.code, error.message, error.request_id) == (code, message, "rid")


def test_a_parameter_error_that_mentions_an_audience_is_not_mistaken_for_a_missing_one():
    error = e.error_for_code(40002, "custom_audience_name: must be at most 128 characters.")
    assert type(error) is e.PermanentError


@pytest.mark.parametrize("code", [40101, 40110, 40112, 40115, 40116])
def test_bad_app_or_used_code_restarts_authorization_during_oauth(code):
    assert isinstance(
        e.error_for_code(code, "x", during_oauth=True), e.AuthorizationRestartRequired
    )
    assert isinstance(e.error_for_code(code, "x"), e.AppConfigurationError)


@pytest.mark.parametrize("code", [0, 20001])
def test_success_codes_are_success_and_not_errors(code):
    assert e.is_success(code)
    with pytest.raises(ValueError):
        e.error_for_code(code, "OK")


def test_retryable_classes_say_they_are_not_permanent():
    assert not e.RateLimitedError("x").permanent
    assert not e.StillProcessingError("x").permanent
    assert not e.TransientError("x").permanent
    for permanent in (
        e.BatchTooLargeError,
        e.DuplicatedRequestError,
        e.ReauthorizationRequired,
        e.AudienceNotFoundError,
        e.NoPermissionError,
    ):
        assert permanent("x").permanent


def test_every_outcome_but_success_has_an_error_class():
    for entry in e.CODES.values():
        if entry.outcome in (e.Outcome.SUCCESS, e.Outcome.PARTIAL_SUCCESS):
            continue
        error = e.error_for_code(entry.code, "m")
        assert isinstance(error, e.TikTokError)
        assert error.permanent is (
            entry.outcome not in (e.Outcome.TRANSIENT, e.Outcome.RATE_LIMIT, e.Outcome.RETRY_LATER)
        )


def test_an_audience_not_found_error_names_its_audiences():
    error = e.AudienceNotFoundError("invalid audience ID", code=40002, audience_ids=("71",))
    assert error.audience_ids == ("71",) and isinstance(error, e.NotFoundError)
