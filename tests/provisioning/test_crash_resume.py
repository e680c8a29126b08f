"""Crash and resume, end to end: `orchestrator serve` is killed (SIGKILL) at random moments
during a batch of a loopback fleet and restarted on the same data directory each time; the
batch still ends with every device verified or failed as its fault predicts, and no device is
given one attempt's credentials twice.

The fleet (devices, mDNS, the target network's Mosquitto with dynamic security) lives in the
test process; only the orchestrator is a child process, so killing it loses exactly what a
power cut would. The moments are drawn from a seeded generator (CRASH_TEST_SEED overrides the
seed; every failure message names it); where they land in the batch still depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.device.faults import FaultProfile
from orchestrator.device.settings import AgentTiming
from orchestrator.sim.broker import free_port
from orchestrator.sim.fleet import Fleet, FleetSpec, loopback_fleet
from tests.api.sse import SseReader

SEED = int(os.environ.get("CRASH_TEST_SEED", "20_240_611"))
DEVICES = 30
WRONG_PASSWORD = 4
KILLS = 10
KILL_AFTER_S = (0.2, 2.0)
"""Each kill comes this long (uniform) after the batch was set going again."""
TIMING = AgentTiming(
    join_attempts=3, leave_after_s=0.4, join_retry_s=0, connect_timeout_s=5, reconnect_s=0,
    reboot_s=0, flap_s=0, stale_gap_s=0, slow_answer_s=0,
)  # fmt: skip
"""tests/sim/test_fleet.py's FAST, but each device holds its credentials a moment before it
leaves: long enough for kills to land between delivery and proof."""
WAVE = 2
"""Devices in flight at once: small, so that the batch takes longer than the first kills
(15 waves of at least leave_after_s each) and they land in the middle of it."""
SESSION_CONFIG = {
    "discovery_timeout_seconds": 60,
    "provisioning_timeout_seconds": 30,
    "verification_timeout_seconds": 30,
}
IN_FLIGHT = {"provisioning", "provisioned", "verifying"}
START_TIMEOUT_S = 15.0
DISCOVERY_TIMEOUT_S = 20.0
FINISH_TIMEOUT_S = 40.0
READY_MARKER = "Uvicorn running on"
API = "/api/v1/provisioning"
LOG_EXCERPT_LINES = 60
ALL = {"only_allowlisted": False}
"""provision-all's body: the fleet is not on the allowlist."""


@dataclass
class Runs:
    """`orchestrator serve` as a child process, started again after every kill; keeps every
    line the runs wrote to stderr."""

    command: list[str]
    env: dict[str, str]
    group: asyncio.TaskGroup
    log: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    count: int = 0

    async def start(self) -> None:
        """Start a run and wait until its API listens."""
        self.count += 1
        self.log.append(f"===== run {self.count} =====\n")
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self.process = process
        assert process.stderr is not None
        ready = asyncio.Event()
        self.group.create_task(self._drain(process.stderr, ready))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await ready.wait()
        except TimeoutError:
            pytest.fail(f"run {self.count} not listening after {START_TIMEOUT_S} s{self.excerpt()}")
        if process.returncode is not None or not any(READY_MARKER in s for s in self._this_run()):
            await process.wait()
            pytest.fail(f"run {self.count} exited ({process.returncode}) at start{self.excerpt()}")

    async def kill(self) -> None:
        """SIGKILL the running process: no cleanup of any kind runs."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        if process is not None:
            async with asyncio.timeout(10):
                await process.wait()

    async def _drain(self, stream: asyncio.StreamReader, ready: asyncio.Event) -> None:
        # Ends at EOF, when the process is gone; EOF also wakes a start that waits in vain.
        try:
            async for raw in stream:
                line = raw.decode(errors="replace")
                self.log.append(line)
                if READY_MARKER in line:
                    ready.set()
        finally:
            ready.set()

    def _this_run(self) -> list[str]:
        marker = f"===== run {self.count} =====\n"
        return self.log[len(self.log) - self.log[::-1].index(marker) :]

    def excerpt(self) -> str:
        """The notable lines of every run and the tail of the log, for a failure message."""
        notable = [
            line
            for line in self.log
            if line.startswith("=====")
            or (
                any(word in line for word in ("WARNING", "ERROR", "Traceback", "resuming", "never"))
                # asyncio's note for every frame an event stream still writes after its client
                # left: the test closes streams half-way through their snapshot.
                and "socket.send() raised exception" not in line
            )
        ]
        tail = self.log[-LOG_EXCERPT_LINES:]
        return (
            f"\n--- orchestrator stderr, notable lines ---\n{''.join(notable[-LOG_EXCERPT_LINES:])}"
            f"--- orchestrator stderr, last {len(tail)} lines ---\n{''.join(tail)}"
        )


@contextlib.asynccontextmanager
async def orchestrator_runs(config: Path, env: dict[str, str]) -> AsyncIterator[Runs]:
    """Runs of `serve --config config`; whatever runs is killed when the block ends."""
    command = [sys.executable, "-m", "orchestrator", "serve", "--config", str(config)]
    async with asyncio.TaskGroup() as group:
        runs = Runs(command=command, env=env, group=group)
        try:
            yield runs
        finally:
            await runs.kill()


def child_env(broker_password: str) -> dict[str, str]:
    """This environment minus the developer's ORCHESTRATOR_* settings, plus the broker
    admin's password (which belongs in the environment, not the config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_BROKER__PASSWORD"] = broker_password
    return env


