"""Observability: Prometheus metrics, each `Metrics` in a registry of its own.

`Metrics(devices_by_state)` implements `orchestrator.ports.telemetry.StageObserver`; the API
serves `Metrics.render()` at GET /metrics.
"""

from orchestrator.telemetry.metrics import Metrics

__all__ = ["Metrics"]
