"""DEMO ONLY codes: shown for the demo's own data directories and nobody else's, announced
once per time step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.demo.codes import CurrentCode, announce_codes, code_line
from orchestrator.demo.datadir import MARKER, claim_data_dir, is_demo_dir
from orchestrator.demo.errors import DemoError
from orchestrator.security import totp

T0 = datetime(2026, 1, 5, 9, 0, 10, tzinfo=UTC)


def test_demo_code_refuses_a_real_appliances_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    appliance = tmp_path / "appliance"
    assert main(["totp", "enroll", "--account", "pi", "--data-dir", str(appliance)]) == 0
    capsys.readouterr()
    assert main(["demo", "code", "--data-dir", str(appliance)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "was not created by `orchestrator demo`" in err


def test_demo_code_refuses_a_missing_dir_and_an_empty_demo_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "code", "--data-dir", str(tmp_path / "nowhere")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    claim_data_dir(tmp_path / "starting")
    assert main(["demo", "code", "--data-dir", str(tmp_path / "starting")]) == 1
    assert "still starting" in capsys.readouterr().err


def test_the_demo_claims_only_new_empty_or_its_own_dirs(tmp_path: Path) -> None:
    new, empty, occupied = tmp_path / "new" / "deeper", tmp_path / "empty", tmp_path / "occupied"
    empty.mkdir()
    occupied.mkdir()
    (occupied / "orchestrator.sqlite3").write_bytes(b"")
    claim_data_dir(new)
    claim_data_dir(empty)
    assert is_demo_dir(new)
    assert is_demo_dir(empty)
    claim_data_dir(new)  # an earlier demo's: taken as it is
    with pytest.raises(DemoError, match="not empty and was not created by the demo"):
        claim_data_dir(occupied)
    assert not (occupied / MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DemoError, match="not a directory"):
        claim_data_dir(tmp_path / "file")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reader() -> Callable[[datetime], Awaitable[CurrentCode]]:
    seed = totp.new_seed()

    async def read(now: datetime) -> CurrentCode:
        step = totp.time_step(now)
        return CurrentCode(
            code=totp.code_at(seed, step),
            step=step,
            changes_at=datetime.fromtimestamp((step + 1) * totp.STEP_S, UTC),
        )

    return read


class EnoughError(Exception):
    pass


async def test_each_new_code_is_announced_once_labelled_demo_only() -> None:
    clock = Clock(T0)
    out = StringIO()
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) > 4:
            raise EnoughError
        # The first sleep wakes early, within the same step: that step is not announced again.
        clock.now += timedelta(seconds=5 if len(pauses) == 1 else seconds)

    with pytest.raises(EnoughError):
        await announce_codes(reader(), out, clock=clock, sleep=sleep)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at :10, then just past :30, :00 and :30
    assert all("DEMO ONLY: TOTP code " in line for line in lines)
    assert len({line.split("TOTP code ")[1][:6] for line in lines}) > 1
    assert pauses[0] == pytest.approx(20.05)  # from :10 to just past the step boundary
    assert pauses[1] == pytest.approx(15.05)


def test_code_line_says_when_the_next_code_comes() -> None:
    code = CurrentCode(code="123456", step=1, changes_at=T0 + timedelta(seconds=20))
    line = code_line(code, T0)
    assert line.endswith("a real appliance never shows its codes)\n")
    assert "DEMO ONLY: TOTP code 123456" in line
    assert f"{(T0 + timedelta(seconds=20)).astimezone():%H:%M:%S}" in line
    assert "123456" not in repr(code)
