"""A network backend for running without an access point (development, CI, `make run`).

It reports the onboarding SSID and whether a session holds the network, and counts no
stations: there is no radio to count them on. The hostapd backend replaces it on a Pi.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

from orchestrator.domain.mac import Mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network.changes import ChangeFeed

log = logging.getLogger(__name__)


class StandbyNetwork:
    """No radio: up/down only flip `is_active`."""

    def __init__(self, ssid: str) -> None:
        self._ssid = ssid
        self._active = False
        self._feed = ChangeFeed()

    async def up(self) -> None:
        """Mark the network active."""
        if not self._active:
            log.info("onboarding network %r up (standby backend: no radio attached)", self._ssid)
            self._active = True
            self._feed.changed()

    async def down(self) -> None:
        """Mark the network inactive."""
        if self._active:
            log.info("onboarding network %r down", self._ssid)
            self._active = False
            self._feed.changed()

    def status(self) -> NetworkStatus:
        """SSID, whether a session holds the network, and zero stations."""
        return NetworkStatus(ssid=self._ssid, is_active=self._active, connected_devices=0)

    def stations(self) -> Mapping[Mac, Station]:
        """None: there is no radio."""
        return {}

    def watch(self) -> AsyncIterator[NetworkStatus]:
        """The status now and after every up/down."""
        return self._feed.watch(self.status)
