"""End-to-end cost of a batch: `python -m bench.engine`.

A loopback fleet (reference device agents on 127.77.x.y, mDNS on loopback, a private
Mosquitto with dynamic security) runs in this process; `orchestrator serve` runs as a child
process configured for it, with one event stream (a dashboard) attached. Each run starts a
batch, waits until mDNS discovery has found every device (timed on its own), then sends them
all through the engine with provision-all, in waves of `max_concurrent_devices`.

Clock: from the provision-all request (this process's wall clock, read just before it is
sent) to the latest `verified_at` the orchestrator records (its wall clock: the same host);
the end of the batch is followed over the SSE stream. The orchestrator's CPU (utime + stime
of all its threads, /proc/<pid>/stat) is read just before the request and once the stream
shows every device settled; its peak RSS is VmHWM over its whole life (/proc/<pid>/status).

Zero-latency runs (every device delay 0) measure the orchestrator's own cost. Join-delay runs
(each device leaves `--join-delay` s after accepting credentials) are compared with the ideal
ceil(N / wave) * delay and with a fresh fleet of the same seed provisioned one at a time.

A run is invalid when a device was not discovered or not verified, the fleet misbehaved (a
device not online at the end, one given credentials twice, the broker gone) or the
orchestrator logged an error or died, or the kernel's drop counters moved (loopback traffic
goes through the same receive backlog): its times would measure a fault, not the engine, so it
gets no wall time and no per-device cost. `--profile DIR` records a flame graph of the
orchestrator per run with py-spy (its sampling costs CPU: such runs are not for the targets).
Reports go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.files import RunsReport, runs_report, write_report
from orchestrator.device.lifecycle import Phase
from orchestrator.device.settings import AgentTiming
from orchestrator.security.apikeys import ApiKeys
from orchestrator.service import open_store, utc_now
from orchestrator.settings import load_settings
from orchestrator.sim.broker import Broker, free_port
from orchestrator.sim.fleet import Fleet, FleetSpec, loopback_fleet
from orchestrator.sim.kernel import read_drop_counters

SIZES = (100, 500, 1000)
DELAYED = (100,)
JOIN_DELAY_S = 2.0
WAVE = 8
SEED = 20_240_611
RESULTS_DIR = Path(__file__).parent / "results"
API = "/api/v1/provisioning"
ALL = {"only_allowlisted": False}
"""provision-all's body: the fleet is not on the allowlist."""
SESSION_CONFIG = {
    "discovery_timeout_seconds": 3600,
    "provisioning_timeout_seconds": 120,
    "verification_timeout_seconds": 90,
}
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
RECONNECT_S = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY_SPY = Path(sys.executable).with_name("py-spy")
PROFILE_RATE_HZ = 100


def agent_timing(join_delay_s: float = 0.0) -> AgentTiming:
    """Every device delay 0 but the join delay: between accepting credentials and leaving
    the onboarding network for the target network."""
    return AgentTiming(
        leave_after_s=join_delay_s, join_retry_s=0, reconnect_s=0, reboot_s=0, flap_s=0,
        stale_gap_s=0, slow_answer_s=0,
    )  # fmt: skip


def discovery_budget_s(devices: int) -> float:
    """How long discovery may take before the run is given up as invalid."""
    return 30.0 + 0.2 * devices