def write_config(
    path: Path, *, data_dir: Path, api_port: int, device_port: int, fleet: Fleet, admin: str
) -> Path:
    """The appliance's configuration for this fleet: mDNS discovery on loopback, no radio,
    the fleet's broker, step-up off (the test cannot type TOTP codes)."""
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {api_port}

[storage]
data_dir = "{data_dir}"

[security]
totp_required_for = []

[streams]
heartbeat_s = 1.0

[network]
backend = "standby"
address = "127.0.0.1"

[discovery]
sources = ["mdns"]
mdns_service_type = "{fleet.service_type}"
device_port = {device_port}

[broker]
url = "{fleet.broker.url}"
username = "{admin}"

[engine]
max_concurrent_devices = {WAVE}

[logging]
level = "INFO"
""",
        encoding="utf-8",
    )
    return path


async def create_api_key(config: Path, env: dict[str, str]) -> str:
    """`orchestrator apikey create`: the key it prints."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "apikey", "create", "--name", "crash-test",
        "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    async with asyncio.timeout(START_TIMEOUT_S):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    return out.decode().strip()


def data(response: httpx.Response, status: int) -> dict[str, Any]:
    """The envelope's `data`, once the status is the one expected."""
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()["data"]
    return body


async def wait_for_session(
    client: httpx.AsyncClient,
    session_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout_s: float,
) -> dict[str, Any]:
    """Follow the event stream until a `session.status` satisfies `done`; that session."""
    async with (
        asyncio.timeout(timeout_s),
        client.stream("GET", f"{API}/batch/events", params={"session_id": session_id}) as stream,
    ):
        assert stream.status_code == 200
        reader = SseReader(stream)
        while True:
            frame = await reader.next()
            if frame.type == "session.status":
                session: dict[str, Any] = frame.data["payload"]["session"]
                if done(session):
                    return session


async def states(client: httpx.AsyncClient, session_id: str) -> dict[str, int]:
    """How many devices of the session are in each state."""
    view = data(await client.get(f"{API}/batch/{session_id}"), 200)
    return dict(Counter(d["state"] for d in view["devices"]))


def finished(session: dict[str, Any]) -> bool:
    """Every device verified or failed."""
    return bool(session["verified_count"] + session["failed_count"] == DEVICES)


async def restart_and_resume(runs: Runs, client: httpx.AsyncClient, session_id: str) -> None:
    """What an operator does after a power cut: start the appliance, resume the session it
    lists as recoverable, and provision all again (which starts what is still discovered)."""
    await runs.start()
    data(await client.get("/api/v1/health"), 200)
    recoverable = data(await client.get(f"{API}/sessions/recoverable"), 200)["sessions"]
    assert session_id in [s["id"] for s in recoverable], recoverable
    data(await client.post(f"{API}/sessions/{session_id}/resume"), 200)
    data(await client.post(f"{API}/batch/{session_id}/provision-all", json=ALL), 202)


async def start_batch(client: httpx.AsyncClient, spec: FleetSpec) -> str:
    """Start a batch for the fleet's network; its session id."""
    started = await client.post(
        f"{API}/batch/start",
        json={
            "target_ssid": spec.target_ssid,
            "target_password": spec.target_password,
            "config": SESSION_CONFIG,
        },
    )
    session_id: str = data(started, 201)["session"]["id"]
    return session_id


def not_as_predicted(fleet: Fleet, devices: list[dict[str, Any]]) -> list[str]:
    """Devices that did not end as their fault predicts: verified without one; failed, for
    the reason the device itself reports (auth_error), with a wrong password."""
    by_mac = {d["mac"]: d for d in devices}
    wrong = []
    for simulated in fleet.devices:
        fault = simulated.agent.fault
        device = by_mac.get(simulated.mac)
        if device is None:
            wrong.append(f"{simulated.mac} ({fault}): not in the session")
            continue
        ended = device["state"], device.get("error_message", "")
        if fault is FaultProfile.WRONG_PASSWORD:
            as_predicted = ended[0] == "failed" and "auth_error" in ended[1]
        else:
            as_predicted = ended[0] == "verified"
        if not as_predicted:
            wrong.append(f"{simulated.mac} ({fault}): {ended[0]} {ended[1]}")
    return wrong


def delivered_twice(fleet: Fleet) -> dict[str, list[str]]:
    """Per device, the nonces (attempts) whose credentials it was given more than once."""
    twice = {
        d.mac: [nonce for nonce, n in Counter(d.agent.deliveries).items() if n > 1]
        for d in fleet.devices
    }
    return {mac: nonces for mac, nonces in twice.items() if nonces}


