"""`orchestrator batch start|status|provision-all`, `allowlist import` and `report`, run as
processes against a live appliance with step-up on."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
from pathlib import Path

from orchestrator.domain.candidate import CandidateEvent, Failure
from orchestrator.domain.mac import parse_mac
from tests.api.conftest import PASSWORD, SSID
from tests.client.conftest import Cli
from tests.fakes import sighting

A, B, C = "02:00:00:00:00:0A", "02:00:00:00:00:0B", "02:00:00:00:00:0C"


async def _allowlist(cli: Cli, *macs: str) -> None:
    response = await cli.harness.post("/allowlist/bulk", {"entries": [{"mac": m} for m in macs]})
    assert response.status_code == 200, response.text


async def _started(cli: Cli) -> str:
    ran = await cli.run(
        "batch", "start", "--ssid", SSID, "--password-file", str(cli.password_file()),
        "--totp", cli.code(),
    )  # fmt: skip
    assert ran.status == 0, ran.err
    return ran.out.strip()


async def test_batch_start_reads_the_password_file_and_prints_the_session_id(cli: Cli) -> None:
    ran = await cli.run(
        "batch", "start", "--ssid", SSID, "--password-file", str(cli.password_file()),
        "--discovery-timeout", "120", "--totp", cli.code(),
    )  # fmt: skip

    assert ran.status == 0, ran.err
    sid = ran.out.strip()
    assert ran.out == f"{sid}\n"
    assert sid.startswith("sess_")
    assert f"session started: {sid} (discovering) for SSID '{SSID}'" in ran.err
    session = (await cli.harness.get(f"/batch/{sid}")).json()["data"]["session"]
    assert session["target_ssid"] == SSID
    assert session["config"]["discovery_timeout_seconds"] == 120
    assert PASSWORD not in ran.out + ran.err
    # The file's trailing newline is not part of the password: the same request with the
    # bare password is recognised as a repeat of this one, not refused as a second session.
    again = await cli.harness.post(
        "/batch/start",
        {
            "target_ssid": SSID,
            "target_password": PASSWORD,
            "config": {"discovery_timeout_seconds": 120},
        },
    )
    assert again.status_code == 201, again.text
    assert again.json()["data"]["session"]["id"] == sid
    assert again.json()["data"]["message"] == "session already started with these settings"


async def test_a_gated_command_without_a_code_says_how_to_step_up(cli: Cli) -> None:
    password = str(cli.password_file())

    missing, wrong = await asyncio.gather(
        cli.run("batch", "start", "--ssid", SSID, "--password-file", password),
        cli.run("batch", "start", "--ssid", SSID, "--password-file", password, "--totp", "000000"),
    )

    assert missing.status == 1
    assert "session.start requires TOTP step-up" in missing.err
    assert "(HTTP 401, UNAUTHORIZED)" in missing.err
    assert "pass --totp CODE or set ORCHESTRATOR_TOTP" in missing.err
    assert wrong.status == 1
    assert "TOTP_INVALID" in wrong.err
    assert (await cli.harness.get("/sessions/history")).json()["data"]["sessions"] == []


async def test_batch_start_without_a_password_file_or_terminal_is_a_usage_error(
    cli: Cli,
) -> None:
    ran = await cli.run("batch", "start", "--ssid", SSID, "--totp", cli.code())

    assert ran.status == 2
    assert "no terminal to ask for the password: pass --password-file FILE" in ran.err


async def test_status_of_the_newest_session_shows_counts_and_devices(cli: Cli) -> None:
    await _allowlist(cli, A, B)
    sid = await _started(cli)
    h = cli.harness
    for n, mac in enumerate((A, B, C)):
        await h.devices.feed(sighting(mac, ip=f"192.168.4.{20 + n}", rssi=-50 - n))
    assert (await h.post(f"/batch/{sid}/provision-all", {})).status_code == 202
    batches = h.appliance.services.batches
    for event in (CandidateEvent.DELIVERED, CandidateEvent.VERIFY, CandidateEvent.VERIFIED):
        await batches.record(sid, parse_mac(A), event)
    failure = Failure(reason="auth_error", message="the device rejected the Wi-Fi password")
    await batches.record(sid, parse_mac(B), CandidateEvent.FAIL, failure)

    ran = await cli.run("batch", "status")

    assert ran.status == 0, ran.err
    assert f"session {sid} (discovering, the newest)" in ran.err
    lines = ran.out.splitlines()
    assert lines[0] == f"session   {sid} (discovering), target SSID '{SSID}'"
    assert "devices   3: 1 provisioned, 1 verified, 1 failed" in lines
    assert any(line.startswith("progress  [") and "2/3 finished" in line for line in lines)
    rows = {line.split()[0]: line for line in lines if line.startswith("02:")}
    assert rows[A].split()[1:5] == ["verified", "-50", "1.4.2", "yes"]
    assert rows[B].split()[1] == "failed"
    assert rows[B].endswith("the device rejected the Wi-Fi password")
    assert rows[C].split()[1:5] == ["discovered", "-52", "1.4.2", "no"]


async def test_provision_all_starts_the_allowlisted_devices_then_the_rest(cli: Cli) -> None:
    await _allowlist(cli, A)
    sid = await _started(cli)
    for n, mac in enumerate((A, B)):
        await cli.harness.devices.feed(sighting(mac, ip=f"192.168.4.{20 + n}"))

    listed = await cli.run("batch", "provision-all", sid)
    everything = await cli.run("batch", "provision-all", "--include-unlisted")

    assert listed.status == 0, listed.err
    assert (
        listed.out == "provisioning 1 devices, 1 not on the allowlist (1 started, 1 left alone)\n"
    )
    assert everything.status == 0, everything.err
    assert "(1 started, 0 left alone)" in everything.out
    devices = (await cli.harness.get(f"/batch/{sid}/devices")).json()["data"]["devices"]
    assert {d["mac"]: d["state"] for d in devices} == {A: "provisioning", B: "provisioning"}


async def test_allowlist_import_goes_through_the_api_with_step_up(cli: Cli) -> None:
    csv_file = cli.workdir / "devices.csv"
    csv_file.write_text("mac,description,container_id\naa-bb-cc-dd-ee-01,Dock 1,C-1\n")

    from_file = await cli.run("allowlist", "import", str(csv_file), "--totp", cli.code())
    from_stdin = await cli.run(
        "allowlist", "import", "-",
        stdin=b"aa-bb-cc-dd-ee-01,Dock 2\naa-bb-cc-dd-ee-02\n",
        env=cli.env(ORCHESTRATOR_TOTP=cli.code()),
    )  # fmt: skip

    assert from_file.status == 0, from_file.err
    assert "imported 1 rows: 1 added, 0 updated, 0 unchanged (from " in from_file.err
    assert from_stdin.status == 0, from_stdin.err
    assert "1 added, 1 updated, 0 unchanged (from standard input)" in from_stdin.err
    entries = (await cli.harness.get("/allowlist")).json()["data"]["entries"]
    assert [(e["mac"], e.get("description")) for e in entries] == [
        ("AA:BB:CC:DD:EE:01", "Dock 2"),
        ("AA:BB:CC:DD:EE:02", None),
    ]


async def test_allowlist_import_of_a_bad_file_names_the_line_and_imports_nothing(
    cli: Cli,
) -> None:
    csv_file = cli.workdir / "devices.csv"
    csv_file.write_text("aa-bb-cc-dd-ee-01\nnonsense\n")

    bad, missing = await asyncio.gather(
        cli.run("allowlist", "import", str(csv_file), "--totp", cli.code()),
        cli.run("allowlist", "import", str(cli.workdir / "absent.csv")),
    )

    assert bad.status == 1
    assert "VALIDATION_FAILED" in bad.err
    assert "line 2: 'nonsense' is not a MAC address" in bad.err
    assert (await cli.harness.get("/allowlist")).json()["data"]["entries"] == []
    assert missing.status == 2
    assert "cannot read" in missing.err


async def test_report_as_csv_to_a_file_and_as_json(cli: Cli) -> None:
    await _allowlist(cli, A)
    sid = await _started(cli)
    await cli.harness.devices.feed(sighting(A))
    await cli.harness.devices.feed(sighting(B, ip="192.168.4.11"))
    assert (await cli.harness.post(f"/batch/{sid}/devices/{B}/skip")).status_code == 200
    out_file = cli.workdir / "report.csv"

    as_csv, as_json = await asyncio.gather(
        cli.run("report", sid, "--format", "csv", "-o", str(out_file)),
        cli.run("report", "--format", "json"),
    )

    assert as_csv.status == 0, as_csv.err
    assert f"report of {sid} written to {out_file}" in as_csv.err
    text = out_file.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["mac"], r["state"], r["in_allowlist"]) for r in rows] == [
        (A, "discovered", "yes"),
        (B, "failed", "no"),
    ]
    assert rows[1]["failure_reason"] == "skipped"
    assert as_json.status == 0, as_json.err
    report = json.loads(as_json.out)
    assert report["session"]["id"] == sid
    assert [d["mac"] for d in report["devices"]] == [A, B]
    for text_out in (text, as_json.out):
        assert PASSWORD not in text_out


async def test_an_unknown_session_is_the_appliance_s_error(cli: Cli) -> None:
    ran, none_yet = await asyncio.gather(
        cli.run("batch", "status", "sess_nosuchsession000"), cli.run("report")
    )

    assert ran.status == 1
    assert "(HTTP 404, SESSION_NOT_FOUND)" in ran.err
    assert none_yet.status == 1
    assert "no sessions yet" in none_yet.err


async def test_the_key_comes_from_a_flag_or_the_environment_and_is_never_shown(
    cli: Cli,
) -> None:
    env = cli.env()
    del env["ORCHESTRATOR_API_KEY"]
    key = cli.harness.api_key
    forged = key[:-4] + "xxxx"

    no_key, flagged, wrong = await asyncio.gather(
        cli.run("report", env=env),
        cli.run("batch", "provision-all", "sess_nosuchsession000", "--api-key", key),
        cli.run("batch", "status", "--api-key", forged, "--url", cli.live.base_url),
    )

    assert no_key.status == 2
    assert "no API key: pass --api-key or set ORCHESTRATOR_API_KEY" in no_key.err
    assert flagged.status == 1
    assert "SESSION_NOT_FOUND" in flagged.err
    assert wrong.status == 1
    assert "UNAUTHORIZED" in wrong.err
    for ran in (no_key, flagged, wrong):
        assert key not in ran.out + ran.err
        assert forged not in ran.out + ran.err


async def test_an_appliance_that_is_not_there_exits_3(cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    ran = await cli.run("batch", "status", "--url", f"http://127.0.0.1:{port}")

    assert ran.status == 3
    assert f"cannot reach the appliance at http://127.0.0.1:{port}" in ran.err
