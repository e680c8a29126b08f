"""The `orchestrator` command, run for real in subprocesses: key management and `serve`."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

import orchestrator
from orchestrator.cli import main
from orchestrator.settings import DATABASE_FILE, SECRET_KEY_FILE

CLI = [sys.executable, "-m", "orchestrator"]
READY_MARKERS = ("Uvicorn running on", "Application startup complete")
STARTUP_TIMEOUT_S = 15.0
COMMAND_TIMEOUT_S = 60.0


def cli_env() -> dict[str, str]:
    """The test process's environment minus any ORCHESTRATOR_* setting of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run one `orchestrator` command to completion."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def create_key(data_dir: Path, name: str = "tablet") -> str:
    """Issue a key through the CLI and return it."""
    result = run_cli("apikey", "create", "--name", name, "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def key_id_in(key: str) -> str:
    """The id part of `dk_<id>_<secret>`."""
    return key.split("_", 2)[1]


def bytes_of_every_file(directory: Path) -> dict[Path, bytes]:
    """The content of every file under `directory` (database, -wal, -shm, key file, ...)."""
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- apikey -------------------------------------------------------------------------------------


def test_apikey_create_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    result = run_cli("apikey", "create", "--name", "tablet", "--data-dir", data_dir)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    key = lines[0]
    assert key.startswith("dk_")
    assert key_id_in(key)
    assert f"created API key {key_id_in(key)} (tablet)" in result.stderr
    assert "shown only once" in result.stderr
    assert key not in result.stderr


def test_apikey_create_makes_a_private_data_dir_and_a_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    create_key(data_dir)

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert (data_dir / DATABASE_FILE).is_file()


def test_apikey_is_stored_in_no_file_of_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir)
    secret = key.split("_", 2)[2]

    files = bytes_of_every_file(data_dir)

    assert data_dir / DATABASE_FILE in files
    for path, content in files.items():
        assert key.encode() not in content, path
        assert secret.encode() not in content, path


def test_apikey_list_shows_id_and_name_but_never_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tablet = create_key(data_dir, "tablet")
    laptop = create_key(data_dir, "laptop")

    result = run_cli("apikey", "list", "--data-dir", data_dir)

    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(row[0], row[1], row[3]) for row in rows] == [
        (key_id_in(tablet), "tablet", "active"),
        (key_id_in(laptop), "laptop", "active"),
    ]
    for key in (tablet, laptop):
        assert key not in result.stdout
        assert key not in result.stderr


def test_apikey_revoke_then_list_shows_revoked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key_id = key_id_in(create_key(data_dir))

    revoked = run_cli("apikey", "revoke", key_id, "--data-dir", data_dir)
    listed = run_cli("apikey", "list", "--data-dir", data_dir)

    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {key_id}" in revoked.stderr
    [row] = listed.stdout.splitlines()
    assert row.startswith(f"{key_id}\ttablet\t")
    assert row.split("\t")[3].startswith("revoked ")


