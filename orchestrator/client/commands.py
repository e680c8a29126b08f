"""The client commands of `orchestrator`: `batch start|status|follow|provision-all`,
`allowlist import` and `report`, each talking to a running appliance over its V1 API with an
API key (and a TOTP code where the appliance wants step-up), like any other client."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec

from orchestrator.api.schemas import (
    ImportData,
    ProvisionAllData,
    SessionData,
    SessionsData,
    StartData,
)
from orchestrator.client import render, terminal
from orchestrator.client.api import (
    DEFAULT_URL,
    ApiClient,
    ApiError,
    Prompt,
    StepUpNeededError,
)
from orchestrator.client.follow import follow_session
from orchestrator.client.watch import FINISHED
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.totp import GatedOperation

CLIENT_COMMANDS = frozenset({"batch", "allowlist", "report"})
"""Top-level commands that talk to a running appliance instead of opening its database."""

ENV_URL = "ORCHESTRATOR_URL"
ENV_API_KEY = "ORCHESTRATOR_API_KEY"
ENV_TOTP = "ORCHESTRATOR_TOTP"

EXIT_OK = 0
EXIT_FAILED = 1
"""The appliance refused the request, or (`batch follow`) a device failed."""
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
"""The appliance could not be reached (or `batch follow --timeout` passed first)."""
EXIT_INTERRUPTED = 130

_EXIT_CODES = f"""exit status:
  {EXIT_OK}  done
  {EXIT_FAILED}  the appliance refused the request (its code and message are shown)
  {EXIT_USAGE}  bad usage: a missing API key, password or file
  {EXIT_UNREACHABLE}  the appliance could not be reached"""

_FOLLOW_RULE = f"""Shows the session live from the appliance's event stream: a progress bar and the
devices with their state, RSSI and failure reason. On a terminal the view is redrawn
in place; otherwise (a pipe, a log, CI) each change is printed as one line.

It stops when the session is closed, or when the session is past discovery, at least
one device has finished, and every device has finished (verified or failed) or sits
discovered without being on the allowlist (provision-all leaves those alone).

exit status:
  {EXIT_OK}  no device failed
  {EXIT_FAILED}  at least one device failed (the reasons are listed), or the appliance refused
  {EXIT_UNREACHABLE}  the appliance was lost for a minute, or --timeout passed first"""

# -- the parsers ------------------------------------------------------------------------------


def add_client_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `batch`, `allowlist` and `report`."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--url",
        help=f"the appliance's address (default: ${ENV_URL}, else {DEFAULT_URL})",
    )
    client.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"an API key of the appliance (default: ${ENV_API_KEY}; prefer the variable, "
        "command lines show in `ps`)",
    )
    step_up = argparse.ArgumentParser(add_help=False)
    step_up.add_argument(
        "--totp",
        metavar="CODE",
        help=f"a current TOTP code, for appliances that gate this with step-up (default: "
        f"${ENV_TOTP}; asked for at the terminal when needed)",
    )
    session = argparse.ArgumentParser(add_help=False)
    session.add_argument(
        "session",
        nargs="?",
        metavar="SESSION",
        help="a session id (default: the newest session, which is the open one if any)",
    )

    batch = commands.add_parser("batch", help="run a batch on a running appliance (over its API)")
    actions = batch.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start",
        parents=[client, step_up],
        help="start a batch session; prints its id",
        description="Start a batch: devices are sent to the target network.\nThe password "
        "is read from --password-file, else asked for at the terminal\n(never an argument).",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    start.add_argument("--ssid", required=True, help="the target Wi-Fi network")
    start.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="a file holding the target network's password ('-' reads standard input)",
    )
    for phase, default in (("discovery", 60), ("provisioning", 120), ("verification", 90)):
        start.add_argument(
            f"--{phase}-timeout",
            type=int,
            metavar="SECONDS",
            help=f"{phase} timeout (appliance default {default})",
        )
    actions.add_parser(
        "status",
        parents=[client, session],
        help="a session's counts and devices",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    follow = actions.add_parser(
        "follow",
        parents=[client, session],
        help="watch a session live; exits non-zero if a device failed",
        description=_FOLLOW_RULE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    follow.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="give up (exit 3) after this long"
    )
    provision_all = actions.add_parser(
        "provision-all",
        parents=[client, session],
        help="provision every discovered device on the allowlist",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    provision_all.add_argument(
        "--include-unlisted",
        action="store_true",
        help="provision discovered devices that are not on the allowlist too",
    )

    allowlist = commands.add_parser("allowlist", help="the devices trusted to receive credentials")
    allowlist_actions = allowlist.add_subparsers(dest="action", required=True)
    import_cmd = allowlist_actions.add_parser(
        "import",
        parents=[client, step_up],
        help="add or update entries from a CSV file (mac,description,container_id)",
        description="Send a CSV file to the appliance: new MACs are added, known ones "
        "updated.\nOne bad line rejects the whole file.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import_cmd.add_argument("file", type=Path, help="the CSV file ('-' reads standard input)")

    report = commands.add_parser(
        "report",
        parents=[client, session],
        help="a session's batch report (CSV or JSON)",
        description="Every device of a session: final state, the states it went through "
        "with\ntheir times, attempts, failure reasons. Never a secret.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--format", choices=("csv", "json"), default="csv", help="default csv")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="default stdout")


# -- running them -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Terminal:
    """Where a command writes, and how it asks the person in front of it."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    ask: Prompt = terminal.ask
    ask_secret: Prompt = terminal.ask_secret


