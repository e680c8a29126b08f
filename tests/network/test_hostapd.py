"""The hostapd backend against a fake hostapd speaking the real wire format on a real socket,
and the wire parsing on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import cast

import msgspec
import pytest

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.network import NetworkStatus, Station
from orchestrator.network import hostapd_wire as wire
from orchestrator.network.hostapd import (
    CommandError,
    HostapdNetwork,
    HostapdSettings,
    run_command,
)
from orchestrator.ports.devices import OnboardingNetwork
from tests.network.fake_hostapd import FakeHostapd, FakeStation

SSID = "DelicasaOnboard"
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
MAC_A, MAC_B, MAC_C = parse_mac(A), parse_mac(B), parse_mac(C)
WAIT_S = 5.0


class Systemctl:
    """A command runner that records argv and fails when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail_with: Exception | None = None

    async def __call__(self, argv: Sequence[str]) -> None:
        self.calls.append(tuple(argv))
        if self.fail_with is not None:
            raise self.fail_with


def fast_settings(control_socket: Path, **changes: float) -> HostapdSettings:
    """Timings short enough for tests; nothing here waits for them to pass by sleeping."""
    timings: dict[str, float] = {
        "start_timeout_s": 2.0,
        "command_timeout_s": 2.0,
        "refresh_interval_s": 0.05,
        "reconnect_min_s": 0.01,
        "reconnect_max_s": 0.05,
    }
    defaults = HostapdSettings(control_socket=str(control_socket))
    return msgspec.structs.replace(defaults, **(timings | changes))


async def until(network: HostapdNetwork, condition: Callable[[], bool]) -> None:
    """Follow watch() until `condition` holds (fail after WAIT_S)."""
    statuses = cast("AsyncGenerator[NetworkStatus, None]", network.watch())
    async with asyncio.timeout(WAIT_S), contextlib.aclosing(statuses):
        async for _ in statuses:
            if condition():
                return


def rssi(network: HostapdNetwork) -> dict[Mac, int | None]:
    return {mac: station.rssi for mac, station in network.stations().items()}


@pytest.fixture
async def hostapd(tmp_path: Path) -> AsyncIterator[FakeHostapd]:
    async with FakeHostapd(tmp_path / "wlan0") as fake:
        yield fake


@pytest.fixture
def systemctl() -> Systemctl:
    return Systemctl()


@pytest.fixture
def make_network(hostapd: FakeHostapd, systemctl: Systemctl) -> Callable[..., HostapdNetwork]:
    def make(**changes: float) -> HostapdNetwork:
        return HostapdNetwork(SSID, fast_settings(hostapd.path, **changes), run_command=systemctl)

    return make


@pytest.fixture
async def network(make_network: Callable[..., HostapdNetwork]) -> AsyncIterator[HostapdNetwork]:
    net = make_network()
    yield net
    await net.down()


# -- bringing the network up and down -----------------------------------------------------


async def test_up_lists_the_stations_already_associated(
    network: HostapdNetwork, hostapd: FakeHostapd, systemctl: Systemctl
) -> None:
    hostapd.associate(A, signal=-52)
    hostapd.associate(B, signal=-67)
    hostapd.associate(C, authorized=False)  # still in the handshake (or a wrong PSK): not in

    await network.up()

    assert rssi(network) == {MAC_A: -52, MAC_B: -67}
    assert network.stations()[MAC_A] == Station(mac=MAC_A, rssi=-52)
    assert network.status() == NetworkStatus(ssid=SSID, is_active=True, connected_devices=2)
    assert systemctl.calls == [("systemctl", "start", "hostapd.service")]
    assert hostapd.commands[:6] == ["PING", "ATTACH", "STA-FIRST", f"STA-NEXT {A}",
                                    f"STA-NEXT {B}", f"STA-NEXT {C}"]  # fmt: skip


