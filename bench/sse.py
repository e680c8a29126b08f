"""SSE fan-out at a set event rate: `python -m bench.sse`.

The real appliance (`orchestrator.service.run_appliance`: SQLite in a temporary data
directory, the standby network, discovery with no source, no provisioning engine) is served by
uvicorn in this process, on a loopback port chosen by the kernel; a batch session is started
through the API. Its event bus then publishes synthetic `device.state_changed` events of that
session (payloads as `orchestrator.batch.readmodels` builds them, timestamped when published)
at `--rate` events per second for `--seconds`, on an absolute schedule read from the event
loop's clock: event i is due at start + i / rate, so a late publish is caught up at once and
never shifts the ones after it. Every event goes through `EventBus.publish`, as in production:
appended to the SQLite event log, then offered to each subscriber's bounded queue (the
appliance's default size).

`--subscribers` streams (`GET /api/v1/provisioning/batch/events?session_id=...`, the API key in
`X-API-Key`) are read by another process (bench.sse_client), so that their own lag is not
measured as the appliance's. Each measures every live frame's delivery latency (its receive
time minus the event's timestamp, the same host's wall clock) and checks that it saw every
sequence number after its head up to the last one published, and that its stream was not cut
off.

CPU: the appliance and the publisher share this process. `cpu s` is the process's user +
system time over the publishing window (uvicorn, the bus, the SQLite thread and the publisher's
own work: building one small struct per event and sleeping); `loop s` is the event loop
thread's alone (everything but the SQLite thread).

The run is invalid when the publisher fell behind its schedule by more than 10 % (the machine
could not even generate the load), when the subscribers' process failed, or when the
appliance logged an error. Missed events and cut-off subscribers are findings (the target is
missed), not an invalid run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import resource
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from bench import engine
from bench.files import RunsReport, runs_report, write_report
from bench.latency import Latency
from bench.sse_client import Config, End, Result
from orchestrator.batch.pairing import NoDeviceClient
from orchestrator.batch.readmodels import event
from orchestrator.discovery.service import Discovery
from orchestrator.domain.candidate import PROGRESS, CandidateState
from orchestrator.domain.events import DeviceStateChanged, EventType
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.edges import Edges
from orchestrator.network.standby import StandbyNetwork
from orchestrator.security.stepup import SecuritySettings
from orchestrator.service import Appliance, AppServer, http_server, run_appliance
from orchestrator.settings import Settings, StorageSettings
from orchestrator.streaming.bus import EventBus

RATE = 500.0
SECONDS = 20.0
SUBSCRIBERS = 20
DEVICES = 1000
"""The synthetic fleet the events are about (their MACs)."""
BEHIND = 0.10
"""A publisher whose achieved rate is this much below the asked one could not generate the
load: the run does not count."""
GRACE_S = 5.0
"""How long after the last publish a subscriber may take to see the last event."""
READY_S = 60.0
START_S = 30.0
API = "/api/v1/provisioning"
REPO = Path(__file__).resolve().parents[1]
"""Where `python -m bench.sse_client` finds the bench package."""
TARGET_SSID = "bench-target"
TARGET_PASSWORD = "bench-password"  # noqa: S105 - a throwaway passphrase for a standby network

LIFECYCLE = (
    CandidateState.DISCOVERED,
    CandidateState.PROVISIONING,
    CandidateState.PROVISIONED,
    CandidateState.VERIFYING,
    CandidateState.VERIFIED,
)


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One SSE run."""

    rate_per_s: float
    seconds: float
    subscribers: int
    queue_size: int
    """The subscribers' queue size (the appliance's default)."""
    published: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    achieved_rate_per_s: float | None = None
    """Events after the first over the time from the first publish to the last one's start."""
    max_late_ms: float | None = None
    """The latest any publish started after its slot in the schedule."""
    latency: Latency | None = None
    """Every live frame of every subscriber."""
    delivered: int = 0
    """Live frames, summed over the subscribers."""
    missed: int | None = None
    """Events missed, summed over the subscribers (gaps and what followed a cut-off)."""
    cut_off: int | None = None
    """Subscribers whose stream ended before they saw the last event."""
    dropped_by_server: int | None = None
    """Subscribers the bus disconnected for falling behind (its own count)."""
    cpu_s: float | None = None
    """This process's CPU (appliance and publisher, every thread) over the publishing window."""
    loop_cpu_s: float | None = None
    """The event loop thread's CPU over the same window (all but the SQLite thread)."""
    cpu_percent: float | None = None
    """`cpu_s` over the window's wall time, in % of one core."""
    client_cpu_s: float | None = None
    """The subscribers' process's CPU, connecting included."""
    warnings: list[str] = msgspec.field(default_factory=list)
    """The appliance's warnings during the run (a subscriber falling behind says so)."""
    valid: bool = False
    invalid_because: list[str] = msgspec.field(default_factory=list)