def test_apikey_revoke_twice_or_unknown_fails(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key_id = key_id_in(create_key(data_dir))
    assert run_cli("apikey", "revoke", key_id, "--data-dir", data_dir).returncode == 0

    again = run_cli("apikey", "revoke", key_id, "--data-dir", data_dir)
    unknown = run_cli("apikey", "revoke", "nosuchkey0", "--data-dir", data_dir)

    assert again.returncode == 1
    assert f"no active key with id {key_id}" in again.stderr
    assert again.stdout == ""
    assert unknown.returncode == 1
    assert "no active key with id nosuchkey0" in unknown.stderr


# --- configuration errors -----------------------------------------------------------------------


def test_missing_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"

    result = run_cli("apikey", "list", "--config", missing, "--data-dir", tmp_path / "data")

    assert result.returncode == 2
    assert f"cannot read config file {missing}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_invalid_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.toml"
    config.write_text("[server]\nport = 99999\n", encoding="utf-8")

    result = run_cli("serve", "--config", config, "--data-dir", tmp_path / "data")

    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_setting_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [*CLI, "apikey", "list", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env={**cli_env(), "ORCHESTRATOR_SERVER__PORT": "eighty"},
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 2
    assert "server.port" in result.stderr


# --- serve --------------------------------------------------------------------------------------


@dataclass
class StderrLines:
    """Drains a child's stderr on a thread (so the pipe never fills) and hands lines over."""

    stream: IO[str]
    seen: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin draining."""
        self._thread = threading.Thread(target=self._pump, name="serve-stderr", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self.stream:
            self.seen.append(line)
            self._lines.put(line)
        self._lines.put(None)  # end of stream: the process has exited

    def wait_for(self, markers: tuple[str, ...], timeout_s: float) -> str:
        """The first line containing one of `markers`; fails on exit or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                pytest.fail(f"no {markers} within {timeout_s} s; stderr: {''.join(self.seen)}")
            if line is None:
                pytest.fail(f"serve exited before it was ready; stderr: {''.join(self.seen)}")
            if any(marker in line for marker in markers):
                return line

    def join(self) -> None:
        """Wait for the drain to finish (the process must have exited)."""
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class Served:
    """A running `orchestrator serve`."""

    process: subprocess.Popen[str]
    stderr: StderrLines
    base_url: str


@contextlib.contextmanager
def serving(data_dir: Path, *extra: str) -> Iterator[Served]:
    """Start `serve` (with `extra` arguments) on a free loopback port and yield once uvicorn
    says it listens; the process is killed on the way out whatever happened."""
    port = free_port()
    command = [*CLI, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [*command, "--port", str(port), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert process.stderr is not None
    lines = StderrLines(process.stderr)
    lines.start()
    try:
        lines.wait_for(READY_MARKERS, STARTUP_TIMEOUT_S)
        yield Served(process=process, stderr=lines, base_url=f"http://127.0.0.1:{port}")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        lines.join()
        process.stderr.close()


def http_client(served: Served) -> httpx.Client:
    """A client for the served API that ignores proxy settings of the environment."""
    return httpx.Client(base_url=served.base_url, timeout=5.0, trust_env=False)


def test_serve_answers_health_and_guards_provisioning_with_api_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir)
    forged = f"dk_{key_id_in(key)}_forgedsecretforgedsecret"

    with serving(data_dir) as served, http_client(served) as client:
        health = client.get("/api/v1/health")
        anonymous = client.get("/api/v1/provisioning/allowlist")
        wrong = client.get("/api/v1/provisioning/allowlist", headers={"X-API-Key": forged})
        allowed = client.get("/api/v1/provisioning/allowlist", headers={"X-API-Key": key})
        key_mode = stat.S_IMODE((data_dir / SECRET_KEY_FILE).stat().st_mode)
        files = bytes_of_every_file(data_dir)

        served.process.send_signal(signal.SIGTERM)
        served.process.wait(timeout=10)

    assert health.status_code == 200, health.text
    data = health.json()["data"]
    assert data["status"] == "ok"
    assert data["database"] == "ok"
    assert data["version"] == orchestrator.__version__
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["code"] == "UNAUTHORIZED"
    assert anonymous.json()["success"] is False
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["code"] == "UNAUTHORIZED"
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["success"] is True
    assert key_mode == 0o600
    for path, content in files.items():
        assert key.encode() not in content, path
        assert b"forgedsecret" not in content, path


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    with serving(data_dir) as served:
        served.process.send_signal(signal.SIGTERM)
        returncode = served.process.wait(timeout=10)

    assert returncode == 0, "".join(served.stderr.seen)
    # Closing the last connection checkpoints the WAL into the database and removes it.
    assert not (data_dir / f"{DATABASE_FILE}-wal").exists()


def test_serve_logs_in_the_appliance_format(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as served:
        ready = next(line for line in served.stderr.seen if "Uvicorn running on" in line)

    assert "[cid=- session=- mac=-]" in ready, ready


def test_sigterm_with_event_streams_open_ends_them_and_exits(tmp_path: Path) -> None:
    """uvicorn waits for open connections before it stops; the exit hook ends the streams."""
    data_dir = tmp_path / "data"
    key = create_key(data_dir)
    with serving(data_dir) as served, contextlib.ExitStack() as streams:
        clients = [streams.enter_context(http_client(served)) for _ in range(3)]
        responses = [
            streams.enter_context(
                client.stream(
                    "GET", "/api/v1/provisioning/batch/events", headers={"X-API-Key": key}
                )
            )
            for client in clients
        ]
        lines = [response.iter_lines() for response in responses]
        for stream in lines:
            assert next(line for line in stream if line.startswith("data:"))
        served.process.send_signal(signal.SIGTERM)
        returncode = served.process.wait(timeout=10)
        # Every stream ends (the server closed it) instead of hanging.
        for stream in lines:
            assert list(stream) is not None

    assert returncode == 0, "".join(served.stderr.seen)
    assert "Waiting for connections to close" not in "".join(served.stderr.seen)


# --- client commands (over the API of a running appliance) --------------------------------------


def step_up_off(tmp_path: Path) -> Path:
    """A configuration without TOTP step-up (its own tests are in tests/client)."""
    config = tmp_path / "orchestrator.toml"
    config.write_text("[security]\ntotp_required_for = []\n", encoding="utf-8")
    return config


def test_allowlist_import_sends_the_csv_to_a_running_appliance(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data)
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text("mac,description,container_id\naa-bb-cc-dd-ee-01,Dock 1,C-1\n")
    with serving(data, "--config", str(step_up_off(tmp_path))) as served:
        first = run_cli("allowlist", "import", csv_file, "--url", served.base_url, "--api-key", key)
        csv_file.write_text("aa-bb-cc-dd-ee-01,Dock 2\naa-bb-cc-dd-ee-02\n")
        second = run_cli(
            "allowlist", "import", csv_file, "--url", served.base_url, "--api-key", key
        )
        with http_client(served) as client:
            listed = client.get("/api/v1/provisioning/allowlist", headers={"X-API-Key": key})
    assert first.returncode == 0, first.stderr
    assert "1 added, 0 updated, 0 unchanged" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "1 added, 1 updated, 0 unchanged" in second.stderr
    entries = listed.json()["data"]["entries"]
    assert [(e["mac"], e.get("description")) for e in entries] == [
        ("AA:BB:CC:DD:EE:01", "Dock 2"),
        ("AA:BB:CC:DD:EE:02", None),
    ]


def test_allowlist_import_of_a_bad_file_names_the_line_and_imports_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = create_key(data)
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text("aa-bb-cc-dd-ee-01\nnonsense\n")
    with serving(data, "--config", str(step_up_off(tmp_path))) as served:
        result = run_cli(
            "allowlist", "import", csv_file, "--url", served.base_url, "--api-key", key
        )
    assert result.returncode == 1
    assert "line 2: 'nonsense' is not a MAC address" in result.stderr
    again = run_cli("allowlist", "import", tmp_path / "missing.csv", "--api-key", key)
    assert again.returncode == 2
    assert "cannot read" in again.stderr


def test_client_commands_need_an_api_key_and_never_touch_the_data_dir(tmp_path: Path) -> None:
    result = run_cli("batch", "status", "--url", f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 2
    assert "no API key: pass --api-key or set ORCHESTRATOR_API_KEY" in result.stderr
    assert not any(tmp_path.iterdir())


COMMANDS = [
    "serve", "apikey list", "totp enroll", "allowlist import", "batch start", "batch status",
    "batch follow", "batch provision-all", "report", "simulate", "demo",
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_registered_with_its_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: orchestrator {command}")


def _unusable_data_dir(tmp_path: Path, kind: str) -> Path:
    if kind == "a file, not a directory":
        path = tmp_path / "data"
        path.write_text("not a directory\n", encoding="utf-8")
        return path
    (tmp_path / DATABASE_FILE).write_bytes(b"not an SQLite database, just garbage\n" * 4)
    return tmp_path


@pytest.mark.parametrize("kind", ["a file, not a directory", "a corrupt database"])
@pytest.mark.parametrize(
    "command",
    [("apikey", "create", "--name", "x"), ("apikey", "list"), ("totp", "enroll")],
)
def test_storage_errors_are_one_line_and_a_non_zero_exit(
    tmp_path: Path, kind: str, command: tuple[str, ...]
) -> None:
    data_dir = _unusable_data_dir(tmp_path, kind)

    result = run_cli(*command, "--data-dir", data_dir)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"orchestrator {command[0]} {command[1]}: cannot use the data")
    assert str(data_dir) in lines[0]


def test_an_unusable_secret_key_is_one_line_for_totp(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).mkdir()

    result = run_cli("totp", "enroll", "--data-dir", tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot use the data directory" in result.stderr.strip().splitlines()[-1]
