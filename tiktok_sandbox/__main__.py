"""`python -m tiktok_sandbox --port 9100 --data-dir var/sandbox [--config file] ...`"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from dataclasses import replace
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from .config import Config, ConfigError, load_config_file, validate
from .runtime import Sandbox
from .server import create_app

SWITCH_FLAGS = {
    "qps": int,
    "qpm": int,
    "batch_limit": int,
    "processing_delay_s": float,
    "match_rate": float,
    "error_rate": float,
    "html_502_rate": float,
    "drop_rate": float,
    "drop_answer_rate": float,
    "latency_ms": int,
}


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not getattr(self.server, "quiet", False):
            super().log_request(code, size)


def parse_args(argv: list[str] | None = None) -> tuple[Config, str, int]:
    parser = argparse.ArgumentParser(prog="python -m tiktok_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--data-dir", type=Path, help="default var/sandbox")
    parser.add_argument("--config", type=Path, help="JSON file: apps, advertisers, switches")
    parser.add_argument("--enable-control", action="store_true")
    parser.add_argument("--control-key", default="")
    parser.add_argument("--enable-inspection", action="store_true")
    parser.add_argument("--force-processing", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    for name, kind in SWITCH_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)
    args = parser.parse_args(argv)
    config = Config()
    if args.config:
        config = load_config_file(args.config, config)
    switches = {
        name: getattr(args, name) for name in SWITCH_FLAGS if getattr(args, name) is not None
    }
    if args.force_processing:
        switches["force_processing"] = True
    if args.enable_control and not args.control_key:
        parser.error("--enable-control needs --control-key")
    config = replace(
        config,
        tunables=config.tunables.updated(switches),
        data_dir=args.data_dir or config.data_dir,
        enable_control=args.enable_control,
        control_key=args.control_key,
        enable_inspection=args.enable_inspection,
        quiet=args.quiet,
    )
    validate(config)
    return config, args.host, args.port


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    try:
        config, host, port = parse_args(argv)
    except ConfigError as error:
        print(f"tiktok_sandbox: {error}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(config)
    # A mapping request builds ~100,000 short-lived, acyclic JSON objects; with the default
    # thresholds the cyclic GC ran dozens of full passes over millions of stored ids and
    # doubled the time per request (measured). Collect rarely; freeze what start-up loaded.
    gc.set_threshold(100_000, 50, 1000)
    gc.freeze()
    server = make_server(
        host, port, create_app(sandbox), threaded=True, request_handler=QuietHandler
    )
    server.quiet = config.quiet  # type: ignore[attr-defined]
    print(
        f"TikTok sandbox on http://{host}:{port}/ (data in {config.data_dir}; "
        f"control {'on' if config.enable_control else 'off'}, "
        f"inspection {'on' if config.enable_inspection else 'off'})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sandbox.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
