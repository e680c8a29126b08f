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
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_CTRL = "/usr/bin/mosquitto_ctrl"
DYNSEC_PLUGIN_NAME = "mosquitto_dynamic_security.so"


def dynsec_plugin() -> str:
    """The dynamic security plugin of Debian's mosquitto package, for this machine's
    architecture (x86_64 in CI, aarch64 on the Pi)."""
    found = sorted(Path("/usr/lib").glob(f"*/{DYNSEC_PLUGIN_NAME}"))
    if not found:
        raise BrokerError(f"{DYNSEC_PLUGIN_NAME} not found under /usr/lib: install mosquitto")
    return str(found[0])


DYNSEC_FILE = "dynamic-security.json"
READY_MARKER = "running"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
TERM_AGAIN_S = 0.2
WAKE_TIMEOUT_S = 0.5


class BrokerError(Exception):
    """Mosquitto is missing or did not start; the message carries its own words."""


@dataclass(frozen=True, slots=True)
class Broker:
    """A running broker: where to connect, and its dynamic security admin (username,
    password) when it runs the plugin."""

    host: str
    port: int
    admin: tuple[str, str] | None = field(default=None, repr=False)

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
    host: str,
    port: int,
    *,
    password_file: Path | None,
    acl_file: Path | None,
    dynsec_file: Path | None = None,
) -> str:
    """mosquitto.conf for one listener; anonymous access only without a password file or the
    dynamic security plugin (`dynsec_file`, its JSON state)."""
    secured = password_file is not None or dynsec_file is not None
    lines = [
        "per_listener_settings false",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        f"listener {port} {host}",
        f"allow_anonymous {'false' if secured else 'true'}",
    ]
    if password_file is not None:
        lines.append(f"password_file {password_file}")
    if acl_file is not None:
        lines.append(f"acl_file {acl_file}")
    if dynsec_file is not None:
        lines += [f"plugin {dynsec_plugin()}", f"plugin_opt_config_file {dynsec_file}"]
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
    admin: tuple[str, str] | None = None,
    dynsec_file: Path | None = None,
) -> AsyncIterator[Broker]:
    """Run Mosquitto on `host:port` until the block ends. `prefix` runs it under another
    command (for example `ip netns exec pi` to serve inside a network namespace).

    With `admin` (username, password), the broker runs the dynamic security plugin and lets
    in no one else until accounts are made. Its state lives in `dynsec_file` (created with
    that admin if missing; kept afterwards, so a restart finds the same accounts) or, by
    default, in the broker's temporary directory.
    """
    if not Path(MOSQUITTO).exists():  # noqa: ASYNC240 - one stat, no need for a thread
        raise BrokerError(f"{MOSQUITTO} not found: install the Debian package mosquitto")
    if admin is None and dynsec_file is not None:
        raise ValueError("dynsec_file needs admin")
    if admin is not None and password_file is not None:
        raise ValueError("dynamic security replaces the password file: give one of them")
    port = port or free_port(host)
    with tempfile.TemporaryDirectory(prefix="mosquitto-") as workdir:
        if admin is not None:
            dynsec_file = dynsec_file or Path(workdir) / DYNSEC_FILE
            if not dynsec_file.exists():
                await init_dynsec(dynsec_file, admin)
        config = Path(workdir) / "mosquitto.conf"
        config.write_text(
            broker_config(
                host, port, password_file=password_file, acl_file=acl_file, dynsec_file=dynsec_file
            ),
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
                    yield Broker(host=host, port=port, admin=admin)
                finally:
                    # Only a broker in our own namespace can be reached to be woken.
                    await _stop(process, wake=None if prefix else (host, port))
        finally:
            await _stop(process)


async def init_dynsec(path: Path, admin: tuple[str, str]) -> None:
    """Create the dynamic security plugin's state file with one admin account (allowed to
    run the plugin's commands and to subscribe to anything, not to publish elsewhere)."""
    if not Path(MOSQUITTO_CTRL).exists():  # noqa: ASYNC240 - one stat
        raise BrokerError(
            f"{MOSQUITTO_CTRL} not found: install the Debian package mosquitto-clients"
        )
    username, password = admin
    # The password goes on the command line (mosquitto_ctrl would otherwise ask a terminal):
    # fine for the test broker, whose admin is a throwaway.
    process = await asyncio.create_subprocess_exec(
        MOSQUITTO_CTRL, "dynsec", "init", str(path), username, password,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            output, _ = await process.communicate()
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise BrokerError("mosquitto_ctrl dynsec init did not finish") from exc
    if process.returncode != 0:
        raise BrokerError(f"mosquitto_ctrl dynsec init failed: {output.decode(errors='replace')}")


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


async def _stop(process: asyncio.subprocess.Process, wake: tuple[str, int] | None = None) -> None:
    if process.returncode is not None:
        return
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            # Mosquitto 2.0 loses a SIGTERM that comes between its "running" line and its
            # main loop (it sets its run flag only then), so ask again until it goes.
            while True:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                if wake is not None:
                    await _wake(*wake)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TERM_AGAIN_S):
                        await process.wait()
                        return
    except TimeoutError:
        process.kill()
        await process.wait()


async def _wake(host: str, port: int) -> None:
    """Knock on the broker's listener. Mosquitto (2.0.11) blocks signals while it waits for
    socket events, and an idle broker waits for seconds: a new connection makes it return
    and act on the pending SIGTERM at once."""
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(WAKE_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            await writer.wait_closed()
