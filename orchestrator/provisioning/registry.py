"""Strategy selection: the first registered strategy that detects the device wins."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import DeviceInfo
from orchestrator.provisioning.errors import unsupported
from orchestrator.provisioning.families import Esp32CamStrategy, ThermalCameraStrategy
from orchestrator.provisioning.strategy import ProvisioningStrategy


class StrategyRegistry:
    """The strategies this appliance knows, in order of preference."""

    def __init__(self, strategies: Sequence[ProvisioningStrategy]) -> None:
        if not strategies:
            raise ValueError("a registry needs at least one strategy")
        self._strategies = tuple(strategies)

    @classmethod
    def default(cls) -> StrategyRegistry:
        """The families we ship."""
        return cls([Esp32CamStrategy(), ThermalCameraStrategy()])

    @property
    def families(self) -> tuple[str, ...]:
        """The names of the registered strategies."""
        return tuple(s.name for s in self._strategies)

    def named(self, name: str) -> ProvisioningStrategy:
        """The strategy called `name` (an attempt records which one ran it)."""
        for strategy in self._strategies:
            if strategy.name == name:
                return strategy
        raise unsupported(f"the {name!r} strategy that started this attempt is not installed")

    def choose(self, info: DeviceInfo) -> ProvisioningStrategy:
        """The strategy for this device, or StepError saying plainly why there is none."""
        for strategy in self._strategies:
            if strategy.detect(info):
                return strategy
        described = f"{info.family or 'unknown family'} {info.model}".strip()
        if info.protocol_version != PROTOCOL_VERSION:
            why = (
                f"it speaks device protocol v{info.protocol_version}; "
                f"this appliance speaks v{PROTOCOL_VERSION}"
            )
        elif info.family in self.families:
            why = (
                f"it offers only the security schemes {', '.join(info.security_schemes) or 'none'}"
                "; this appliance delivers over plain"
            )
        else:
            why = f"no strategy for that family; supported: {', '.join(self.families)}"
        raise unsupported(f"cannot provision {described}: {why}")
