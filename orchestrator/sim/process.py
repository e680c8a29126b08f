"""Child processes of the test bed: run one to completion, or stop a long-running one. Every
process is awaited; one that outlives its caller (timeout, cancellation) is killed first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from orchestrator.sim.setns import namespace_path

STOP_GRACE_S = 5.0


class CommandError(Exception):
    """A command failed; carries its argv, exit status and the end of its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{' '.join(self.argv[:4])} ... {status}: {stderr.strip()[-500:]}")


def in_namespace(name: str) -> tuple[str, ...]:
    """A command prefix that runs the rest in network namespace `name`, killed should this
    process die without stopping it (a crashed run must not leave dnsmasq or Mosquitto
    behind). setpriv and nsenter exec the command itself, so the child we hold is the real
    process, and unlike `ip netns exec` nsenter does not remount /sys (cheaper, hundreds of
    times per bed)."""
    return ("setpriv", "--pdeathsig", "KILL", "nsenter", f"--net={namespace_path(name)}")


async def run_command(
    argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 30.0
) -> str:
    """Run `argv` to completion and return its stdout; raise CommandError on failure."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate(stdin)
    except TimeoutError as exc:
        raise CommandError(argv, None, f"no exit within {timeout_s} s") from exc
    finally:
        await stop(process)
    if process.returncode != 0:
        raise CommandError(argv, process.returncode, err.decode(errors="replace"))
    return out.decode(errors="replace")


async def stop(process: asyncio.subprocess.Process, *, grace_s: float = STOP_GRACE_S) -> None:
    """Terminate `process` (kill it after `grace_s`) and reap it; a no-op once it has exited."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        async with asyncio.timeout(grace_s):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