async def test_up_is_idempotent_and_down_stops_the_unit_and_detaches(
    network: HostapdNetwork, hostapd: FakeHostapd, systemctl: Systemctl
) -> None:
    hostapd.associate(A)
    await network.up()
    await network.up()
    client = next(iter(hostapd.attached))

    statuses = cast("AsyncGenerator[NetworkStatus, None]", network.watch())
    async with asyncio.timeout(WAIT_S), contextlib.aclosing(statuses):
        assert (await anext(statuses)).is_active
        await network.down()
        assert await anext(statuses) == NetworkStatus(
            ssid=SSID, is_active=False, connected_devices=0
        )

    assert network.stations() == {}
    assert hostapd.commands[-1] == "DETACH"
    assert hostapd.attached == set()
    assert not Path(client).parent.exists()  # our private client directory is gone
    assert systemctl.calls == [
        ("systemctl", "start", "hostapd.service"),
        ("systemctl", "stop", "hostapd.service"),
    ]
    await network.down()  # idempotent: systemd stops a stopped unit happily
    assert systemctl.calls[-1] == ("systemctl", "stop", "hostapd.service")


async def test_the_unit_name_comes_from_settings(
    hostapd: FakeHostapd, systemctl: Systemctl
) -> None:
    settings = msgspec.structs.replace(fast_settings(hostapd.path), unit="ap0.service")
    network = HostapdNetwork(SSID, settings, run_command=systemctl)
    await network.up()
    await network.down()
    assert [call[2] for call in systemctl.calls] == ["ap0.service", "ap0.service"]


async def test_up_fails_clearly_when_the_socket_never_appears(
    tmp_path: Path, systemctl: Systemctl
) -> None:
    missing = tmp_path / "no-such-socket"
    network = HostapdNetwork(
        SSID, fast_settings(missing, start_timeout_s=0.2), run_command=systemctl
    )

    with pytest.raises(OrchestratorError) as caught:
        await network.up()

    assert caught.value.code is ErrorCode.NETWORK_ERROR
    assert str(missing) in (caught.value.details or "")
    assert "hostapd.service" in (caught.value.details or "")
    # No network left running unwatched: the unit is stopped again.
    assert systemctl.calls == [
        ("systemctl", "start", "hostapd.service"),
        ("systemctl", "stop", "hostapd.service"),
    ]
    assert not network.status().is_active


async def test_up_fails_clearly_when_systemctl_fails(
    network: HostapdNetwork, systemctl: Systemctl
) -> None:
    systemctl.fail_with = CommandError("systemctl start hostapd.service exited 5: not loaded")

    with pytest.raises(OrchestratorError) as caught:
        await network.up()

    assert caught.value.code is ErrorCode.NETWORK_ERROR
    assert "not loaded" in (caught.value.details or "")
    assert not network.status().is_active
    systemctl.fail_with = None


# -- following hostapd ----------------------------------------------------------------------


async def test_station_events_change_the_table_and_wake_watchers(
    network: HostapdNetwork, hostapd: FakeHostapd
) -> None:
    await network.up()
    assert network.status().connected_devices == 0

    await hostapd.connect(A, signal=-48, extra=" keyid=batch-7 auth_alg=open")
    # The signal of a station that just joined is read at once, not at the next refresh.
    await until(network, lambda: rssi(network) == {MAC_A: -48})
    assert network.status() == NetworkStatus(ssid=SSID, is_active=True, connected_devices=1)

    await hostapd.connect(B, extra=f" p2p_dev_addr={C}")
    await until(network, lambda: set(network.stations()) == {MAC_A, MAC_B})

    await hostapd.disconnect(A)
    await until(network, lambda: set(network.stations()) == {MAC_B})
    assert network.status().connected_devices == 1


async def test_signal_refresh_updates_rssi(network: HostapdNetwork, hostapd: FakeHostapd) -> None:
    hostapd.associate(A, signal=-52)
    await network.up()

    hostapd.stations[A].signal = -71
    await until(network, lambda: rssi(network) == {MAC_A: -71})
    assert f"STA {A}" in hostapd.commands


