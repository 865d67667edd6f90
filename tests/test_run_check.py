"""`make run`'s set-up from a clean state: migrate, demo users, demo data, all processes up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_run_check_sets_up_a_clean_state_and_starts_everything(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_BROKER_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        PORT=str(free_port()),
        SANDBOX_PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}",
        DEBUG="true",
    )
    result = subprocess.run(
        [sys.executable, "scripts/run.py", "--check", "--customers", "200"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "check: web server, TikTok sandbox and worker are up" in result.stdout
    assert "check: a killed worker came back by itself" in result.stdout
    assert "check: everything stopped cleanly" in result.stdout
    assert "No hostname was supplied" not in output
    assert "Demo data loaded" in result.stdout
