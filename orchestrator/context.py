"""Request and device context carried by contextvars, so every log line and audit entry says
who and what without threading arguments through every call."""

from __future__ import annotations

import logging
from contextvars import ContextVar

ANONYMOUS = "anonymous"

actor_var: ContextVar[str] = ContextVar("actor", default=ANONYMOUS)
"""The API key id behind the current request (never the key itself)."""
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)
mac_var: ContextVar[str | None] = ContextVar("mac", default=None)


class ContextFilter(logging.Filter):
    """Adds the current correlation id, session id and MAC to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate `record`; never drops it."""
        record.correlation_id = correlation_id_var.get() or "-"
        record.session_id = session_id_var.get() or "-"
        record.mac = mac_var.get() or "-"
        return True


LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "[cid=%(correlation_id)s session=%(session_id)s mac=%(mac)s] %(message)s"
)


def configure_logging(level: str) -> None:
    """Log to stderr (journald picks it up on the appliance) with context on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosqlite logs every statement with its parameters at DEBUG: noise, and a place secrets
    # could end up if a parameter ever held one.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # httpx logs every request at INFO: one line per device probe and delivery is noise that
    # costs CPU in big batches (device-scoped outcomes are logged by the engine).
    logging.getLogger("httpx").setLevel(logging.WARNING)