Report = RunsReport[Run]
"""Every run of one invocation, with the machine it ran on."""


class Pacing(msgspec.Struct, frozen=True, kw_only=True):
    """How a paced loop kept to its schedule."""

    sent: int
    first_s: float
    """The clock when the first send started."""
    last_s: float
    """The clock when the last send started."""
    max_late_s: float


def achieved_rate(pacing: Pacing) -> float | None:
    """Sends per second after the first: on schedule, exactly the rate asked for."""
    span = pacing.last_s - pacing.first_s
    if pacing.sent < 2 or span <= 0:
        return None
    return (pacing.sent - 1) / span


def fell_behind(achieved: float | None, rate: float, tolerance: float = BEHIND) -> bool:
    """Whether the achieved rate is more than `tolerance` below `rate` (no rate: it did)."""
    return achieved is None or achieved < rate * (1 - tolerance)


async def pace(
    count: int,
    rate: float,
    send: Callable[[int], Awaitable[None]],
    *,
    now: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> Pacing:
    """Call `send(i)` for i in 0..count-1, each at its slot `start + i / rate` on `now`'s clock
    (an absolute schedule: a late send is followed at once by the ones already due, and a slow
    one never shifts the slots after it)."""
    start = now()
    first = last = start
    worst = 0.0
    for i in range(count):
        due = start + i / rate
        if (wait := due - now()) > 0:
            await sleep(wait)
        began = now()
        worst = max(worst, began - due)
        if i == 0:
            first = began
        last = began
        await send(i)
    return Pacing(sent=count, first_s=first, last_s=last, max_late_s=worst)


def synthetic_mac(index: int) -> Mac:
    """The `index`th device of the synthetic fleet (locally administered MACs)."""
    return parse_mac(
        f"02:5e:00:{index >> 16 & 0xFF:02x}:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"
    )


def synthetic_payloads(devices: int = DEVICES) -> Iterator[DeviceStateChanged]:
    """`device.state_changed` payloads of a fleet going through its lifecycle in waves: every
    device moves one step (discovered to provisioning, ..., verifying to verified), then every
    device the next; after verified the fleet starts over. Endless."""
    macs = [synthetic_mac(i) for i in range(devices)]
    steps = list(itertools.pairwise(LIFECYCLE))
    while True:
        for previous, new in steps:
            for mac in macs:
                yield DeviceStateChanged(
                    mac=mac, previous_state=previous, new_state=new, progress=PROGRESS.get(new)
                )


@dataclass(slots=True)
class Publisher:
    """Publishes the synthetic events of one session on the bus, keeping their seqs."""

    bus: EventBus
    session_id: str
    payloads: Iterator[DeviceStateChanged] = field(default_factory=synthetic_payloads)
    first_seq: int | None = None
    last_seq: int | None = None

    async def send(self, _: int) -> None:
        """Publish the next event, timestamped now (the appliance's own clock)."""
        built = event(
            EventType.DEVICE_STATE_CHANGED, next(self.payloads), self.session_id, datetime.now(UTC)
        )
        seq = await self.bus.publish(built)
        self.first_seq = seq if self.first_seq is None else self.first_seq
        self.last_seq = seq


class _Warnings(logging.Handler):
    """Keeps the appliance's warnings and errors of one run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _captured() -> Iterator[_Warnings]:
    handler = _Warnings()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass(frozen=True, slots=True)
class Served:
    """The appliance served on loopback."""

    appliance: Appliance
    server: AppServer
    port: int
    api_key: str
    queue_size: int


@contextlib.asynccontextmanager
async def serving(data_dir: Path) -> AsyncIterator[Served]:
    """The real appliance on `data_dir`, served by uvicorn on a free loopback port."""
    settings = Settings(
        storage=StorageSettings(data_dir=str(data_dir)),
        security=SecuritySettings(totp_required_for=frozenset()),
    )
    edges = Edges(
        devices=Discovery([], NoDeviceClient()),
        network=StandbyNetwork(settings.batch.onboarding_ssid),
    )
    async with run_appliance(settings, edges=edges) as appliance:
        _, key = await appliance.services.api_keys.create("bench")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            port = sock.getsockname()[1]
            server = http_server(appliance, "127.0.0.1", port)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                yield Served(
                    appliance=appliance,
                    server=server,
                    port=port,
                    api_key=key,
                    queue_size=settings.streams.queue_size,
                )
            finally:
                server.request_exit()
                async with asyncio.timeout(engine.STOP_TIMEOUT_S):
                    await task


async def start_session(served: Served) -> str:
    """Start a batch session through the API; its id."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{served.port}",
        headers={"X-API-Key": served.api_key},
        trust_env=False,
        timeout=START_S,
    ) as client:
        response = await client.post(
            f"{API}/batch/start",
            json={"target_ssid": TARGET_SSID, "target_password": TARGET_PASSWORD},
        )
    if response.status_code != 201:
        raise RuntimeError(f"starting a batch answered {response.status_code}")
    session_id: str = response.json()["data"]["session"]["id"]
    return session_id


