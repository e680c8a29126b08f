"""The access point's station table as a discovery source: the most authoritative one (the Pi
is the access point), though it knows MACs and signals only, not addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestrator.domain.discovery import Clue, SourceKind
from orchestrator.domain.mac import Mac
from orchestrator.domain.network import Station
from orchestrator.ports.devices import OnboardingNetwork


class StationSource:
    """Clues from an OnboardingNetwork's station table: one per association, disassociation
    and signal change."""

    kind = SourceKind.STATION

    def __init__(self, network: OnboardingNetwork) -> None:
        self._network = network

    async def clues(self) -> AsyncIterator[Clue]:
        """Diff the station table after every change of the network."""
        known: dict[Mac, Station] = {}
        async for _ in self._network.watch():
            now = dict(self._network.stations())
            for mac in known.keys() - now.keys():
                yield Clue(mac=mac, source=self.kind, present=False)
            for mac, station in now.items():
                if known.get(mac) != station:
                    yield Clue(mac=mac, source=self.kind, rssi=station.rssi)
            known = now
