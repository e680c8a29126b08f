"""The benchmark suite runs end to end on tiny fleets (`--smoke`); its times are not judged
here. The namespace sections run where namespaces can be made (CI is root) and must be
reported NOT RUN, with the reason, where they cannot."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bench.files import write_report
from bench.plot import plot
from bench.report import SectionStatus, SuiteReport, summary
from bench.suite import NETNS_SECTIONS, SECTIONS, SMOKE, run_suite
from bench.targets import ALL, Status
from orchestrator.sim.preflight import netns_available


def invalid_because(report: SuiteReport) -> dict[str, list[str]]:
    """Why each section's runs do not count (empty: they all do)."""
    return {
        "startup": [r for s in report.startup.starts for r in s.invalid_because]
        if report.startup
        else [],
        "testbed": [r for run in report.testbed.runs for r in run.invalid_because]
        if report.testbed
        else [],
        "discovery": [r for run in report.discovery.runs for r in run.invalid_because]
        if report.discovery
        else [],
        "cloud": [run.invalid for run in report.cloud.runs if run.invalid] if report.cloud else [],
        "engine": [r for run in report.engine.runs for r in run.invalid_because]
        if report.engine
        else [],
        "load": [r for run in report.load.runs for r in run.invalid_because] if report.load else [],
        "sse": [r for run in report.sse.runs for r in run.invalid_because] if report.sse else [],
    }


def check_sse(report: SuiteReport) -> None:
    """The sse section published at its tiny rate, and every subscriber saw every event."""
    assert report.sse is not None
    [fanned] = report.sse.runs
    published = round(SMOKE.sse_rate_per_s * SMOKE.sse_seconds)
    assert (fanned.subscribers, fanned.published) == (SMOKE.sse_subscribers, published)
    assert fanned.latency is not None
    assert fanned.latency.samples == fanned.delivered == published * SMOKE.sse_subscribers
    assert (fanned.missed, fanned.cut_off, fanned.dropped_by_server) == (0, 0, 0)
    assert fanned.cpu_s is not None


async def test_the_smoke_suite_reports_every_section_and_target(tmp_path: Path) -> None:
    report = await run_suite(SMOKE)

    path = write_report(report, tmp_path)
    assert path.name.startswith("suite-")
    assert path.suffix == ".json"
    assert msgspec.json.decode(path.read_bytes(), type=SuiteReport) == report
    figure = plot(report, path.with_suffix(".png"))
    assert figure.read_bytes().startswith(b"\x89PNG")

    no_netns = netns_available()
    assert [s.name for s in report.sections] == list(SECTIONS)
    invalid = invalid_because(report)
    for section in report.sections:
        if section.name in NETNS_SECTIONS and no_netns:
            assert section.status is SectionStatus.NOT_RUN
            assert section.reason == no_netns
            assert section.valid is None
            continue
        assert section.status is SectionStatus.RAN, section.reason
        assert section.valid == (not invalid[section.name])
        # The drop counters are host-wide: whatever else runs on the machine can move them,
        # and then the run is rightly invalid. Nothing else may make a tiny run invalid.
        foreign = [r for r in invalid[section.name] if not r.startswith("kernel counter ")]
        assert not foreign, (section.name, foreign)
    assert report.valid == (not any(invalid.values()))
    assert report.options.smoke

    assert report.startup is not None
    assert len(report.startup.starts) == SMOKE.startups
    assert report.engine is not None
    assert [(r.scenario, r.devices) for r in report.engine.runs] == [
        ("zero-latency", 5), ("join-delay", 5), ("serial", 5),
    ]  # fmt: skip
    assert report.load is not None
    [loaded] = report.load.runs
    assert loaded.sources == ["station", "lease", "mdns", "arp"]
    assert loaded.session_read is not None
    assert loaded.session_read.samples > 0
    assert loaded.devices_list is not None
    assert loaded.devices_list.samples > 0
    assert loaded.sse_latency is not None
    assert loaded.sse_latency.samples > 0
    assert loaded.sse_events > 0
    assert (loaded.sse_missed, loaded.sse_cut_off) == (0, 0)
    assert loaded.peak_rss_mib is not None
    # Every source on: the orchestrator says which it runs.
    assert any("discovery: arp, lease, mdns, station" in line for line in loaded.discovery_log)
    check_sse(report)

    # Every target is measured here: never NOT RUN; INVALID only after dropped packets.
    assert [t.name for t in report.targets] == [spec.name for spec in ALL]
    for target in report.targets:
        if target.status is Status.INVALID:
            assert "kernel counter " in target.note, target
        else:
            assert target.status in (Status.PASS, Status.MISS), target
            assert target.measured is not None

    text = summary(report)
    assert text.startswith("== targets")
    for name in SECTIONS:
        assert f"== {name} (" in text
    assert text.index("== targets") < text.index("== startup")
    assert "--smoke" in text