class UsageError(Exception):
    """The command cannot run as given (exit 2); the message says why."""


@dataclass(frozen=True)
class _Inputs:
    """What a command needs from files or the person, read before it talks to the appliance
    (a password prompt must not run on a thread: Ctrl-C there would leave echo off)."""

    password: str = field(default="", repr=False)
    csv: bytes = b""


def run_client(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    term: Terminal | None = None,
) -> int:
    """Run one client command to its exit status."""
    environ = os.environ if environ is None else environ
    term = term or Terminal()
    try:
        api_key = _api_key(args, environ)
        inputs = _inputs(args, term)
        client = ApiClient(
            args.url or environ.get(ENV_URL) or DEFAULT_URL,
            api_key,
            totp=getattr(args, "totp", None) or environ.get(ENV_TOTP),
            prompt=term.ask,
        )
        return asyncio.run(_run(args, client, inputs, term))
    except UsageError as error:
        term.err.write(f"orchestrator: {error}\n")
        return EXIT_USAGE
    except OrchestratorError as error:
        _print_error(error, term.err)
        return EXIT_UNREACHABLE if error.code is ErrorCode.NETWORK_ERROR else EXIT_FAILED
    except KeyboardInterrupt:
        term.err.write("orchestrator: interrupted\n")
        return EXIT_INTERRUPTED


