"""Metrics read back through their own text exposition, as Prometheus would read them."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.domain.candidate import CandidateState
from orchestrator.ports.telemetry import StageObserver
from orchestrator.telemetry import Metrics

Labels = frozenset[tuple[str, str]]


def no_devices() -> Mapping[str, int]:
    return {}


def samples(metrics: Metrics, name: str) -> dict[Labels, float]:
    """Every sample called `name` in the exposition, by its label set."""
    body, _ = metrics.render()
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    }


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


def test_metrics_is_a_stage_observer() -> None:
    observer: StageObserver = Metrics(no_devices)
    observer.stage_finished("detect", "ok", 0.01)


def test_stage_counter_counts_by_stage_and_outcome() -> None:
    metrics = Metrics(no_devices)
    metrics.stage_finished("provision", "ok", 0.2)
    metrics.stage_finished("provision", "ok", 0.3)
    metrics.stage_finished("provision", "auth_error", 3.0)
    metrics.stage_finished("confirm", "ok", 0.0005)

    assert samples(metrics, "orchestrator_stage_total") == {
        labels(stage="provision", outcome="ok"): 2,
        labels(stage="provision", outcome="auth_error"): 1,
        labels(stage="confirm", outcome="ok"): 1,
    }


def test_stage_durations_land_in_their_buckets() -> None:
    metrics = Metrics(no_devices)
    metrics.stage_finished("provision", "ok", 0.2)
    metrics.stage_finished("provision", "auth_error", 3.0)
    metrics.stage_finished("confirm", "ok", 0.0005)

    counts = samples(metrics, "orchestrator_stage_duration_seconds_count")
    assert counts == {labels(stage="provision"): 2, labels(stage="confirm"): 1}
    sums = samples(metrics, "orchestrator_stage_duration_seconds_sum")
    assert sums[labels(stage="provision")] == pytest.approx(3.2)
    buckets = samples(metrics, "orchestrator_stage_duration_seconds_bucket")
    assert buckets[labels(stage="confirm", le="0.001")] == 1
    assert buckets[labels(stage="provision", le="0.001")] == 0
    assert buckets[labels(stage="provision", le="0.25")] == 1
    assert buckets[labels(stage="provision", le="5.0")] == 2
    assert buckets[labels(stage="provision", le="+Inf")] == 2


def test_duration_buckets_span_a_millisecond_to_two_minutes() -> None:
    metrics = Metrics(no_devices)
    metrics.stage_finished("detect", "ok", 0.01)

    buckets = samples(metrics, "orchestrator_stage_duration_seconds_bucket")
    bounds = sorted(float(dict(key)["le"]) for key in buckets)
    assert bounds[0] == 0.001
    assert bounds[-2:] == [120.0, float("inf")]


def test_device_gauge_has_every_state_zeros_included() -> None:
    metrics = Metrics(lambda: {"discovered": 3, "failed": 1})

    assert samples(metrics, "orchestrator_devices") == {
        labels(state=state.value): {"discovered": 3, "failed": 1}.get(state.value, 0)
        for state in CandidateState
    }


def test_device_gauge_is_read_at_scrape_time() -> None:
    counts = {"provisioning": 2}
    calls: list[None] = []

    def devices_by_state() -> Mapping[str, int]:
        calls.append(None)
        return counts

    metrics = Metrics(devices_by_state)
    assert calls == []  # registering the collector does not scrape it

    assert samples(metrics, "orchestrator_devices")[labels(state="provisioning")] == 2
    counts["provisioning"] = 0
    counts["verified"] = 2
    gauge = samples(metrics, "orchestrator_devices")
    assert gauge[labels(state="provisioning")] == 0
    assert gauge[labels(state="verified")] == 2
    assert len(calls) == 2


def test_device_gauge_ignores_unknown_states() -> None:
    metrics = Metrics(lambda: {"discovered": 1, "exploded": 7})

    states = {dict(key)["state"] for key in samples(metrics, "orchestrator_devices")}
    assert states == {state.value for state in CandidateState}


def test_two_instances_share_nothing() -> None:
    first = Metrics(lambda: {"verified": 5})
    second = Metrics(no_devices)
    first.stage_finished("provision", "ok", 1.0)

    assert samples(first, "orchestrator_stage_total") == {
        labels(stage="provision", outcome="ok"): 1
    }
    assert samples(second, "orchestrator_stage_total") == {}
    assert samples(second, "orchestrator_stage_duration_seconds_count") == {}
    assert samples(second, "orchestrator_devices")[labels(state="verified")] == 0


def test_render_is_the_prometheus_text_format() -> None:
    metrics = Metrics(no_devices)
    metrics.stage_finished("detect", "ok", 0.01)

    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    text = body.decode()
    assert "# TYPE orchestrator_stage_total counter" in text
    assert "# TYPE orchestrator_stage_duration_seconds histogram" in text
    assert "# TYPE orchestrator_devices gauge" in text
