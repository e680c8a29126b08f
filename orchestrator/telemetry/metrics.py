"""Prometheus metrics: finished stages (count and duration) and devices per candidate state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from orchestrator.domain.candidate import CandidateState

STAGE_DURATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""From a 1 ms local check to a 120 s provision-and-confirm round (+Inf is implied)."""


class Metrics:
    """The orchestrator's metrics, in a registry of their own; a `StageObserver`.

    `devices_by_state` is called at every scrape, on the scraping thread (the API's event
    loop), and must answer quickly; states it leaves out read as zero.
    """

    def __init__(self, devices_by_state: Callable[[], Mapping[str, int]]) -> None:
        # Never the global default registry: two instances (two tests) must not collide.
        self._registry = CollectorRegistry()
        self._stages = Counter(
            "orchestrator_stage",
            "Finished provisioning stages, by stage and outcome (`ok` or an error reason).",
            ["stage", "outcome"],
            registry=self._registry,
        )
        self._durations = Histogram(
            "orchestrator_stage_duration_seconds",
            "How long finished provisioning stages took, by stage.",
            ["stage"],
            buckets=STAGE_DURATION_BUCKETS_S,
            registry=self._registry,
        )
        self._registry.register(_DeviceStates(devices_by_state))

    def stage_finished(self, stage: str, outcome: str, duration_s: float) -> None:
        """Count the stage under its outcome and record how long it took."""
        self._stages.labels(stage=stage, outcome=outcome).inc()
        self._durations.labels(stage=stage).observe(duration_s)

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric, and its content type."""
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


class _DeviceStates:
    """`orchestrator_devices{state}`, read from `devices_by_state` at scrape time."""

    def __init__(self, devices_by_state: Callable[[], Mapping[str, int]]) -> None:
        self._devices_by_state = devices_by_state

    def collect(self) -> Iterable[Metric]:
        """One sample per candidate state, zeros included (a series never vanishes)."""
        counts = self._devices_by_state()
        family = self._family()
        # Only the known states: the label set stays bounded whatever the callable returns.
        for state in CandidateState:
            family.add_metric([state.value], counts.get(state.value, 0))
        return [family]

    def describe(self) -> Iterable[Metric]:
        """The family without samples, so registering does not call `devices_by_state`."""
        return [self._family()]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "orchestrator_devices", "Devices by candidate state.", labels=["state"]
        )
