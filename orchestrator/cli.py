"""The `orchestrator` command: argv -> settings -> run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from orchestrator import __version__
from orchestrator.client.commands import CLIENT_COMMANDS, add_client_parsers, run_client
from orchestrator.context import configure_logging
from orchestrator.demo.cli import add_demo_parser, run_demo
from orchestrator.domain.errors import OrchestratorError
from orchestrator.ports.storage import StorageError
from orchestrator.security.apikeys import ApiKeys
from orchestrator.security.secretbox import SecretBox, SecretBoxError
from orchestrator.security.totp_enrollment import enroll_totp
from orchestrator.service import open_store, serve, utc_now
from orchestrator.settings import Settings, SettingsError, load_settings
from orchestrator.sim.cli import add_simulate_parser, simulate


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--data-dir", help="state directory (database, secret key)")

    parser = argparse.ArgumentParser(
        prog="orchestrator", description="Delicasa batch Wi-Fi provisioning appliance"
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", parents=[common], help="run the appliance API")
    serve_cmd.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="listen port (default 8080)")

    apikey = commands.add_parser("apikey", help="manage API keys")
    keys = apikey.add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", parents=[common], help="issue a key (printed once)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    keys.add_parser("list", parents=[common], help="list keys (ids and names, never keys)")
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key by id")
    revoke.add_argument("key_id", help="the id shown by `apikey list`")

    totp_cmd = commands.add_parser("totp", help="TOTP step-up for sensitive operations")
    totp_actions = totp_cmd.add_subparsers(dest="action", required=True)
    enroll = totp_actions.add_parser(
        "enroll", parents=[common], help="enroll a TOTP seed (shown once, as a QR code)"
    )
    enroll.add_argument(
        "--account",
        default=socket.gethostname(),
        help="the name authenticator apps show for it (default: this host's name)",
    )
    enroll.add_argument(
        "--replace",
        action="store_true",
        help="replace the enrolled seed (authenticator entries of the old one stop working)",
    )
    add_client_parsers(commands)
    add_simulate_parser(commands)
    add_demo_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, object]] = {}
    if args.data_dir:
        overrides["storage"] = {"data_dir": args.data_dir}
    server = {k: getattr(args, k, None) for k in ("host", "port")}
    if any(v is not None for v in server.values()):
        overrides["server"] = {k: v for k, v in server.items() if v is not None}
    return load_settings(args.config, os.environ, overrides)


async def _apikey(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        keys = ApiKeys(store.api_keys, utc_now)
        match args.action:
            case "create":
                record, key = await keys.create(args.name)
                print(
                    f"created API key {record.id} ({record.name}); it is shown only once",
                    file=sys.stderr,
                )
                print(key)
            case "list":
                for record in await keys.list():
                    status = (
                        f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
                    )
                    print(
                        f"{record.id}\t{record.name}\t{record.created_at:%Y-%m-%d %H:%M}Z\t{status}"
                    )
            case "revoke":
                if not await keys.revoke(args.key_id):
                    print(f"no active key with id {args.key_id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


async def _totp(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        # After open_store: it creates the data directory the key file lives in.
        sealer = SecretBox.from_key_file(settings.storage.secret_key_path)
        enrolled = await enroll_totp(
            store,
            sealer,
            issuer=settings.security.totp_issuer,
            account=args.account,
            out=sys.stdout,
            clock=utc_now,
            replace=args.replace,
        )
    if not enrolled:
        print(
            "a TOTP seed is already enrolled; pass --replace to replace it "
            "(authenticator entries of the old seed stop working)",
            file=sys.stderr,
        )
        return 1
    print("TOTP enrolled: sensitive operations now accept its codes", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `orchestrator` command."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "simulate":
        # The simulator is not the appliance: it reads no appliance configuration.
        configure_logging("INFO")
        # One uvicorn per device on the namespace tier: their start/stop lines are noise.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        return simulate(args)
    if args.command in CLIENT_COMMANDS:
        # A client of a running appliance: its URL and key, never the appliance's files.
        return run_client(args)
    return _on_this_appliance(args)


def _on_this_appliance(args: argparse.Namespace) -> int:
    """The commands that run the appliance or open its database: `serve`, `apikey`, `totp`."""
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level)
    if args.command == "serve":
        # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
        # default action that would kill the process before the store is closed. Unwind
        # through KeyboardInterrupt instead, as SIGINT does, so every `async with` exits.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            # uvloop: libuv's loop costs ~15% less CPU per provisioned device than asyncio's
            # (docs/benchmarks.md); behaviour is the same (the tests run both).
            uvloop.run(serve(settings))
        return 0
    command = _totp if args.command == "totp" else _apikey
    try:
        return asyncio.run(command(args, settings))
    except (OSError, StorageError, SecretBoxError, OrchestratorError) as exc:
        # A full disk, an unwritable or invalid data directory, a corrupt database: one line
        # saying where, not a traceback.
        print(
            f"orchestrator {args.command} {args.action}: cannot use the data directory "
            f"{settings.storage.data_dir}: {exc}",
            file=sys.stderr,
        )
        return 1
