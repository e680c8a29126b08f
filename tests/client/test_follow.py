"""`orchestrator batch follow` against a live appliance: it shows changes as they happen
(one line each, since its stdout is a pipe), and its exit status says whether any failed."""

from __future__ import annotations

from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import parse_mac
from tests.client.conftest import Cli, Running
from tests.fakes import sighting

A, B, C = "02:00:00:00:00:0A", "02:00:00:00:00:0B", "02:00:00:00:00:0C"
VERIFIED_PATH = (CandidateEvent.DELIVERED, CandidateEvent.VERIFY, CandidateEvent.VERIFIED)
WRONG_PASSWORD = "the device could not join DelicasaFactory: wrong Wi-Fi password"


async def _batch(cli: Cli) -> str:
    """A session with A and B on the allowlist and provisioning, and C (not on it) left
    alone."""
    h = cli.harness
    response = await h.post("/allowlist/bulk", {"entries": [{"mac": A}, {"mac": B}]})
    assert response.status_code == 200, response.text
    sid = str((await h.start())["id"])
    for n, mac in enumerate((A, B, C)):
        await h.devices.feed(sighting(mac, ip=f"192.168.4.{20 + n}", rssi=-50 - n))
    assert (await h.post(f"/batch/{sid}/provision-all", {})).status_code == 202
    return sid


async def _verify(cli: Cli, sid: str, mac: str, follow: Running) -> None:
    for event in VERIFIED_PATH:
        await cli.harness.appliance.services.batches.record(sid, parse_mac(mac), event)
    await follow.line_with(f"{mac} verifying -> verified")


async def _end_discovery(cli: Cli) -> None:
    # The fake clock: the session's 60 s of discovery pass at once.
    await cli.harness.clock.advance(60)


async def test_follow_exits_0_once_every_allowlisted_device_is_verified(cli: Cli) -> None:
    sid = await _batch(cli)

    async with cli.running("batch", "follow", sid, "--timeout", "30") as follow:
        await follow.line_with(f"session {sid} discovering")
        await follow.line_with(f"{C} discovered (RSSI -52 dBm, firmware 1.4.2, NOT on the")
        await follow.line_with(f"{B} discovered -> provisioning")
        await _verify(cli, sid, A, follow)
        await follow.line_with("progress [##########....................] 1/3 finished")
        await _verify(cli, sid, B, follow)
        # Everything allowlisted is verified, but discovery may still find devices.
        assert follow.process.returncode is None
        await _end_discovery(cli)
        await follow.line_with(f"session {sid} active")
        ran = await follow.finish()

    assert ran.status == 0, ran.err
    assert f"following {sid} on {cli.live.base_url}" in ran.err
    assert ran.out.splitlines()[-1] == "done: 2 of 3 devices verified, none failed"
    table = {line.split()[0]: line.split() for line in ran.out.splitlines() if line[:3] == "02:"}
    assert table[A][:5] == [A, "verified", "-50", "1.4.2", "yes"]
    assert table[C][:5] == [C, "discovered", "-52", "1.4.2", "no"]


async def test_follow_exits_1_and_names_the_reason_when_a_device_failed(cli: Cli) -> None:
    sid = await _batch(cli)
    batches = cli.harness.appliance.services.batches

    async with cli.running("batch", "follow", "--timeout", "30") as follow:
        await follow.line_with(f"session {sid} discovering")
        await follow.line_with(f"{B} discovered -> provisioning")
        await _verify(cli, sid, A, follow)
        failure = Failure(reason="auth_error", message=WRONG_PASSWORD)
        await batches.record(sid, parse_mac(B), CandidateEvent.FAIL, failure)
        await follow.line_with(f"{B} provisioning -> failed: {WRONG_PASSWORD}")
        await _end_discovery(cli)
        ran = await follow.finish()

    assert ran.status == 1, ran.err
    lines = ran.out.splitlines()
    assert lines[-2:] == [
        "done: 1 of 3 devices FAILED, 1 verified",
        f"  {B}: {WRONG_PASSWORD}",
    ]
    [row] = [line for line in lines if line.startswith(f"{B}  ")]
    assert row.split()[1] == "failed"
    assert row.endswith(WRONG_PASSWORD)


async def test_follow_exits_when_the_session_is_closed(cli: Cli) -> None:
    sid = await _batch(cli)

    async with cli.running("batch", "follow", sid, "--timeout", "30") as follow:
        await follow.line_with(f"{B} discovered -> provisioning")
        assert (await cli.harness.post(f"/batch/{sid}/stop")).status_code == 200
        ran = await follow.finish()

    assert ran.status == 0, ran.err
    assert f"session {sid} closed" in ran.out
    assert ran.out.splitlines()[-1] == "done: 0 of 3 devices verified, none failed"


async def test_follow_reconnects_and_misses_nothing(cli: Cli) -> None:
    sid = await _batch(cli)
    batches = cli.harness.appliance.services.batches

    async with cli.running("batch", "follow", sid, "--timeout", "30") as follow:
        await follow.line_with(f"{B} discovered -> provisioning")
        # The appliance ends every stream (as it does on shutdown); whatever happens before
        # the client is back is replayed from the event log after Last-Event-ID.
        cli.harness.appliance.bus.close_all()
        for mac in (A, B):
            for event in VERIFIED_PATH:
                await batches.record(sid, parse_mac(mac), event)
        await follow.line_with(f"{A} verifying -> verified")
        await follow.line_with(f"{B} verifying -> verified")
        await _end_discovery(cli)
        ran = await follow.finish()

    assert ran.status == 0, ran.err
    assert "reconnecting to the event stream (the appliance ended the stream)" in ran.err
    # Each change is told once, even though the replay overlaps what was seen.
    assert sum(f"{B} discovered -> provisioning" in line for line in follow.lines) == 1


async def test_follow_gives_up_after_its_timeout(cli: Cli) -> None:
    sid = await _batch(cli)

    ran = await cli.run("batch", "follow", sid, "--timeout", "0.5")

    assert ran.status == 3
    assert "gave up after 0.5 s (--timeout)" in ran.err
    assert (
        ran.out.splitlines()[-1] == "stopped before the end: 0 of 3 devices verified, none failed"
    )