@dataclass(frozen=True, slots=True)
class Window:
    """What the publishing window measured on the appliance's side."""

    pacing: Pacing | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    cpu_s: float | None = None
    loop_cpu_s: float | None = None
    wall_s: float | None = None
    dropped_by_server: int | None = None


async def _publish(served: Served, session_id: str, rate: float, seconds: float) -> Window:
    bus = served.appliance.bus
    publisher = Publisher(bus, session_id)
    loop = asyncio.get_running_loop()
    dropped = bus.dropped_subscribers
    usage, thread, wall = resource.getrusage(resource.RUSAGE_SELF), time.thread_time(), loop.time()
    pacing = await pace(
        round(rate * seconds), rate, publisher.send, now=loop.time, sleep=asyncio.sleep
    )
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return Window(
        pacing=pacing,
        first_seq=publisher.first_seq,
        last_seq=publisher.last_seq,
        cpu_s=round(cpu, 2),
        loop_cpu_s=round(time.thread_time() - thread, 2),
        wall_s=loop.time() - wall,
        dropped_by_server=bus.dropped_subscribers - dropped,
    )


@dataclass(slots=True)
class ClientOutcome:
    """The subscribers' process's outcome."""

    result: Result | None = None
    errors: list[str] = field(default_factory=list)


async def _with_subscribers(
    served: Served, session_id: str, subscribers: int, budget_s: float,
    publish: Callable[[], Awaitable[Window]],
) -> tuple[ClientOutcome, Window]:  # fmt: skip
    """Start the subscribers' process; once its streams are open, `publish`; what both saw."""
    outcome, window = ClientOutcome(), Window()
    config = Config(
        host="127.0.0.1", port=served.port, api_key=served.api_key, session_id=session_id,
        subscribers=subscribers, grace_s=GRACE_S, budget_s=budget_s,
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sse_client",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    assert process.stdin is not None  # noqa: S101 - PIPE asked for
    assert process.stdout is not None  # noqa: S101 - PIPE asked for
    try:
        process.stdin.write(msgspec.json.encode(config) + b"\n")
        await process.stdin.drain()
        try:
            async with asyncio.timeout(READY_S):
                line = await process.stdout.readline()
        except TimeoutError:
            line = b""
        if line.strip() == b"ready":
            window = await publish()
            end = End(first_seq=window.first_seq, last_seq=window.last_seq)
            process.stdin.write(msgspec.json.encode(end) + b"\n")
            await process.stdin.drain()
            try:
                async with asyncio.timeout(GRACE_S + engine.STOP_TIMEOUT_S + READY_S):
                    line = await process.stdout.readline()
            except TimeoutError:
                line = b""
                outcome.errors.append("the subscribers' process did not report in time")
        elif not line:
            outcome.errors.append(f"the subscribers were not ready within {READY_S:.0f} s")
        # A process that gave up before it was ready wrote its result instead of `ready`.
        if line.strip() not in (b"", b"ready"):
            outcome.result = msgspec.json.decode(line, type=Result)
        elif not outcome.errors:
            outcome.errors.append("the subscribers' process ended silently")
    finally:
        process.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(engine.STOP_TIMEOUT_S):
                await process.wait()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
    return outcome, window


def judge(
    run: Run, window: Window, clients: ClientOutcome, logged: Sequence[logging.LogRecord]
) -> Run:
    """The run from what the publisher, the subscribers and the appliance's log say."""
    reasons = list(clients.errors)
    result = clients.result
    if result is not None and result.error:
        reasons.append(f"the subscribers: {result.error}")
    pacing = window.pacing
    achieved = achieved_rate(pacing) if pacing else None
    if pacing is not None and fell_behind(achieved, run.rate_per_s):
        shown = f"{achieved:.0f}" if achieved is not None else "no"
        reasons.append(
            f"the publisher fell behind: {shown} events/s of {run.rate_per_s:g} asked for"
        )
    reasons += [
        f"the appliance logged: {r.getMessage()[:200]}"
        for r in logged
        if r.levelno >= logging.ERROR
    ]
    warnings = [r.getMessage()[:200] for r in logged if r.levelno < logging.ERROR][:20]
    run = msgspec.structs.replace(
        run,
        published=pacing.sent if pacing else 0,
        first_seq=window.first_seq,
        last_seq=window.last_seq,
        achieved_rate_per_s=round(achieved, 1) if achieved is not None else None,
        max_late_ms=round(pacing.max_late_s * 1000, 2) if pacing else None,
        dropped_by_server=window.dropped_by_server,
        cpu_s=window.cpu_s,
        loop_cpu_s=window.loop_cpu_s,
        cpu_percent=round(100 * window.cpu_s / window.wall_s, 1)
        if window.cpu_s is not None and window.wall_s
        else None,
        warnings=warnings,
        valid=pacing is not None and not reasons,
        invalid_because=reasons or ([] if pacing else ["nothing was published"]),
    )
    if result is None:
        return run
    return msgspec.structs.replace(
        run,
        latency=result.latency,
        delivered=result.delivered,
        missed=sum(s.missed for s in result.streams),
        cut_off=sum(s.cut_off for s in result.streams),
        client_cpu_s=result.cpu_s,
    )


async def measure(
    rate: float = RATE, seconds: float = SECONDS, subscribers: int = SUBSCRIBERS
) -> Run:
    """One run (see the module's docstring)."""
    run = Run(rate_per_s=rate, seconds=seconds, subscribers=subscribers, queue_size=0)
    window, clients = Window(), ClientOutcome()
    with _captured() as logged, tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        try:
            async with serving(Path(tmp)) as served:
                run = msgspec.structs.replace(run, queue_size=served.queue_size)
                session_id = await start_session(served)

                async def publish() -> Window:
                    return await _publish(served, session_id, rate, seconds)

                budget = seconds * (1 + BEHIND) * 2 + GRACE_S + READY_S
                clients, window = await _with_subscribers(
                    served, session_id, subscribers, budget, publish
                )
        except Exception as exc:  # noqa: BLE001 - a crash is this run's finding
            clients.errors.append(f"the run crashed: {engine.describe(exc)}")
        return judge(run, window, clients, logged.records)


async def run_bench(
    rate: float = RATE, seconds: float = SECONDS, subscribers: int = SUBSCRIBERS
) -> Report:
    """One SSE run."""
    return runs_report("sse", [await measure(rate, seconds, subscribers)])


def _num(value: float | None, width: int, spec: str) -> str:
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def table(report: Report) -> str:
    """The report as a text table."""
    lines = [
        f"{'subs':>4} {'ev/s':>6} {'got ev/s':>8} {'late ms':>7} {'events':>6} "
        f"{'p50/p99/max ms':>24} {'missed':>6} {'cut':>3} {'cpu s':>6} {'cpu %':>5} "
        f"{'loop s':>6} {'subs s':>6}  valid"
    ]
    for r in report.runs:
        verdict = "yes" if r.valid else "INVALID: " + "; ".join(r.invalid_because)
        lat = r.latency
        spread = (
            f"{lat.p50_ms:>7.2f}/{lat.p99_ms:>7.2f}/{lat.max_ms:>8.2f}"
            if lat and lat.p50_ms is not None and lat.p99_ms is not None and lat.max_ms is not None
            else f"{'-':>24}"
        )
        lines.append(
            f"{r.subscribers:>4} {r.rate_per_s:>6g} {_num(r.achieved_rate_per_s, 8, '.1f')} "
            f"{_num(r.max_late_ms, 7, '.1f')} {r.published:>6} {spread} "
            f"{_num(r.missed, 6, 'd')} {_num(r.cut_off, 3, 'd')} {_num(r.cpu_s, 6, '.2f')} "
            f"{_num(r.cpu_percent, 5, '.0f')} {_num(r.loop_cpu_s, 6, '.2f')} "
            f"{_num(r.client_cpu_s, 6, '.2f')}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write the report, print the table; 1 if the run is invalid."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.sse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=RATE, help="events per second (500)")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="publishing time (20)")
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help="streams (20)")
    parser.add_argument("--out", type=Path, default=engine.RESULTS_DIR, help="report directory")
    args = parser.parse_args(argv)
    report = asyncio.run(run_bench(args.rate, args.seconds, args.subscribers))
    path = write_report(report, args.out)
    print(table(report))
    print(f"report: {path}")
    return 0 if all(r.valid for r in report.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