def _api_key(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    api_key: str | None = args.api_key or environ.get(ENV_API_KEY)
    if not api_key:
        raise UsageError(f"no API key: pass --api-key or set {ENV_API_KEY}")
    return api_key


def _print_error(error: OrchestratorError, err: TextIO) -> None:
    status = f"HTTP {error.status}, " if isinstance(error, ApiError) else ""
    err.write(f"orchestrator: {error.message} ({status}{error.code})\n")
    if error.details:
        err.write(f"  {error.details}\n")
    if isinstance(error, StepUpNeededError):
        err.write(
            f"  pass --totp CODE or set {ENV_TOTP} to the current code of the appliance's "
            "authenticator entry\n"
        )


def _inputs(args: argparse.Namespace, term: Terminal) -> _Inputs:
    match (args.command, getattr(args, "action", None)):
        case ("batch", "start"):
            return _Inputs(password=_password(args.password_file, term))
        case ("allowlist", "import"):
            path: Path = args.file
            try:
                return _Inputs(
                    csv=sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
                )
            except OSError as error:
                raise UsageError(f"cannot read {path}: {error.strerror or error}") from error
        case _:
            return _Inputs()


def _password(path: Path | None, term: Terminal) -> str:
    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            # Only the path and the OS's words: never any of the file's content.
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read the password file {path}: {reason}") from error
        # One trailing line end is the file's, not the password's.
        password = text.removesuffix("\n").removesuffix("\r")
        if not password:
            raise UsageError(f"the password file {path} is empty")
        return password
    first = term.ask_secret("Target Wi-Fi password: ")
    if first is None:
        raise UsageError("no terminal to ask for the password: pass --password-file FILE")
    if term.ask_secret("Again, to be sure: ") != first:
        raise UsageError("the two passwords differ; nothing was started")
    return first


async def _run(args: argparse.Namespace, client: ApiClient, inputs: _Inputs, term: Terminal) -> int:
    async with client:
        match (args.command, getattr(args, "action", None)):
            case ("batch", "start"):
                return await _start(client, args, inputs.password, term)
            case ("batch", "status"):
                return await _status(client, args, term)
            case ("batch", "follow"):
                return await _follow(client, args, term)
            case ("batch", "provision-all"):
                return await _provision_all(client, args, term)
            case ("allowlist", "import"):
                return await _import(client, args, inputs.csv, term)
            case ("report", _):
                return await _report(client, args, term)
            case other:
                raise UsageError(f"unknown command {other}")


async def _session_id(client: ApiClient, given: str | None, term: Terminal) -> str:
    """`given`, or the newest session (the open one, if any: no session can start while
    another is open, so an open session is always the newest)."""
    if given:
        return given
    newest = (await client.get("/sessions/history", SessionsData, limit="1")).sessions
    if not newest:
        raise OrchestratorError(
            ErrorCode.SESSION_NOT_FOUND,
            "the appliance has no sessions yet; start one with `orchestrator batch start`",
        )
    session = newest[0]
    term.err.write(f"session {session.id} ({session.state}, the newest)\n")
    return session.id


# -- the commands -----------------------------------------------------------------------------


async def _start(client: ApiClient, args: argparse.Namespace, password: str, term: Terminal) -> int:
    config = {
        f"{phase}_timeout_seconds": value
        for phase in ("discovery", "provisioning", "verification")
        if (value := getattr(args, f"{phase}_timeout")) is not None
    }
    body: dict[str, Any] = {"target_ssid": args.ssid, "target_password": password}
    if config:
        body["config"] = config
    started = await client.call(
        "POST", "/batch/start", StartData, json=body, gated=GatedOperation.SESSION_START
    )
    session = started.session
    term.err.write(
        f"{started.message}: {session.id} ({session.state}) for SSID {session.target_ssid!r}\n"
    )
    term.out.write(f"{session.id}\n")
    return EXIT_OK


async def _status(client: ApiClient, args: argparse.Namespace, term: Terminal) -> int:
    sid = await _session_id(client, args.session, term)
    view = await client.get(f"/batch/{sid}", SessionData)
    session, devices = view.session, view.devices or []
    finished = sum(1 for d in devices if d.state in FINISHED)
    lines = [
        f"session   {session.id} ({session.state}), target SSID {session.target_ssid!r}",
        f"created   {session.created_at:%Y-%m-%d %H:%M:%S}Z, "
        f"updated {session.updated_at:%Y-%m-%d %H:%M:%S}Z",
        f"devices   {session.device_count}: {session.provisioned_count} provisioned, "
        f"{session.verified_count} verified, {session.failed_count} failed",
        f"progress  {render.progress_bar(finished, len(devices))} finished",
    ]
    if view.timeout_remaining:
        lines.append(f"time left {view.timeout_remaining} ({session.state})")
    if view.network_status:
        network = view.network_status
        active = "up" if network.is_active else "down"
        lines.append(f"network   {network.ssid} {active}, {network.connected_devices} connected")
    if devices:
        lines += ["", *render.candidate_table(devices)]
    term.out.write("".join(f"{line}\n" for line in lines))
    return EXIT_OK


async def _provision_all(client: ApiClient, args: argparse.Namespace, term: Terminal) -> int:
    sid = await _session_id(client, args.session, term)
    outcome = await client.call(
        "POST",
        f"/batch/{sid}/provision-all",
        ProvisionAllData,
        json={"only_allowlisted": not args.include_unlisted},
    )
    term.out.write(
        f"{outcome.message} ({outcome.initiated_count} started, "
        f"{outcome.skipped_count} left alone)\n"
    )
    return EXIT_OK


async def _import(client: ApiClient, args: argparse.Namespace, body: bytes, term: Terminal) -> int:
    outcome = await client.call(
        "POST",
        "/allowlist/import",
        ImportData,
        content=body,
        headers={"Content-Type": "text/csv; charset=utf-8"},
        gated=GatedOperation.ALLOWLIST_WRITE,
    )
    source = "standard input" if str(args.file) == "-" else str(args.file)
    term.err.write(f"{outcome.message} (from {source})\n")
    return EXIT_OK


async def _follow(client: ApiClient, args: argparse.Namespace, term: Terminal) -> int:
    sid = await _session_id(client, args.session, term)
    term.err.write(f"following {sid} on {client.base_url} (Ctrl-C to stop)\n")
    followed = await follow_session(client, sid, term.out, err=term.err, timeout_s=args.timeout)
    if followed.timed_out:
        term.err.write(f"orchestrator: gave up after {args.timeout:g} s (--timeout)\n")
        return EXIT_UNREACHABLE
    return followed.watch.exit_status


async def _report(client: ApiClient, args: argparse.Namespace, term: Terminal) -> int:
    sid = await _session_id(client, args.session, term)
    if args.format == "csv":
        content = (await client.download(f"/sessions/{sid}/report", format="csv")).content
    else:
        data = await client.get(f"/sessions/{sid}/report", msgspec.Raw, format="json")
        content = msgspec.json.format(bytes(data), indent=2) + b"\n"
    if args.output is None:
        term.out.write(content.decode("utf-8"))
        term.out.flush()
        return EXIT_OK
    try:
        await asyncio.to_thread(args.output.write_bytes, content)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from error
    term.err.write(f"report of {sid} written to {args.output}\n")
    return EXIT_OK
