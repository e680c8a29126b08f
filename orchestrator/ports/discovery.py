"""Discovery sources: each reports what it notices about devices on the onboarding network
as clues (`orchestrator.domain.discovery.Clue`); the discovery service merges them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from orchestrator.domain.discovery import Clue, SourceKind


class SourceUnavailableError(Exception):
    """A source cannot run here (no hostapd, no multicast, no CAP_NET_RAW, no lease file).
    Discovery goes on without it; the message says what is missing."""


class ClueSource(Protocol):
    """One discovery source."""

    @property
    def kind(self) -> SourceKind:
        """Which source this is."""
        ...

    def clues(self) -> AsyncIterator[Clue]:
        """Clues until the caller stops iterating; SourceUnavailableError when it cannot start."""
        ...
