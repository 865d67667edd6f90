"""`make run`: set up the embedded defaults once, then run every process together.

Set-up: migrate, create the demo users and load the demo data the first time. Then the
Procfile's processes (web, worker, scheduler, TikTok sandbox) run under honcho, which
stops them all on Ctrl-C. The worker runs under scripts/supervise.py, which starts it again
whenever it dies (honcho itself would stop everything when one process exits).

`--check` starts everything, waits until the web server answers and the worker replies to a
ping, kills the worker to see its supervisor start another, then stops them and exits 0
(used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def manage(*args: str) -> None:
    subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, check=True)


def setup(demo_customers: int) -> None:
    manage("migrate", "--no-input", "-v", "0")
    manage("create_demo_users")
    var_dir = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    marker = var_dir / "demo-loaded"
    if not marker.exists() and demo_customers > 0:
        manage("seed_demo", "--customers", str(demo_customers), "--seed", "42")
        manage("seed_examples", "--user", "marketer")
        marker.write_text(f"{demo_customers}\n")


def configure_sandbox(port: str, var_dir: Path) -> None:
    """Point the app at the local TikTok sandbox unless TIKTOK_* say otherwise.

    The sandbox's demo app must list this app's callback as a redirect URI, and the app's
    port can change (PORT), so its config file is written here on every start.
    """
    sandbox_port = os.environ.setdefault("SANDBOX_PORT", "9100")
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    os.environ.setdefault("TIKTOK_APP_ID", "7300000000000000001")
    os.environ.setdefault("TIKTOK_APP_SECRET", "sandbox-demo-secret")
    os.environ.setdefault("TIKTOK_API_BASE_URL", f"{sandbox}/open_api/v1.3/")
    os.environ.setdefault("TIKTOK_AUTH_URL", f"{sandbox}/portal/auth")
    config = {
        "apps": [
            {
                "app_id": "7300000000000000001",
                "secret": "sandbox-demo-secret",
                "name": "Audience Builder (demo)",
                "redirect_uris": [
                    f"http://{host}:{port}/destinations/tiktok/callback/"
                    for host in ("127.0.0.1", "localhost")
                ],
            }
        ]
    }
    (var_dir / "sandbox").mkdir(parents=True, exist_ok=True)
    (var_dir / "sandbox.json").write_text(json.dumps(config, indent=2))
    os.environ["SANDBOX_CONFIG"] = str(var_dir / "sandbox.json")
    os.environ["SANDBOX_DATA_DIR"] = str(var_dir / "sandbox")


def wait_until_up(url: str, procs: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if procs.poll() is not None:
            raise SystemExit(f"processes exited early with code {procs.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in time")


def worker_answers_ping(deadline: float) -> None:
    while time.monotonic() < deadline:
        result = subprocess.run(
            [str(BIN / "celery"), "-A", "config", "inspect", "ping", "--timeout", "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode == 0 and "pong" in result.stdout:
            return
        time.sleep(1)
    raise SystemExit("the Celery worker did not answer a ping in time")


def worker_pid(deadline: float) -> int:
    """The pid of the worker answering `celery inspect stats` (waits until one answers)."""
    while time.monotonic() < deadline:
        result = subprocess.run(
            [str(BIN / "celery"), "-A", "config", "inspect", "stats", "--json", "--timeout", "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            try:
                stats = json.loads(result.stdout.strip().splitlines()[-1])
                return int(next(iter(stats.values()))["pid"])
            except (ValueError, LookupError, StopIteration, TypeError):
                pass
        time.sleep(1)
    raise SystemExit("the Celery worker did not report its pid in time")


def worker_comes_back(deadline: float) -> None:
    """Kill the worker outright; its supervisor (scripts/supervise.py) must start another."""
    before = worker_pid(deadline)
    os.kill(before, signal.SIGKILL)
    while time.monotonic() < deadline:
        if worker_pid(deadline) != before:
            return
        time.sleep(1)
    raise SystemExit("the killed worker did not come back in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="start, check, stop, exit")
    parser.add_argument(
        "--customers", type=int, default=int(os.environ.get("DEMO_CUSTOMERS", 20000))
    )
    args = parser.parse_args()

    port = os.environ.setdefault("PORT", "8000")
    var_dir = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    configure_sandbox(port, var_dir)
    setup(args.customers)
    honcho = [str(BIN / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT)]
    print(
        f"\nAudience Builder on http://127.0.0.1:{port}/  (Ctrl-C stops everything)\n", flush=True
    )
    if not args.check:
        os.execv(honcho[0], honcho)  # noqa: S606 - replace this process with honcho

    procs = subprocess.Popen(honcho, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        wait_until_up(f"http://127.0.0.1:{port}/accounts/login/", procs, deadline)
        sandbox_port = os.environ["SANDBOX_PORT"]
        wait_until_up(f"http://127.0.0.1:{sandbox_port}/_sandbox/health/", procs, deadline)
        worker_answers_ping(deadline)
        print("check: web server, TikTok sandbox and worker are up", flush=True)
        worker_comes_back(time.monotonic() + 90)
        print("check: a killed worker came back by itself", flush=True)
    finally:
        os.killpg(procs.pid, signal.SIGINT)
        try:
            procs.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(procs.pid, signal.SIGKILL)
            raise SystemExit("processes did not stop on Ctrl-C within 30 s") from None
    print("check: everything stopped cleanly", flush=True)


if __name__ == "__main__":
    sys.exit(main())
