"""Configuration from defaults, a JSON file and flags (in-process, no server)."""

from __future__ import annotations

import json

import pytest

from tiktok_sandbox.__main__ import parse_args
from tiktok_sandbox.config import DEMO_APP, ConfigError, Tunables


def test_defaults_are_the_demo_app_and_three_advertisers(tmp_path):
    config, host, port = parse_args(["--data-dir", str(tmp_path)])
    assert (host, port) == ("127.0.0.1", 9100)
    assert config.apps == (DEMO_APP,)
    assert DEMO_APP.redirect_uris == ("http://127.0.0.1:8000/destinations/tiktok/callback/",)
    assert len(config.advertisers) >= 3
    assert all(len(a.advertiser_id) == 19 for a in config.advertisers)
    assert config.tunables.batch_limit == 10_000 and not config.enable_control


def test_a_config_file_sets_apps_advertisers_and_switches_and_flags_win(tmp_path):
    path = tmp_path / "sandbox.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "app_id": "123",
                        "secret": "s",
                        "name": "Mine",
                        "redirect_uris": ["http://x/cb/"],
                    }
                ],
                "advertisers": [{"advertiser_id": "456", "advertiser_name": "Shop"}],
                "qps": 3,
                "match_rate": 0.5,
            }
        )
    )
    config, _, _ = parse_args(["--config", str(path), "--qps", "7", "--processing-delay-s", "0"])
    assert config.app("123").name == "Mine" and config.advertiser("456").advertiser_name == "Shop"
    assert config.tunables.qps == 7 and config.tunables.match_rate == 0.5
    assert config.tunables.processing_delay_s == 0


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"apps": [{"app_id": "abc", "secret": "s"}]}),
        json.dumps(
            {"advertisers": [{"advertiser_id": "12345678901234567890", "advertiser_name": "x"}]}
        ),
        json.dumps({"match_rate": 7}),
        json.dumps({"surprise": 1}),
    ],
)
def test_a_bad_config_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        parse_args(["--config", str(path)])


def test_control_needs_a_key():
    with pytest.raises(SystemExit):
        parse_args(["--enable-control"])


def test_switch_updates_check_types():
    assert Tunables().updated({"drop_rate": 0.25}).drop_rate == 0.25
    with pytest.raises(ConfigError):
        Tunables().updated({"batch_limit": 0})


def test_the_per_minute_limit_and_lost_answers_have_flags(tmp_path):
    config, _, _ = parse_args(
        ["--data-dir", str(tmp_path), "--qpm", "600", "--drop-answer-rate", "0.25"]
    )
    assert config.tunables.qpm == 600 and config.tunables.drop_answer_rate == 0.25
    defaults = Tunables()
    assert defaults.qpm == 0 and defaults.token_ttl_s is None
    assert defaults.duplicate_window_s == 0 and defaults.batch_limit_code == 40011
