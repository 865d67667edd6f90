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
            self._faults_injected = 0
            self._log.clear()

    def redirect_uris(self, app_id: str) -> set[str]:
        app = self.config.app(app_id)
        configured = set(app.redirect_uris) if app else set()
        return configured | self.store.redirect_uris(app_id)

    # --- per-request decisions ---------------------------------------------------------

    def draw_fault(self, endpoint: str) -> str | None:
        """ "drop", "html_502", "error" or None, drawn for one API request."""
        t = self.tunables
        if t.fault_endpoints and endpoint not in t.fault_endpoints:
            return None
        with self._lock:
            if t.fault_limit is not None and self._faults_injected >= t.fault_limit:
                return None
            roll = self._random.random()
            fault = None
            if roll < t.drop_rate:
                fault = "drop"
            elif roll < t.drop_rate + t.html_502_rate:
                fault = "html_502"
            elif roll < t.drop_rate + t.html_502_rate + t.error_rate:
                fault = "error"
            if fault:
                self._faults_injected += 1
            return fault

    def admit(self, app_id: str) -> bool:
        """Fixed one-second windows per app: at most `qps` admitted requests each second."""
        qps = self.tunables.qps
        if qps <= 0:
            return True
        second = int(time.time())
        with self._lock:
            window, count = self._windows.get(app_id, (second, 0))
            if window != second:
                window, count = second, 0
            if count >= qps:
                return False
            self._windows[app_id] = (window, count + 1)
            return True

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