def batch_budget_s(devices: int, join_delay_s: float, wave: int) -> float:
    """How long provisioning may take before the run is given up as invalid."""
    return 60.0 + 0.1 * devices + 2.0 * math.ceil(devices / wave) * (join_delay_s + 0.2)


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One batch: a fresh fleet through a fresh orchestrator."""

    scenario: str
    """`zero-latency`, `join-delay`, or `serial` (the join-delay fleet one at a time)."""
    devices: int
    join_delay_s: float
    wave: int
    discovered: int = 0
    discovery_s: float | None = None
    """Batch start to the last device's `discovered_at` (orchestrator clock)."""
    discovery_cpu_s: float | None = None
    verified: int = 0
    failed: int = 0
    wall_s: float | None = None
    """provision-all to the last device's `verified_at`; None when the run is invalid."""
    cpu_s: float | None = None
    """Orchestrator CPU (user + system, all threads) within the provisioning window."""
    cpu_ms_per_device: float | None = None
    peak_rss_mib: float | None = None
    fleet_cpu_s: float | None = None
    """This process (the fleet and the bench's client) within the window: on a small
    machine the fleet competes with the orchestrator for the same cores."""
    broker_cpu_s: float | None = None
    stage_ms: dict[str, float] = msgspec.field(default_factory=dict)
    """Mean duration of each engine stage (from GET /metrics)."""
    kernel_drops: dict[str, int] = msgspec.field(default_factory=dict)
    """Host-wide kernel drop counters that moved during the run (see sim.kernel)."""
    profile: str | None = None
    """The run's py-spy flame graph (`--profile`)."""
    ideal_s: float | None = None
    """Join-delay runs: ceil(devices / wave) * join delay."""
    vs_ideal: float | None = None
    serial_s: float | None = None
    """Join-delay runs: the wall time of the same fleet one device at a time."""
    speedup: float | None = None
    valid: bool = False
    invalid_because: list[str] = msgspec.field(default_factory=list)


Report = RunsReport[Run]
"""Every run of one invocation, with the machine it ran on."""


# -- processes -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU seconds (utime + stime) of process `pid`, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # The command name may hold spaces and parentheses: fields count from its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    """VmHWM of process `pid`: its peak resident set, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for process {pid}")


def rss_mib(pid: int) -> float:
    """VmRSS of process `pid`: its resident set now, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def child_pid(command: str) -> int | None:
    """A child of this process running `command` (its /proc comm), if there is one."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text(encoding="ascii")
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid == me and comm == command:
                return int(entry.name)
    return None


def _alive(pid: int | None) -> bool:
    return pid is not None and Path(f"/proc/{pid}").exists()


@dataclass(frozen=True, slots=True)
class Orchestrator:
    """A running `orchestrator serve` and an API client holding its key."""

    pid: int
    client: httpx.AsyncClient
    log: Path

    def errors(self) -> list[str]:
        """What its log reports as errors: ERROR lines and each traceback's last line."""
        return log_errors(self.log)


def log_errors(log: Path) -> list[str]:
    """The ERROR lines of an orchestrator log, and the exception line ending each traceback."""
    found: list[str] = []
    in_traceback = False
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = False
            found.append(line)
        elif " ERROR " in line:
            found.append(line)
    return found


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What a run changes in the orchestrator's configuration beyond the fleet's own."""

    sources: tuple[str, ...] = ("mdns",)
    """Discovery sources (`[discovery] sources`)."""
    lease_file: Path | None = None
    """dnsmasq's lease file, for the `lease` source."""
    dhcp_events_file: Path | None = None
    arp_interface: str | None = None
    """Sweep this interface with the `arp` source (`[network] interface`)."""
    arp_sweep: str | None = None
    arp_interval_s: float | None = None
    queue_size: int | None = 1_000_000
    """`[streams] queue_size`; None keeps the appliance's default. The engine runs' own
    stream is read by this busy process: it must never be cut for lagging."""
    profile: Path | None = None
    """Record a py-spy flame graph (SVG) of the orchestrator here while it runs."""