async def test_a_station_that_left_unannounced_is_dropped_at_refresh(
    network: HostapdNetwork, hostapd: FakeHostapd
) -> None:
    hostapd.associate(A)
    hostapd.associate(B)
    await network.up()

    del hostapd.stations[A]  # no event: hostapd answers FAIL to `STA <A>`
    await until(network, lambda: set(network.stations()) == {MAC_B})


async def test_a_station_leaving_during_the_listing_restarts_it(
    network: HostapdNetwork, hostapd: FakeHostapd
) -> None:
    for mac in (A, B, C):
        hostapd.associate(mac)

    def leave_while_listed(command: str) -> None:
        if command == f"STA-NEXT {A}":
            hostapd.before_reply = None
            del hostapd.stations[A]  # STA-NEXT <A> now answers FAIL

    hostapd.before_reply = leave_while_listed
    await network.up()

    assert set(network.stations()) == {MAC_B, MAC_C}
    assert hostapd.commands.count("STA-FIRST") == 2


async def test_garbage_datagrams_are_ignored(
    make_network: Callable[..., HostapdNetwork],
    hostapd: FakeHostapd,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No refresh during the test: a datagram that is not an event, arriving while a command
    # waits, would be taken for its reply (hostapd itself never sends one unasked).
    network = make_network(refresh_interval_s=60.0)
    await network.up()
    try:
        with caplog.at_level(logging.DEBUG, logger="orchestrator.network.hostapd"):
            for garbage in (
                b"\xff\xfe\x00 not an event",
                b"<3>",
                b"<x>AP-STA-CONNECTED 02:00:00:00:00:0a",
                b"<3>AP-STA-CONNECTED not-a-mac",
                b"<3>AP-STA-DISCONNECTED",
                b"<3>CTRL-EVENT-EAP-STARTED 02:00:00:00:00:0c",  # an event we do not need
                b"",
            ):
                await hostapd.emit(garbage)
            await hostapd.connect(A, signal=-60)
            await until(network, lambda: rssi(network) == {MAC_A: -60})
    finally:
        await network.down()

    assert hostapd.attaches == 1  # never mistaken for a lost connection
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("dropping" in r.getMessage() for r in caplog.records) == 6


# -- hostapd going away ---------------------------------------------------------------------


async def test_hostapd_restarting_leads_to_reattaching_and_relisting(
    network: HostapdNetwork, hostapd: FakeHostapd, caplog: pytest.LogCaptureFixture
) -> None:
    hostapd.associate(A, signal=-50)
    await network.up()

    with caplog.at_level(logging.INFO, logger="orchestrator.network.hostapd"):
        await hostapd.stop()
        await until(network, lambda: not network.status().is_active)
        assert network.stations() == {}  # hostapd's view is unknown while it is away

        await hostapd.restart([FakeStation(B, signal=-61)])
        await until(network, lambda: network.status().is_active)

    assert rssi(network) == {MAC_B: -61}
    assert hostapd.attaches == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # one line, however many attempts it took
    assert "reattaching" in warnings[0]

    await hostapd.connect(C)  # events flow again on the new attachment
    await until(network, lambda: set(network.stations()) == {MAC_B, MAC_C})


async def test_a_hostapd_that_stops_answering_counts_as_gone(
    make_network: Callable[..., HostapdNetwork], hostapd: FakeHostapd
) -> None:
    hostapd.associate(A)
    network = make_network(command_timeout_s=0.2)
    await network.up()
    try:
        hostapd.silent = True  # no PONG
        await until(network, lambda: not network.status().is_active)
        hostapd.silent = False
        await until(network, lambda: network.status().is_active and bool(network.stations()))
    finally:
        await network.down()
    assert hostapd.attaches == 2


async def test_down_while_reattaching_leaves_nothing_behind(
    network: HostapdNetwork, hostapd: FakeHostapd, systemctl: Systemctl
) -> None:
    await network.up()
    await hostapd.stop()
    await until(network, lambda: not network.status().is_active)

    await network.down()  # cancels the reattach loop; the autouse fixture checks for leaks
    assert systemctl.calls[-1] == ("systemctl", "stop", "hostapd.service")


# -- the wire format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (b"<3>AP-STA-CONNECTED 02:00:00:00:00:0a", wire.StationJoined(mac=MAC_A)),
        (b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:0a", wire.StationLeft(mac=MAC_A)),
        (
            b"<3>AP-STA-CONNECTED 02:00:00:00:00:0a p2p_dev_addr=02:00:00:00:00:0b",
            wire.StationJoined(mac=MAC_A),
        ),
        (b"<3>AP-STA-CONNECTED 02:00:00:00:00:0a keyid=line-4", wire.StationJoined(mac=MAC_A)),
        (b"<3>AP-STA-CONNECTED 02:00:00:00:00:0a\n", wire.StationJoined(mac=MAC_A)),
        (b"<3>AP-ENABLED", None),
        (b"<2>CTRL-EVENT-EAP-STARTED 02:00:00:00:00:0a", None),
    ],
)
def test_events_parse(datagram: bytes, expected: wire.StationEvent | None) -> None:
    assert wire.is_event(datagram)
    assert wire.parse_event(datagram) == expected


