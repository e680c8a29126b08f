"""A private Mosquitto broker for tests and the simulator, started from a generated config.

Mosquitto starts in milliseconds; it is ready when it logs that it is running. It has no
test mode, so this is also how its configuration is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO = "/usr/sbin/mosquitto"
READY_MARKER = "running"
START_TIMEOUT_S = 10.0


class BrokerError(Exception):
    """Mosquitto is missing or did not start; the message carries its own words."""


@dataclass(frozen=True, slots=True)
class Broker:
    """A running broker: where to connect."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """`mqtt://host:port`."""
        return f"mqtt://{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the broker binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def broker_config(
    host: str, port: int, *, password_file: Path | None, acl_file: Path | None
) -> str:
    """mosquitto.conf for one listener; anonymous access only when no password file is given."""
    lines = [
        "per_listener_settings false",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        f"listener {port} {host}",
        f"allow_anonymous {'false' if password_file else 'true'}",
    ]
    if password_file is not None:
        lines.append(f"password_file {password_file}")
    if acl_file is not None:
        lines.append(f"acl_file {acl_file}")
    if os.geteuid() == 0:
        # As root, Mosquitto would switch to the `mosquitto` user, which cannot read our
        # private temporary directory.
        lines.append(f"user {getpass.getuser()}")
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def mosquitto(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    prefix: Sequence[str] = (),
) -> AsyncIterator[Broker]:
    """Run Mosquitto on `host:port` until the block ends. `prefix` runs it under another
    command (for example `ip netns exec pi` to serve inside a network namespace)."""
    if not Path(MOSQUITTO).exists():  # noqa: ASYNC240 - one stat, no need for a thread
        raise BrokerError(f"{MOSQUITTO} not found: install the Debian package mosquitto")
    port = port or free_port(host)
    with tempfile.TemporaryDirectory(prefix="mosquitto-") as workdir:
        config = Path(workdir) / "mosquitto.conf"
        config.write_text(
            broker_config(host, port, password_file=password_file, acl_file=acl_file),
            encoding="utf-8",
        )
        process = await asyncio.create_subprocess_exec(
            *prefix,
            MOSQUITTO,
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None  # noqa: S101 - created with stderr=PIPE just above
        try:
            await _wait_until_running(process.stderr)
            log.debug("mosquitto running on %s:%d", host, port)
            async with asyncio.TaskGroup() as group:
                # Keep reading its log so a chatty broker never blocks on a full pipe; the
                # reader ends when the process does.
                group.create_task(_drain(process.stderr))
                try:
                    yield Broker(host=host, port=port)
                finally:
                    await _stop(process)
        finally:
            await _stop(process)


async def _wait_until_running(stderr: asyncio.StreamReader) -> None:
    seen: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while line := (await stderr.readline()).decode(errors="replace"):
                seen.append(line.rstrip())
                if READY_MARKER in line and "version" in line:
                    return
    except TimeoutError:
        pass
    raise BrokerError("mosquitto did not start: " + " | ".join(seen[-5:]))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(5):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
