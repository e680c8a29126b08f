"""The commands in this process, with a terminal of the test's making: the live view on a
TTY, and what the person at the terminal is asked (the Wi-Fi password, a TOTP code)."""

from __future__ import annotations

import argparse
import asyncio
import io

from orchestrator.client.commands import Terminal, add_client_parsers, run_client
from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import parse_mac
from tests.api.conftest import PASSWORD, SSID
from tests.client.conftest import Cli
from tests.client.test_follow import VERIFIED_PATH, _batch

A, B = "02:00:00:00:00:0A", "02:00:00:00:00:0B"


class FakeTty(io.StringIO):
    """Standard output that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="orchestrator")
    add_client_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(cli: Cli, term: Terminal, *argv: str) -> int:
    """Run a command on a thread (it runs its own event loop), as `main` would."""
    async with asyncio.timeout(30):
        return await asyncio.to_thread(run_client, parse(*argv), cli.env(), term)


def refuse(question: str) -> str | None:
    raise AssertionError(f"asked {question!r}")


async def test_follow_on_a_terminal_redraws_in_place_and_colours_states(cli: Cli) -> None:
    sid = await _batch(cli)
    batches = cli.harness.appliance.services.batches
    out, err = FakeTty(), io.StringIO()
    term = Terminal(out=out, err=err, ask=refuse, ask_secret=refuse)

    follow = asyncio.create_task(run(cli, term, "batch", "follow", sid))
    for event in VERIFIED_PATH:
        await batches.record(sid, parse_mac(A), event)
    failure = Failure(reason="auth_error", message="wrong Wi-Fi password")
    await batches.record(sid, parse_mac(B), CandidateEvent.FAIL, failure)
    await cli.harness.clock.advance(60)
    status = await follow

    assert status == 1, err.getvalue()
    screen = out.getvalue()
    assert screen.startswith("\x1b[H\x1b[2J")  # cleared once, then redrawn from the top
    assert screen.count("\x1b[2J") == 1
    last = screen.rsplit("\x1b[H", 1)[1]
    assert f"session {sid} (active), target SSID '{SSID}'" in last
    assert "[####################..........] 2/3 finished: 1 verified, 1 failed" in last
    assert "\x1b[32mverified\x1b[0m" in last
    assert "\x1b[31mfailed\x1b[0m" in last
    assert last.rstrip().endswith(
        f"done: 1 of 3 devices FAILED, 1 verified\n  {B}: wrong Wi-Fi password"
    )


async def test_batch_start_asks_for_the_password_twice(cli: Cli) -> None:
    answers = [PASSWORD, PASSWORD]
    out, err = io.StringIO(), io.StringIO()
    term = Terminal(out=out, err=err, ask=refuse, ask_secret=lambda _: answers.pop(0))

    status = await run(cli, term, "batch", "start", "--ssid", SSID, "--totp", cli.code())

    assert status == 0, err.getvalue()
    assert answers == []
    sid = out.getvalue().strip()
    # The same password through the API is the same request: the CLI sent exactly it.
    again = await cli.harness.post(
        "/batch/start", {"target_ssid": SSID, "target_password": PASSWORD}
    )
    assert again.json()["data"]["session"]["id"] == sid


async def test_two_different_passwords_start_nothing(cli: Cli) -> None:
    answers = [PASSWORD, PASSWORD + "!"]
    err = io.StringIO()
    term = Terminal(out=io.StringIO(), err=err, ask=refuse, ask_secret=lambda _: answers.pop(0))

    status = await run(cli, term, "batch", "start", "--ssid", SSID)

    assert status == 2
    assert "the two passwords differ; nothing was started" in err.getvalue()
    assert PASSWORD not in err.getvalue()


async def test_a_gated_command_asks_for_a_totp_code_when_the_appliance_wants_one(
    cli: Cli,
) -> None:
    csv_file = cli.workdir / "devices.csv"
    csv_file.write_text("aa-bb-cc-dd-ee-01\n")
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return cli.code()

    err = io.StringIO()
    term = Terminal(out=io.StringIO(), err=err, ask=ask, ask_secret=refuse)
    status = await run(cli, term, "allowlist", "import", str(csv_file))

    assert status == 0, err.getvalue()
    assert asked == ["TOTP code for allowlist.write (from the authenticator app): "]
    assert "1 added" in err.getvalue()
    entries = (await cli.harness.get("/allowlist")).json()["data"]["entries"]
    assert [e["mac"] for e in entries] == ["AA:BB:CC:DD:EE:01"]
