"""The running sandbox: configuration, storage, run-time switches, rate limits, request log."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any

from .config import Config, Tunables
from .store import Store

REQUEST_LOG_SIZE = 50_000


class Sandbox:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.defaults = config.tunables
        self.tunables = config.tunables
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._minute_windows: dict[str, tuple[int, int]] = {}
        self._taken: dict[tuple[str, str, str], float] = {}  # request key -> when it succeeded
        self._faults_injected = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._log_seq = 0
        self._random = random.Random()

    # --- switches ----------------------------------------------------------------------

    def switch(self, changes: dict[str, Any]) -> Tunables:
        with self._lock:
            self.tunables = self.tunables.updated(changes)
            if "fault_limit" in changes or any(k.endswith("_rate") for k in changes):
                self._faults_injected = 0
            return self.tunables

    def reset(self) -> None:
        """Faults off, defaults back, rate windows and request log cleared; data kept."""
        with self._lock:
            self.tunables = self.defaults
            self._windows.clear()
            self._minute_windows.clear()
            self._taken.clear()
            self._faults_injected = 0
            self._log.clear()

    def redirect_uris(self, app_id: str) -> set[str]:
        app = self.config.app(app_id)
        configured = set(app.redirect_uris) if app else set()
        return configured | self.store.redirect_uris(app_id)

    # --- per-request decisions ---------------------------------------------------------

    def draw_fault(self, endpoint: str) -> str | None:
        """ "drop", "html_502", "error", "drop_answer", "partial_ok" or None, drawn for one
        API request. The last two act after the request succeeded."""
        t = self.tunables
        if t.fault_endpoints and endpoint not in t.fault_endpoints:
            return None
        with self._lock:
            if t.fault_limit is not None and self._faults_injected >= t.fault_limit:
                return None
            roll = self._random.random()
            fault = None
            for name, rate in (
                ("drop", t.drop_rate),
                ("html_502", t.html_502_rate),
                ("error", t.error_rate),
                ("drop_answer", t.drop_answer_rate),
                ("partial_ok", t.partial_ok_rate),
            ):
                if roll < rate:
                    fault = name
                    break
                roll -= rate
            if fault:
                self._faults_injected += 1
            return fault

    def admit(self, app_id: str) -> str | None:
        """Fixed one-second and one-minute windows per app: at most `qps` admitted requests
        each second and `qpm` each minute. Returns the limit hit ("qps" or "qpm") or None."""
        limits = (
            ("qps", self.tunables.qps, self._windows, 1),
            ("qpm", self.tunables.qpm, self._minute_windows, 60),
        )
        now = int(time.time())
        with self._lock:
            for name, limit, windows, length in limits:
                if limit <= 0:
                    continue
                window, count = windows.get(app_id, (now // length, 0))
                if window == now // length and count >= limit:
                    return name
            for _name, limit, windows, length in limits:
                if limit <= 0:
                    continue
                window, count = windows.get(app_id, (now // length, 0))
                if window != now // length:
                    window, count = now // length, 0
                windows[app_id] = (window, count + 1)
            return None

    # --- duplicated requests (40050) ----------------------------------------------------

    def seen_recently(self, key: tuple[str, str, str]) -> bool:
        window = self.tunables.duplicate_window_s
        if window <= 0:
            return False
        with self._lock:
            taken = self._taken.get(key)
            return taken is not None and time.time() - taken < window

    def remember(self, key: tuple[str, str, str]) -> None:
        window = self.tunables.duplicate_window_s
        if window <= 0:
            return
        now = time.time()
        with self._lock:
            for old in [k for k, t in self._taken.items() if now - t >= window]:
                del self._taken[old]
            self._taken[key] = now

    def is_processing(self, changed_at: float) -> bool:
        return time.time() < changed_at + self.tunables.processing_delay_s

    # --- request log -------------------------------------------------------------------

    def log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log_seq += 1
            self._log.append({"seq": self._log_seq, **entry})

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)
