from __future__ import annotations

import pytest

from destinations.tiktok import errors as e


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (40000, "invalid parameter", e.PermanentError),
        (40002, "custom_audience_name is required", e.PermanentError),
        (40002, "Audience is processing, retry later", e.StillProcessingError),
        (40001, "no permission", e.NoPermissionError),
        (40007, "object does not exist", e.NotFoundError),
        (40011, "too many ids", e.BatchTooLargeError),
        (40100, "qps", e.RateLimitedError),
        (40016, "qpm", e.RateLimitedError),
        (40133, "advertiser qps", e.RateLimitedError),
        (40102, "expired", e.ReauthorizationRequired),
        (40104, "missing", e.AppConfigurationError),
        (40105, "invalid", e.ReauthorizationRequired),
        (40106, "not covered", e.ReauthorizationRequired),
        (40119, "not covered", e.ReauthorizationRequired),
        (40200, "task error", e.StillProcessingError),
        (40201, "not ready", e.StillProcessingError),
        (40202, "write conflict", e.StillProcessingError),
        (40300, "advertiser does not exist", e.NotFoundError),
        (40301, "advertiser does not exist", e.NotFoundError),
        (40900, "md5 mismatch", e.AppConfigurationError),
        (40909, "bad calculate_type", e.AppConfigurationError),
        (50000, "server error", e.TransientError),
        (50002, "server error", e.TransientError),
        (51305, "maintenance", e.TransientError),
        (60001, "maintenance", e.TransientError),
        (41234, "something new", e.PermanentError),
    ],
)
def test_each_documented_code_maps_to_the_error_that_says_what_to_do(code, message, expected):
    error = e.error_for_code(code, message, request_id="rid")
    assert type(error) is expected
    assert (error.code, error.message, error.request_id) == (code, message, "rid")


@pytest.mark.parametrize("code", [40101, 40110, 40115])
def test_bad_app_or_used_code_restarts_authorization_during_oauth(code):
    assert isinstance(
        e.error_for_code(code, "x", during_oauth=True), e.AuthorizationRestartRequired
    )
    assert isinstance(e.error_for_code(code, "x"), e.AppConfigurationError)


def test_retryable_classes_say_they_are_not_permanent():
    assert not e.RateLimitedError("x").permanent
    assert not e.StillProcessingError("x").permanent
    assert e.BatchTooLargeError("x").permanent
    assert e.ReauthorizationRequired("x").permanent