@pytest.mark.parametrize(
    "datagram",
    [b"<3>", b"<>AP-STA-CONNECTED 02:00:00:00:00:0a", b"PONG\n",
     b"<3>AP-STA-CONNECTED", b"<3>AP-STA-CONNECTED zz:00:00:00:00:0a"],
)  # fmt: skip
def test_malformed_events_are_wire_errors(datagram: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_event(datagram)


def test_replies_are_not_events() -> None:
    assert not wire.is_event(b"PONG\n")
    assert not wire.is_event(wire.END_OF_LIST)  # the empty reply to STA-NEXT of the last


def test_a_recorded_sta_reply_parses() -> None:
    station = FakeStation(A, signal=-56)
    assert wire.parse_station(station.mib()) == wire.StationInfo(
        mac=MAC_A, authorized=True, signal_dbm=-56
    )
    station.authorized = False
    assert not wire.parse_station(station.mib()).authorized


@pytest.mark.parametrize(
    ("signal_lines", "expected"),
    [("signal=-40\n", -40), ("signal=0\n", None), ("", None), ("signal=n/a\n", None)],
)
def test_signal_is_none_when_the_driver_reports_none(
    signal_lines: str, expected: int | None
) -> None:
    reply = f"{A}\nflags=[AUTH][ASSOC][AUTHORIZED]\naid=1\n{signal_lines}last_ack_signal=-3\n"
    assert wire.parse_station(reply.encode()).signal_dbm == expected


@pytest.mark.parametrize("reply", [b"UNKNOWN COMMAND\n", b"\n", b"flags=[AUTH]\n"])
def test_a_sta_reply_without_a_mac_is_a_wire_error(reply: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_station(reply)


def test_commands_name_macs_as_hostapd_prints_them() -> None:
    assert wire.sta(MAC_A) == f"STA {A}"
    assert wire.sta_next(MAC_A) == f"STA-NEXT {A}"


# -- the default command runner and the port ----------------------------------------------


async def test_run_command_reports_failure_and_never_leaves_a_child_behind() -> None:
    await run_command(["true"])
    with pytest.raises(CommandError, match="exited 1"):
        await run_command(["false"])
    with pytest.raises(CommandError, match="no exit within"):
        await run_command(["sleep", "30"], timeout_s=0.05)


def test_it_is_an_onboarding_network(tmp_path: Path) -> None:
    network: OnboardingNetwork = HostapdNetwork(SSID, fast_settings(tmp_path / "wlan0"))
    assert network.status() == NetworkStatus(ssid=SSID, is_active=False, connected_devices=0)
    assert network.stations() == {}