@dataclass
class Crashes:
    """What a crashed batch came to, read before the orchestrator's last run was killed."""

    kill_after: list[float]
    progress: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    """Before each kill: its pause and how many devices were in each state."""
    log: str = ""
    failure: str | None = None
    """Why the batch could not be followed to its end (None: it ended)."""
    session: dict[str, Any] = field(default_factory=dict)
    """The session as the event stream showed it at the end."""
    view: dict[str, Any] = field(default_factory=dict)
    """GET /batch/{id} at the end: the session and its devices."""

    def context(self) -> str:
        """Seed, kill moments and the orchestrator's log, for a failure message."""
        kills = "".join(f"\n  after {pause} s: {states}" for pause, states in self.progress)
        return f"\nseed {SEED}; states at each kill:{kills}{self.log}"


async def crash_a_batch(tmp_path: Path, fleet: Fleet, admin: tuple[str, str]) -> Crashes:
    """Start a batch of the whole fleet, kill and resume the orchestrator KILLS times, and
    follow the batch to its end."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible kill moments, not secrecy
    crashes = Crashes(kill_after=[round(rng.uniform(*KILL_AFTER_S), 2) for _ in range(KILLS)])
    env = child_env(admin[1])
    api_port = free_port()
    config = write_config(
        tmp_path / "orchestrator.toml",
        data_dir=tmp_path / "data",
        api_port=api_port,
        device_port=fleet.devices[0].port,
        fleet=fleet,
        admin=admin[0],
    )
    key = await create_api_key(config, env)
    async with (
        orchestrator_runs(config, env) as runs,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"X-API-Key": key},
            timeout=10,
            trust_env=False,
        ) as client,
    ):
        await runs.start()
        session_id = await start_batch(client, fleet.spec)
        try:
            await wait_for_session(
                client, session_id, lambda s: s["device_count"] == DEVICES, DISCOVERY_TIMEOUT_S
            )
        except TimeoutError:
            crashes.failure = f"not all discovered in {DISCOVERY_TIMEOUT_S} s"
        else:
            initiated = await client.post(f"{API}/batch/{session_id}/provision-all", json=ALL)
            assert data(initiated, 202)["initiated_count"] == DEVICES
            for pause in crashes.kill_after:
                await asyncio.sleep(pause)  # the kill moment itself, not a wait for anything
                crashes.progress.append((pause, await states(client, session_id)))
                await runs.kill()
                await restart_and_resume(runs, client, session_id)
            try:
                crashes.session = await wait_for_session(
                    client, session_id, finished, FINISH_TIMEOUT_S
                )
            except TimeoutError:
                now = await states(client, session_id)
                crashes.failure = f"not finished in {FINISH_TIMEOUT_S} s: {now}"
        crashes.view = data(await client.get(f"{API}/batch/{session_id}"), 200)
        assert runs.count == (KILLS + 1 if crashes.progress else 1)
    crashes.log = runs.excerpt()
    return crashes


async def test_a_batch_killed_ten_times_ends_as_predicted_with_no_attempt_delivered_twice(
    tmp_path: Path,
) -> None:
    spec = FleetSpec(
        devices=DEVICES, faults={FaultProfile.WRONG_PASSWORD: WRONG_PASSWORD / DEVICES}
    )
    admin = ("orchestrator", secrets.token_urlsafe(16))
    port = free_port()
    async with loopback_fleet(spec, timing=TIMING, broker_admin=admin, device_port=port) as fleet:
        # The orchestrator asks every device on one port, as on a real onboarding network.
        assert {d.port for d in fleet.devices} == {port}
        crashes = await crash_a_batch(tmp_path, fleet, admin)
    # Checked once the fleet has stopped, so that a failure is reported as itself rather
    # than inside the fleet's task groups. The agents keep what they were given.

    assert crashes.failure is None, crashes.failure + crashes.context()
    twice = delivered_twice(fleet)
    assert not twice, f"one attempt's credentials delivered twice: {twice}{crashes.context()}"
    wrong = not_as_predicted(fleet, crashes.view["devices"])
    assert not wrong, "not as predicted:\n" + "\n".join(wrong) + crashes.context()
    assert sum(d.agent.fault is FaultProfile.WRONG_PASSWORD for d in fleet.devices) == (
        WRONG_PASSWORD
    )
    for counts in (crashes.session, crashes.view["session"]):
        assert (
            counts["device_count"],
            counts["provisioned_count"],
            counts["verified_count"],
            counts["failed_count"],
        ) == (DEVICES, DEVICES - WRONG_PASSWORD, DEVICES - WRONG_PASSWORD, WRONG_PASSWORD)
    # The first kill came before the batch could have ended: a batch was crashed.
    assert IN_FLIGHT & set(crashes.progress[0][1]), crashes.context()
