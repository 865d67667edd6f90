"""Sandbox configuration: apps, advertisers and tunables, from defaults, a JSON file and flags."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ID_RE = re.compile(r"^[1-9][0-9]{0,18}$")


class ConfigError(ValueError):
    """The configuration file or a flag holds a value the sandbox cannot use."""


@dataclass(frozen=True)
class App:
    app_id: str
    secret: str
    name: str
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class Advertiser:
    advertiser_id: str
    advertiser_name: str


@dataclass(frozen=True)
class Tunables:
    """The switches that can also be changed at run time through the control endpoint."""

    qps: int = 10
    # Requests per minute per app (TikTok's basic tier: 600); 0 means no per-minute limit.
    qpm: int = 0
    batch_limit: int = 10_000
    # The code a batch over the limit gets: 40011 (too many ids) or 40061 (invalid batch size).
    batch_limit_code: int = 40011
    processing_delay_s: float = 10.0
    match_rate: float = 0.7
    error_rate: float = 0.0
    html_502_rate: float = 0.0
    drop_rate: float = 0.0
    # The request is carried out, then the connection is dropped: the answer is lost.
    drop_answer_rate: float = 0.0
    # A successful answer comes with code 20001 (partial success) instead of 0.
    partial_ok_rate: float = 0.0
    latency_ms: int = 0
    # An identical segment/audience/ or segment/mapping/ request from the same app within
    # this many seconds of one that succeeded answers 40050 (duplicated request), changing
    # nothing; 0 turns the check off.
    duplicate_window_s: float = 0.0
    # Tokens older than this answer 40102 (access token expired); None: they never expire.
    token_ttl_s: float | None = None
    force_processing: bool = False
    # Faults only hit these endpoints (e.g. ["segment/mapping/"]); empty means every endpoint.
    fault_endpoints: tuple[str, ...] = ()
    # Stop injecting faults after this many (deterministic retry tests); None means no cap.
    fault_limit: int | None = None
    # Advertisers where the authorizing user only has the Analyst role: writes answer 40001.
    read_only_advertisers: tuple[str, ...] = ()

    def updated(self, changes: dict[str, Any]) -> Tunables:
        known = {f for f in self.__dataclass_fields__}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown switch(es): {', '.join(unknown)}")
        values = asdict(self)
        for name, value in changes.items():
            values[name] = _coerce_switch(name, value)
        return Tunables(**values)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["fault_endpoints"] = list(self.fault_endpoints)
        values["read_only_advertisers"] = list(self.read_only_advertisers)
        return values


def _coerce_switch(name: str, value: Any) -> Any:
    if name in (
        "error_rate",
        "html_502_rate",
        "drop_rate",
        "drop_answer_rate",
        "partial_ok_rate",
        "match_rate",
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"{name} must be a number from 0 to 1")
        return float(value)
    if name in ("processing_delay_s", "duplicate_window_s"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name} must be a number of seconds, 0 or more")
        return float(value)
    if name == "token_ttl_s":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ConfigError("token_ttl_s must be a number of seconds, 0 or more, or null")
        return None if value is None else float(value)
    if name == "batch_limit_code":
        if value not in (40011, 40061) or isinstance(value, bool):
            raise ConfigError("batch_limit_code must be 40011 or 40061")
        return value
    if name in ("qps", "qpm", "batch_limit", "latency_ms"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a whole number, 0 or more (qps/qpm 0 = no limit)")
        if name == "batch_limit" and value < 1:
            raise ConfigError("batch_limit must be at least 1")
        return value
    if name == "fault_limit":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ConfigError("fault_limit must be a whole number, 0 or more, or null")
        return value
    if name == "force_processing":
        if not isinstance(value, bool):
            raise ConfigError("force_processing must be true or false")
        return value
    if name in ("fault_endpoints", "read_only_advertisers"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings")
        return tuple(value)
    raise ConfigError(f"unknown switch: {name}")  # pragma: no cover - guarded by updated()


DEMO_APP = App(
    app_id="7300000000000000001",
    secret="sandbox-demo-secret",
    name="Audience Builder (demo)",
    redirect_uris=("http://127.0.0.1:8000/destinations/tiktok/callback/",),
)

DEMO_ADVERTISERS = (
    Advertiser("7000000000000000001", "Northwind Outdoor Co."),
    Advertiser("7000000000000000002", "Lumen Beauty EU"),
    Advertiser("7000000000000000003", "Harbor Coffee Roasters"),
)


@dataclass(frozen=True)
class Config:
    apps: tuple[App, ...] = (DEMO_APP,)
    advertisers: tuple[Advertiser, ...] = DEMO_ADVERTISERS
    tunables: Tunables = field(default_factory=Tunables)
    data_dir: Path = Path("var/sandbox")
    enable_control: bool = False
    control_key: str = ""
    enable_inspection: bool = False
    quiet: bool = False

    def app(self, app_id: str) -> App | None:
        return next((a for a in self.apps if a.app_id == app_id), None)

    def advertiser(self, advertiser_id: str) -> Advertiser | None:
        return next((a for a in self.advertisers if a.advertiser_id == advertiser_id), None)


def load_config_file(path: Path, base: Config) -> Config:
    """Read a JSON file: {"apps": [...], "advertisers": [...], "data_dir": ..., tunables...}."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    config = base
    if "apps" in raw:
        config = replace(config, apps=tuple(_parse_app(a) for a in _list(raw.pop("apps"), "apps")))
    if "advertisers" in raw:
        advertisers = tuple(
            _parse_advertiser(a) for a in _list(raw.pop("advertisers"), "advertisers")
        )
        config = replace(config, advertisers=advertisers)
    if "data_dir" in raw:
        config = replace(config, data_dir=Path(str(raw.pop("data_dir"))))
    config = replace(config, tunables=config.tunables.updated(raw))
    validate(config)
    return config


def validate(config: Config) -> None:
    if not config.apps:
        raise ConfigError("at least one app is needed")
    if not config.advertisers:
        raise ConfigError("at least one advertiser is needed")
    for ids, what in (
        ([a.app_id for a in config.apps], "app_id"),
        ([a.advertiser_id for a in config.advertisers], "advertiser_id"),
    ):
        if len(set(ids)) != len(ids):
            raise ConfigError(f"duplicate {what} in config")


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{name} must be a non-empty list")
    return value


def _parse_app(raw: Any) -> App:
    if not isinstance(raw, dict):
        raise ConfigError("each app must be an object")
    app_id, secret = str(raw.get("app_id", "")), raw.get("secret")
    if not ID_RE.match(app_id):
        raise ConfigError(f"app_id {app_id!r} must be a string of up to 19 digits")
    if not isinstance(secret, str) or not secret:
        raise ConfigError(f"app {app_id}: secret must be a non-empty string")
    uris = raw.get("redirect_uris", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise ConfigError(f"app {app_id}: redirect_uris must be a list of strings")
    return App(app_id, secret, str(raw.get("name") or f"App {app_id}"), tuple(uris))


def _parse_advertiser(raw: Any) -> Advertiser:
    if not isinstance(raw, dict):
        raise ConfigError("each advertiser must be an object")
    advertiser_id = str(raw.get("advertiser_id", ""))
    if not ID_RE.match(advertiser_id):
        raise ConfigError(f"advertiser_id {advertiser_id!r} must be a string of up to 19 digits")
    name = raw.get("advertiser_name") or raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"advertiser {advertiser_id}: advertiser_name is required")
    return Advertiser(advertiser_id, name)
