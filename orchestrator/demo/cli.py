"""The `demo` subcommand: `orchestrator demo` runs the demo until interrupted;
`orchestrator demo code --data-dir DIR` prints a demo appliance's current TOTP code."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from pathlib import Path
from typing import TextIO

from orchestrator.context import configure_logging
from orchestrator.demo.appliance import DemoOptions, demo_appliance
from orchestrator.demo.codes import LABEL, announce_codes, read_code
from orchestrator.demo.errors import DemoError
from orchestrator.demo.instructions import welcome
from orchestrator.service import utc_now
from orchestrator.sim.broker import BrokerError

PROG = "orchestrator demo"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `orchestrator demo` and `orchestrator demo code`."""
    demo = commands.add_parser(
        "demo",
        help="the appliance with a simulated fleet (what `make run` runs)",
        description="Run the appliance against a simulated fleet of 12 devices and a Mosquitto "
        "broker, all on loopback, until interrupted (Ctrl-C). Prints the console URL, an API "
        "key, the TOTP enrolment and requests to try.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0: any)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        help="state directory: new, empty or an earlier demo's (default: a fresh one under "
        "the temporary directory, removed when the demo stops)",
    )
    demo.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="appliance log level (default INFO)",
    )
    actions = demo.add_subparsers(dest="demo_action", metavar="{code}")
    code = actions.add_parser(
        "code",
        help="DEMO ONLY: print the current TOTP code of a demo appliance",
        description="Print the current TOTP code of the demo appliance whose data directory is "
        "given. Refuses any directory the demo did not create.",
    )
    code.add_argument("--data-dir", type=Path, required=True, help="the demo's data directory")


def run_demo(args: argparse.Namespace) -> int:
    """The `demo` command."""
    if args.demo_action == "code":
        return asyncio.run(print_code(args.data_dir, sys.stdout, sys.stderr))
    configure_logging(args.log_level)
    options = DemoOptions(
        host=args.host, port=args.port, data_dir=args.data_dir, log_level=args.log_level
    )
    try:
        asyncio.run(run(options, sys.stdout, own_command()))
    except (DemoError, BrokerError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


async def run(options: DemoOptions, out: TextIO, command: str) -> None:
    """Run the demo, describe it on `out` and announce its codes there, until SIGINT or
    SIGTERM; then stop everything."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with demo_appliance(options) as demo, asyncio.TaskGroup() as tasks:
            out.write(welcome(demo, command))
            out.flush()
            codes = tasks.create_task(announce_codes(demo.current_code, out, clock=utc_now))
            await stop.wait()
            codes.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    out.write("demo stopped\n")
    out.flush()


async def print_code(data_dir: Path, out: TextIO, err: TextIO) -> int:
    """`demo code`: the code on `out`, alone (for `$(...)`); a refusal on `err`."""
    try:
        code = await read_code(data_dir, utc_now())
    except DemoError as exc:
        err.write(f"{PROG} code: {exc}\n")
        return 1
    out.write(f"{code.code}\n")
    seconds = max(int((code.changes_at - utc_now()).total_seconds()), 0)
    err.write(f"{LABEL}: valid now; the next code takes over in {seconds} s\n")
    return 0


def own_command() -> str:
    """How to run `orchestrator` again, as the running one was run."""
    script = Path(sys.executable).with_name("orchestrator")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m orchestrator"