def write_config(
    path: Path,
    *,
    data_dir: Path,
    api_port: int,
    broker: Broker,
    service_type: str,
    device_port: int,
    wave: int,
    options: ServeOptions = ServeOptions(),
) -> None:
    """The appliance's configuration: discovery on loopback (mDNS unless `options` say
    otherwise), no radio, `broker`, step-up off (nobody types TOTP codes here)."""
    if broker.admin is None:
        raise ValueError("the fleet's broker needs a dynamic security admin")
    discovery = [f"sources = [{', '.join(f'{s!r}' for s in options.sources)}]"]
    if options.lease_file is not None:
        discovery.append(f'lease_file = "{options.lease_file}"')
    if options.dhcp_events_file is not None:
        discovery.append(f'dhcp_events_file = "{options.dhcp_events_file}"')
    if options.arp_sweep is not None:
        discovery.append(f'arp_sweep = "{options.arp_sweep}"')
    if options.arp_interval_s is not None:
        discovery.append(f"arp_interval_s = {options.arp_interval_s}")
    streams = "" if options.queue_size is None else f"queue_size = {options.queue_size}"
    interface = f'interface = "{options.arp_interface}"' if options.arp_interface else ""
    newline = "\n"
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
{streams}

[network]
backend = "standby"
address = "127.0.0.1"
{interface}

[discovery]
{newline.join(discovery)}
mdns_service_type = "{service_type}"
device_port = {device_port}

[broker]
url = "{broker.url}"
username = "{broker.admin[0]}"

[engine]
max_concurrent_devices = {wave}

[logging]
level = "INFO"
""",
        encoding="utf-8",
    )


def serve_env(broker: Broker) -> dict[str, str]:
    """The environment of `orchestrator serve`: ours without the developer's own
    ORCHESTRATOR_* settings (they must not reach the measured process), plus the broker's
    admin password (never in the config file)."""
    if broker.admin is None:
        raise ValueError("the fleet's broker needs a dynamic security admin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_BROKER__PASSWORD"] = broker.admin[1]
    return env


async def spawn_serve(config: Path, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """Start `orchestrator serve --config config`, its output to `log`: a pipe that a busy
    bench process drained late would stall it."""
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "serve", "--config", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink, env=env,
        )  # fmt: skip


async def _create_api_key(config: Path) -> str:
    """What `orchestrator apikey create` does, without starting another interpreter."""
    async with open_store(load_settings(config, {})) as store:
        _, key = await ApiKeys(store.api_keys, utc_now).create("bench")
    return key


@contextlib.asynccontextmanager
async def orchestrator(
    fleet: Fleet,
    work: Path,
    *,
    wave: int,
    options: ServeOptions = ServeOptions(),
) -> AsyncIterator[Orchestrator]:
    """`orchestrator serve` for `fleet`, listening, until the block ends (then SIGTERM)."""
    api_port = free_port()
    config = work / "orchestrator.toml"
    write_config(
        config, data_dir=work / "data", api_port=api_port, broker=fleet.broker,
        service_type=fleet.service_type, device_port=fleet.devices[0].port, wave=wave,
        options=options,
    )  # fmt: skip
    key = await _create_api_key(config)
    log = work / "orchestrator.log"
    process = await spawn_serve(config, serve_env(fleet.broker), log)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"X-API-Key": key},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        ) as client:
            await _until_listening(client, process)
            async with profiled(process.pid, options.profile):
                yield Orchestrator(pid=process.pid, client=client, log=log)
    except Exception as exc:
        # The orchestrator's own account of a failed request goes with the failure.
        for line in log_errors(log)[-3:]:
            exc.add_note(f"orchestrator: {line[:300]}")
        raise
    finally:
        await stop(process)


@contextlib.asynccontextmanager
async def profiled(pid: int, svg: Path | None) -> AsyncIterator[None]:
    """py-spy sampling process `pid` for the block, writing a flame graph to `svg` (nothing
    when `svg` is None). It stops on SIGINT and writes the graph then."""
    if svg is None:
        yield
        return
    svg.parent.mkdir(parents=True, exist_ok=True)
    spy = await asyncio.create_subprocess_exec(
        str(PY_SPY), "record", "--pid", str(pid), "--output", str(svg), "--format",
        "flamegraph", "--rate", str(PROFILE_RATE_HZ), "--nonblocking",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        if spy.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S * 3):
                await spy.wait()
        except TimeoutError:
            spy.kill()
            await spy.wait()


async def _until_listening(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(START_TIMEOUT_S):
        while process.returncode is None:
            with contextlib.suppress(httpx.TransportError):
                # A route that needs the new key: only our process, not whoever else took
                # the free port first, answers it with 200.
                if (await client.get(f"{API}/allowlist")).status_code == 200:
                    return
            await asyncio.sleep(0.05)  # nothing to wait on but the port opening
    raise RuntimeError(f"the orchestrator exited ({process.returncode}) at start")


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM `process` and wait for it; SIGKILL after STOP_TIMEOUT_S."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@dataclass(frozen=True, slots=True)
class _Cpu:
    """CPU seconds of the orchestrator, this process (the fleet) and the broker."""

    orchestrator: float
    fleet: float
    broker: float | None

    @classmethod
    def read(cls, pid: int, broker: int | None) -> _Cpu:
        own = os.times()
        return cls(
            orchestrator=cpu_seconds(pid),
            fleet=own.user + own.system,
            broker=cpu_seconds(broker) if broker is not None and _alive(broker) else None,
        )

    def since(self, earlier: _Cpu) -> _Cpu:
        broker = None
        if self.broker is not None and earlier.broker is not None:
            broker = self.broker - earlier.broker
        return _Cpu(
            orchestrator=self.orchestrator - earlier.orchestrator,
            fleet=self.fleet - earlier.fleet,
            broker=broker,
        )


# -- the API -------------------------------------------------------------------------------


def _data(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()["data"]
    return body


async def follow(
    client: httpx.AsyncClient, session_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Follow the event stream until a `session.status` satisfies `done`; that session. A
    stream that ends is opened again (its snapshot repeats the session's status)."""
    params = {"session_id": session_id}
    while True:
        with contextlib.suppress(httpx.TransportError):
            async with client.stream("GET", f"{API}/batch/events", params=params) as stream:
                if stream.status_code != 200:
                    raise RuntimeError(f"event stream answered {stream.status_code}")
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    frame = msgspec.json.decode(line[5:])
                    if frame["type"] == "session.status":
                        session: dict[str, Any] = frame["payload"]["session"]
                        if done(session):
                            return session
        await asyncio.sleep(RECONNECT_S)  # as a browser would, before it reconnects


