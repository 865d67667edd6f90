"""Keep one process running: start it again whenever it exits, until told to stop.

`make run` starts the Celery worker through this (Procfile), so a worker that dies (a
crash, the kernel's out-of-memory killer, an unrecoverable broker error) comes back by
itself, as docker compose's `restart: unless-stopped` does in production. Honcho stops
everything when one of its processes exits: this one only exits when it is asked to.

    python scripts/supervise.py [--name worker] -- command args...

Restarts wait 1 s, doubling up to 30 s while the command keeps dying within a minute of
starting. SIGINT and SIGTERM are passed on to the command, which is given 30 s to stop before its
process group is killed; whatever it leaves behind in its process group is killed when it
exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

STABLE_AFTER_S = 60.0
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STOP_GRACE_S = 30.0


class Supervisor:
    def __init__(self, name: str, command: list[str]) -> None:
        self.name, self.command = name, command
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.restarts = 0

    def log(self, message: str) -> None:
        print(f"[supervise {self.name}] {message}", file=sys.stderr, flush=True)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            # To the command only: a Celery worker stops its own pool processes (signalling
            # them too would leave the worker waiting for children that are already gone).
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signum)

    def wait_or_stop(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.1)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        delay = FIRST_DELAY_S
        code = 0
        while not self.stopping:
            started = time.monotonic()
            self.child = subprocess.Popen(self.command, start_new_session=True)
            kill_at: float | None = None
            while True:
                try:
                    code = self.child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if not self.stopping:
                        continue
                    if kill_at is None:
                        kill_at = time.monotonic() + STOP_GRACE_S
                    elif time.monotonic() > kill_at:
                        self.log(f"did not stop within {STOP_GRACE_S:g} s: killing it")
                        os.killpg(self.child.pid, signal.SIGKILL)
            # What the command left behind in its process group (a killed Celery worker's
            # pool processes) goes with it: they would hold honcho's output pipe open.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signal.SIGKILL)
            if self.stopping:
                break
            if time.monotonic() - started >= STABLE_AFTER_S:
                delay = FIRST_DELAY_S
            self.restarts += 1
            self.log(f"exited with code {code}; starting it again in {delay:g} s")
            self.wait_or_stop(delay)
            delay = min(delay * 2, MAX_DELAY_S)
        return 0 if code in (0, -signal.SIGINT, -signal.SIGTERM) else code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", default="process")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return Supervisor(args.name, command).run()


if __name__ == "__main__":
    sys.exit(main())
