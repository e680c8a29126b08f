"""MAC address identity: parsed once at the edge, canonical everywhere after."""

from __future__ import annotations

import re
from typing import NewType

from orchestrator.domain.errors import ErrorCode, OrchestratorError

Mac = NewType("Mac", str)
"""A MAC in canonical form: upper-case hex pairs joined by colons (`AA:BB:CC:DD:EE:FF`)."""

# Six hex pairs with one consistent separator (":" or "-") or none at all.
_MAC_RE = re.compile(
    r"^(?:[0-9A-Fa-f]{2}(?P<sep>[:-])(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{12})$"
)


def parse_mac(text: str) -> Mac:
    """Return the canonical form of `text`, or raise VALIDATION_FAILED saying why not."""
    candidate = text.strip()
    if not _MAC_RE.match(candidate):
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED,
            "invalid MAC address",
            details=(
                f"expected six hex pairs separated by ':' or '-' or nothing, got {text[:40]!r}"
            ),
        )
    digits = candidate.replace(":", "").replace("-", "").upper()
    return Mac(":".join(digits[i : i + 2] for i in range(0, 12, 2)))


def is_mac(text: str) -> bool:
    """Whether `text` parses as a MAC address in any accepted spelling."""
    return bool(_MAC_RE.match(text.strip()))