async def devices_of(client: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    """The session's candidates."""
    view = _data(await client.get(f"{API}/batch/{session_id}"), 200)
    devices: list[dict[str, Any]] = view["devices"]
    return devices


async def stage_means_ms(client: httpx.AsyncClient) -> dict[str, float]:
    """Mean duration per engine stage, from the Prometheus histogram's sums and counts."""
    totals: dict[str, dict[str, float]] = {}
    for line in (await client.get("/metrics")).text.splitlines():
        name, _, labels = line.partition("{")
        kind = name.removeprefix("orchestrator_stage_duration_seconds_")
        if kind in ("sum", "count") and 'stage="' in labels:
            stage = labels.split('stage="', 1)[1].split('"', 1)[0]
            totals.setdefault(stage, {})[kind] = float(line.rsplit(" ", 1)[1])
    return {
        stage: round(t["sum"] * 1000 / t["count"], 2)
        for stage, t in totals.items()
        if t.get("count")
    }


def _latest(devices: list[dict[str, Any]], field: str) -> datetime | None:
    stamps = [datetime.fromisoformat(d[field]) for d in devices if d.get(field)]
    return max(stamps) if stamps else None


# -- one run -------------------------------------------------------------------------------


Window = Callable[["Orchestrator", str], contextlib.AbstractAsyncContextManager[object]]
"""Entered with the orchestrator and the session id once discovery is over, left once the
batch settled: what else runs while the engine works (the load run's clients)."""


async def measure(
    devices: int,
    *,
    scenario: str = "zero-latency",
    join_delay_s: float = 0.0,
    wave: int = WAVE,
    seed: int = SEED,
    profile: Path | None = None,
) -> Run:
    """A fresh fleet of `devices` (`seed`) through a fresh orchestrator with waves of `wave`
    (and a flame graph in `profile`, an SVG path)."""
    run = Run(scenario=scenario, devices=devices, join_delay_s=join_delay_s, wave=wave)
    return await measure_run(run, seed=seed, options=ServeOptions(profile=profile))


async def measure_run(
    run: Run,
    *,
    seed: int = SEED,
    options: ServeOptions = ServeOptions(),
    during: Window | None = None,
    prepare: Callable[[Fleet, Path], ServeOptions] | None = None,
) -> Run:
    """`run` measured: a fresh fleet of `run.devices` (`seed`) through a fresh orchestrator
    configured with `options` (or what `prepare` makes of them for the fleet, in the run's
    work directory), `during` around the provisioning window."""
    admin = ("orchestrator", secrets.token_urlsafe(16))
    spec = FleetSpec(devices=run.devices, seed=seed)
    timing = agent_timing(run.join_delay_s)
    drops_before = read_drop_counters()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as work:
        async with loopback_fleet(
            spec, timing=timing, broker_admin=admin, device_port=free_port()
        ) as fleet:
            if prepare is not None:
                options = prepare(fleet, Path(work))
            async with orchestrator(fleet, Path(work), wave=run.wave, options=options) as appliance:
                measured = await _batch(fleet, appliance, child_pid("mosquitto"), run, during)
    drops = read_drop_counters().moved_since(drops_before)
    profile = str(options.profile) if options.profile else None
    return with_kernel_drops(msgspec.structs.replace(measured, profile=profile), drops)


def with_kernel_drops(run: Run, drops: dict[str, int]) -> Run:
    """`run` with the kernel drop counters that moved during it: any makes it invalid (the
    loopback traffic went through the same backlog), with no wall time or per-device cost."""
    if not drops:
        return run
    reasons = [f"kernel counter {name} moved by {n}" for name, n in drops.items()]
    return msgspec.structs.replace(
        run,
        kernel_drops=drops,
        wall_s=None,
        cpu_ms_per_device=None,
        vs_ideal=None,
        valid=False,
        invalid_because=[*run.invalid_because, *reasons],
    )


async def _batch(
    fleet: Fleet, appliance: Orchestrator, broker: int | None, run: Run, during: Window | None
) -> Run:
    client, pid, n = appliance.client, appliance.pid, run.devices
    reasons: list[str] = []
    before = cpu_seconds(pid)
    body = {"target_ssid": fleet.spec.target_ssid, "target_password": fleet.spec.target_password}
    started = _data(
        await client.post(f"{API}/batch/start", json={**body, "config": SESSION_CONFIG}), 201
    )["session"]
    session_id: str = started["id"]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(discovery_budget_s(n)):
            await follow(client, session_id, lambda s: s["device_count"] >= n)
    found = await devices_of(client, session_id)
    if len(found) != n:
        reasons.append(f"{len(found)} of {n} discovered in {discovery_budget_s(n):.0f} s")
    last_found = _latest(found, "discovered_at")
    discovery_cpu = cpu_seconds(pid) - before

    async with during(appliance, session_id) if during else contextlib.nullcontext():
        window = _Cpu.read(pid, broker)
        sent = time.time()
        if not reasons:
            reasons += await _provision_all(client, session_id, run)
        used = _Cpu.read(pid, broker).since(window)
    stages = await stage_means_ms(client)
    settled = await devices_of(client, session_id)
    verified = [d for d in settled if d["state"] == "verified"]
    last_verified = _latest(verified, "verified_at")
    reasons += _fleet_faults(fleet, appliance, broker, n, len(verified))
    reasons += _failures(settled)
    valid = not reasons and last_verified is not None
    wall_s = last_verified.timestamp() - sent if valid and last_verified else None
    ideal = round(math.ceil(n / run.wave) * run.join_delay_s, 3) if run.join_delay_s else None
    return msgspec.structs.replace(
        run,
        discovered=len(found),
        discovery_s=_round(
            (last_found - datetime.fromisoformat(started["created_at"])).total_seconds()
            if last_found
            else None
        ),
        discovery_cpu_s=round(discovery_cpu, 2),
        verified=len(verified),
        failed=sum(d["state"] == "failed" for d in settled),
        wall_s=_round(wall_s),
        cpu_s=round(used.orchestrator, 2),
        cpu_ms_per_device=round(used.orchestrator * 1000 / n, 2) if valid else None,
        peak_rss_mib=round(peak_rss_mib(pid), 1),
        fleet_cpu_s=round(used.fleet, 2),
        broker_cpu_s=_round(used.broker, 2),
        stage_ms=stages,
        ideal_s=ideal,
        vs_ideal=_round(wall_s / ideal if wall_s and ideal else None),
        valid=valid,
        invalid_because=reasons,
    )


async def _provision_all(client: httpx.AsyncClient, session_id: str, run: Run) -> list[str]:
    """Send the session's devices through the engine and follow it until all settled; why
    the run does not count, if it does not."""
    n, reasons = run.devices, []
    initiated = _data(await client.post(f"{API}/batch/{session_id}/provision-all", json=ALL), 202)[
        "initiated_count"
    ]
    budget = batch_budget_s(n, run.join_delay_s, run.wave)
    try:
        async with asyncio.timeout(budget):
            await follow(client, session_id, lambda s: s["verified_count"] + s["failed_count"] >= n)
    except TimeoutError:
        reasons.append(f"the batch did not settle within {budget:.0f} s")
    if initiated != n:
        reasons.append(f"provision-all started {initiated} of {n} devices")
    return reasons


def _fleet_faults(
    fleet: Fleet, appliance: Orchestrator, broker: int | None, n: int, verified: int
) -> list[str]:
    """Why the run does not count, beyond discovery and failed devices (see `_failures`)."""
    reasons = []
    if verified != n:
        reasons.append(f"{verified} of {n} devices verified")
    offline = [d.mac for d in fleet.devices if d.agent.phase is not Phase.ONLINE]
    if offline:
        reasons.append(f"{len(offline)} devices not online at the end (e.g. {offline[0]})")
    twice = [d.mac for d in fleet.devices if len(d.agent.deliveries) > 1]
    if twice:
        reasons.append(f"{len(twice)} devices were given credentials more than once")
    if not _alive(broker):
        reasons.append("the fleet's broker is gone")
    if not _alive(appliance.pid):
        reasons.append("the orchestrator died")
    if errors := appliance.errors():
        reasons.append(f"the orchestrator logged {len(errors)} errors; first: {errors[0][:300]}")
    return reasons


def _failures(devices: list[dict[str, Any]]) -> list[str]:
    """The failed devices, counted per error message."""
    errors = Counter(d.get("error_message", "?") for d in devices if d["state"] == "failed")
    return [f"{count} devices failed: {message}" for message, count in errors.most_common()]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def measure_or_crash(run: Run, *, seed: int, profile: Path | None = None) -> Run:
    """`run` measured (see `measure`), with a run that crashed reported as an invalid run
    (the others still run)."""
    try:
        return await measure(
            run.devices, scenario=run.scenario, join_delay_s=run.join_delay_s, wave=run.wave,
            seed=seed, profile=profile,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a crash is this run's finding, not the bench's end
        return crashed(run, exc)


def crashed(run: Run, exc: BaseException) -> Run:
    """`run` as the invalid run a crash made of it."""
    return msgspec.structs.replace(
        run, valid=False, invalid_because=[f"the run crashed: {describe(exc)}"]
    )


def describe(exc: BaseException) -> str:
    """An exception in one line, its notes included; a group by what it holds."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    notes = getattr(exc, "__notes__", [])
    return " | ".join([f"{type(exc).__name__}: {exc}", *notes])


# -- the whole benchmark -------------------------------------------------------------------


async def run_bench(
    sizes: Sequence[int],
    delayed: Sequence[int],
    *,
    join_delay_s: float = JOIN_DELAY_S,
    wave: int = WAVE,
    baseline: bool = True,
    seed: int = SEED,
    profile: Path | None = None,
) -> Report:
    """Zero-latency runs of `sizes`; join-delay runs of `delayed`, each followed (with
    `baseline`) by a fresh fleet of the same seed one device at a time. One run at a time;
    with `profile` (a directory), a flame graph per run."""

    async def one(run: Run) -> Run:
        svg = None
        if profile is not None:
            svg = profile / f"engine-{run.scenario}-{run.devices}.svg"
        return await measure_or_crash(run, seed=seed, profile=svg)

    runs = [
        await one(Run(scenario="zero-latency", devices=n, join_delay_s=0.0, wave=wave))
        for n in sizes
    ]
    for n in delayed:
        run = await one(Run(scenario="join-delay", devices=n, join_delay_s=join_delay_s, wave=wave))
        if not baseline:
            runs.append(run)
            continue
        serial = await one(Run(scenario="serial", devices=n, join_delay_s=join_delay_s, wave=1))
        if run.wall_s and serial.wall_s:
            speedup = round(serial.wall_s / run.wall_s, 2)
            run = msgspec.structs.replace(run, serial_s=serial.wall_s, speedup=speedup)
        runs += [run, serial]
    return runs_report("engine", runs)


def table(report: Report) -> str:
    """The report as a text table."""

    def cell(value: float | None, width: int, digits: int = 2) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    lines = [
        f"{'scenario':<12} {'devices':>7} {'wave':>4} {'disc s':>7} {'wall s':>8} "
        f"{'cpu s':>7} {'ms/dev':>7} {'rss MiB':>7} {'fleet s':>7} {'broker s':>8} "
        f"{'ideal s':>7} {'/ideal':>6} {'serial s':>8} {'speedup':>7}  valid"
    ]
    for r in report.runs:
        verdict = "yes" if r.valid else "INVALID: " + "; ".join(r.invalid_because)
        lines.append(
            f"{r.scenario:<12} {r.devices:>7} {r.wave:>4} {cell(r.discovery_s, 7)} "
            f"{cell(r.wall_s, 8, 3)} {cell(r.cpu_s, 7)} {cell(r.cpu_ms_per_device, 7)} "
            f"{cell(r.peak_rss_mib, 7, 1)} {cell(r.fleet_cpu_s, 7)} {cell(r.broker_cpu_s, 8)} "
            f"{cell(r.ideal_s, 7, 1)} {cell(r.vs_ideal, 6)} {cell(r.serial_s, 8, 1)} "
            f"{cell(r.speedup, 7)}  {verdict}"
        )
    return "\n".join(lines)


def sizes_arg(text: str) -> list[int]:
    """Comma-separated positive fleet sizes ('' for none), as an argparse type."""
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"fleet sizes must be positive: {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table; 1 if any run is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=sizes_arg,
        default=list(SIZES),
        help="zero-latency fleet sizes, comma-separated, '' for none (default 100,500,1000)",
    )
    parser.add_argument(
        "--delayed",
        type=sizes_arg,
        default=list(DELAYED),
        help="join-delay fleet sizes, comma-separated, '' for none (default 100)",
    )
    parser.add_argument(
        "--join-delay", type=float, default=JOIN_DELAY_S, help="seconds (default 2)"
    )
    parser.add_argument("--wave", type=int, default=WAVE, help="max_concurrent_devices (default 8)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the one-at-a-time join-delay runs"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="same seed, same fleet")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="report directory")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="a py-spy flame graph per run, into DIR"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_bench(
            args.sizes,
            args.delayed,
            join_delay_s=args.join_delay,
            wave=args.wave,
            baseline=not args.no_baseline,
            seed=args.seed,
            profile=args.profile,
        )
    )
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}")
    return 0 if all(r.valid for r in report.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
