"""Logging filters that keep noise and secrets out of the logs (wired in settings.LOGGING)."""

from __future__ import annotations

import logging
import re


class ClientErrorWithoutTraceback(logging.Filter):
    """A 4xx answer (a refused permission, a bad request) is logged as its one line.

    Django attaches the exception to the record of every 403 and 400 it logs, so each
    ordinary "you may not do this" would print a full traceback; that is for 5xx only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True


_REQUEST_LINE = re.compile(r"^([A-Z]+ [^?\s]*)\?\S*( HTTP/\S+)$")


class RequestLineWithoutQuery(logging.Filter):
    """The development server's access log shows paths without their query strings.

    A query can carry secrets, such as the OAuth `code` and `state` TikTok sends to
    /destinations/tiktok/callback/; gunicorn's access log drops them too (gunicorn.conf.py).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            clean = _REQUEST_LINE.sub(r"\1\2", args[0])
            if clean != args[0]:
                record.args = (clean, *args[1:])
        return True
