"""The discovery table: when a device is probed, when it is known, when it left."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.discovery import Clue, DiscoveryTable, Left, Probe, SourceKind
from orchestrator.domain.mac import Mac, parse_mac

A = parse_mac("02:00:00:00:00:0a")
B = parse_mac("02:00:00:00:00:0b")


def clue(mac: Mac = A, source: SourceKind = SourceKind.LEASE, **fields: object) -> Clue:
    return Clue(mac=mac, source=source, **fields)  # type: ignore[arg-type]


def test_a_new_device_with_an_address_is_probed_once() -> None:
    table = DiscoveryTable()
    assert table.clue(clue(ip="10.42.0.5")) == [Probe(mac=A, ip="10.42.0.5")]
    # Other sources confirming it while the probe is out ask nothing more.
    assert table.clue(clue(source=SourceKind.MDNS, ip="10.42.0.5")) == []
    assert table.clue(clue(source=SourceKind.ARP, ip="10.42.0.5")) == []
    assert table.probed(A, "10.42.0.5", state="unprovisioned") == []
    assert table.clue(clue(ip="10.42.0.5")) == []
    assert table.sources(A) == {SourceKind.LEASE, SourceKind.MDNS, SourceKind.ARP}


def test_a_station_without_an_address_waits_for_one() -> None:
    table = DiscoveryTable()
    assert table.clue(clue(source=SourceKind.STATION, rssi=-48)) == []
    assert table.rssi(A) == -48
    assert table.clue(clue(ip="10.42.0.5")) == [Probe(mac=A, ip="10.42.0.5")]


def test_a_new_address_or_state_is_probed_again() -> None:
    table = DiscoveryTable()
    table.clue(clue(ip="10.42.0.5"))
    table.probed(A, "10.42.0.5", state="unprovisioned")
    assert table.clue(clue(ip="10.42.0.9")) == [Probe(mac=A, ip="10.42.0.9")]
    table.probed(A, "10.42.0.9", state="unprovisioned")
    assert table.clue(clue(source=SourceKind.MDNS, ip="10.42.0.9", state="pairing")) == [
        Probe(mac=A, ip="10.42.0.9")
    ]


def test_a_device_taking_its_credentials_is_not_asked_again_but_a_failed_one_is() -> None:
    table = DiscoveryTable()
    table.clue(clue(ip="10.42.0.5"))
    table.probed(A, "10.42.0.5", state="unprovisioned")
    mdns = SourceKind.MDNS
    assert table.clue(clue(source=mdns, ip="10.42.0.5", state="provisioned")) == []
    assert table.clue(clue(source=mdns, ip="10.42.0.5", state="failed")) == [
        Probe(mac=A, ip="10.42.0.5")
    ]


def test_an_address_that_changed_during_the_probe_is_probed_after_it() -> None:
    table = DiscoveryTable()
    table.clue(clue(ip="10.42.0.5"))
    assert table.clue(clue(ip="10.42.0.6")) == []  # one probe at a time
    assert table.probed(A, "10.42.0.5", state="unprovisioned") == [Probe(mac=A, ip="10.42.0.6")]


def test_leaving_and_coming_back() -> None:
    table = DiscoveryTable()
    table.clue(clue(ip="10.42.0.5"))
    table.probed(A, "10.42.0.5", state="provisioned")
    assert table.clue(clue(source=SourceKind.STATION, present=False)) == [Left(mac=A)]
    assert table.clue(clue(present=False)) == []  # said once
    assert table.present() == []
    # Back (after a failed join): asked again, at the same address, for its failure report.
    assert table.clue(clue(source=SourceKind.STATION)) == [Probe(mac=A, ip="10.42.0.5")]
    assert table.present() == [A]


def test_a_silent_device_is_retried_only_while_present() -> None:
    table = DiscoveryTable()
    table.clue(clue(ip="10.42.0.5"))
    table.probe_failed(A)
    assert table.retry(A) == [Probe(mac=A, ip="10.42.0.5")]
    table.probe_failed(A)
    table.clue(clue(present=False))
    assert table.retry(A) == []
    assert table.retry(B) == []


def test_leaving_unknown_devices_says_nothing() -> None:
    assert DiscoveryTable().clue(clue(present=False)) == []


macs = st.sampled_from([A, B])
clues = st.builds(
    Clue,
    mac=macs,
    source=st.sampled_from(list(SourceKind)),
    ip=st.none() | st.sampled_from(["10.42.0.5", "10.42.0.6"]),
    present=st.booleans(),
    state=st.none() | st.sampled_from(["unprovisioned", "pairing", "failed"]),
)
kinds = st.sampled_from(["clue", "answer", "silence", "retry"])
steps = st.lists(st.tuples(kinds, clues), max_size=40)


@settings(max_examples=300)
@given(steps)
def test_one_probe_at_a_time_and_every_present_device_gets_known(
    plan: list[tuple[str, Clue]],
) -> None:
    """Whatever the sources say in whatever order: never two probes of one device out at once,
    a Left only for a present device, and once the probes are answered, every present device
    with an address has been probed at its latest address."""
    table = DiscoveryTable()
    out: dict[Mac, str] = {}  # probes in flight
    present: dict[Mac, bool] = {}
    ip: dict[Mac, str] = {}
    answered: dict[Mac, str] = {}

    def take(actions: list[Probe | Left]) -> None:
        for action in actions:
            if isinstance(action, Probe):
                assert action.mac not in out, "two probes in flight"
                assert present.get(action.mac), "probe of an absent device"
                out[action.mac] = action.ip
            else:
                assert present.get(action.mac) is False

    for step, c in plan:
        if step == "clue":
            was_present = present.get(c.mac)
            present[c.mac] = c.present if (c.present or was_present is not None) else False
            if not c.present and was_present is None:
                present.pop(c.mac)
            if c.present and c.ip:
                ip[c.mac] = c.ip
            if not c.present:
                answered.pop(c.mac, None)
            take(table.clue(c))
        elif step == "answer" and c.mac in out:
            at = out.pop(c.mac)
            answered[c.mac] = at
            take(table.probed(c.mac, at, state=c.state or "unprovisioned"))
        elif step == "silence" and c.mac in out:
            out.pop(c.mac)
            table.probe_failed(c.mac)
            take(table.retry(c.mac))
        elif step == "retry":
            take(table.retry(c.mac))
    # Drain: answer every probe until none is left.
    while out:
        mac, at = out.popitem()
        answered[mac] = at
        take(table.probed(mac, at, state="unprovisioned"))
    for mac, here in present.items():
        assert table.retry(mac) == [], "nothing left to ask"
        if here and mac in ip:
            assert answered.get(mac) == ip[mac], "known at its latest address"
