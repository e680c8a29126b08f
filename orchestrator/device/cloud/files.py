"""The device's config directory, the only place the cloud registration touches the disk.

    provision.txt                       trigger: provision at the next start
    provision.txt.processed             what provision.txt becomes once provisioned
    provision.json                      where and how to provision (settings.ProvisionSettings)
    provision.state.json                a registration under way (names.PendingRegistration)
    thermal_config.json                 the device's config: credentials, measurement spots...
    thermal_config.json.backup.<ts>     the config before each update; the last 5 are kept

Every write goes to a temp file in the same directory, is fsynced, renamed over its target,
and the directory fsynced: a crash leaves each file either old or new, never torn. The commit
of a registration is a short plan of such operations (`commit_plan`, pure), applied in order
by `ConfigDir.apply`, so tests can interrupt it between any two of them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.device.cloud import credentials as creds
from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.names import PendingRegistration
from orchestrator.device.cloud.settings import ProvisionSettings

log = logging.getLogger(__name__)

TRIGGER = "provision.txt"
PROCESSED = "provision.txt.processed"
PROVISION_JSON = "provision.json"
STATE = "provision.state.json"
CONFIG = "thermal_config.json"
BACKUP_PREFIX = CONFIG + ".backup."
KEEP_BACKUPS = 5
TEMP_SUFFIX = ".tmp"
WRITTEN = (CONFIG, STATE, PROVISION_JSON, TRIGGER)
"""The files written through a temp file (backups too: their names start with CONFIG's)."""
SECRET_MODE = 0o600
"""provision.json, the state file and a new thermal_config.json hold secrets."""


@dataclass(frozen=True, slots=True)
class WriteFile:
    """Replace file `name` with `data` atomically."""

    name: str
    data: bytes
    mode: int = SECRET_MODE

    def __repr__(self) -> str:
        return f"WriteFile({self.name!r}, {len(self.data)} bytes, mode={self.mode:o})"


@dataclass(frozen=True, slots=True)
class Rename:
    """Rename `source` to `target` (replacing it)."""

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove file `name` if it is there."""

    name: str


FileOp = WriteFile | Rename | Remove


@dataclass(frozen=True, slots=True)
class Listing:
    """What the commit of a registration needs to know about the directory."""

    config: bytes | None
    """thermal_config.json as it is, or None if there is none."""
    config_mode: int
    backups: tuple[int, ...]
    """The timestamps of the backups there are."""
    latest_backup: bytes | None
    """The newest backup's content (an interrupted commit may have made it already)."""
    triggered: bool
    has_state: bool


def backup_name(timestamp: int) -> str:
    """`thermal_config.json.backup.<timestamp>`."""
    return f"{BACKUP_PREFIX}{timestamp}"


def commit_plan(listing: Listing, new_config: bytes, now: int) -> tuple[FileOp, ...]:
    """The operations that store a registration, in the only safe order: back up the config
    (unless the newest backup holds it already), replace it (the commit point), prune backups
    to the last 5, retire provision.txt, forget the state file (last, so a crash before it
    still recovers the same registration)."""
    ops: list[FileOp] = []
    backups = list(listing.backups)
    old = listing.config
    if old is not None and old not in {new_config, listing.latest_backup}:
        # Two updates in one second must not overwrite the earlier backup.
        stamp = max([now, *(b + 1 for b in backups)])
        ops.append(WriteFile(backup_name(stamp), old, listing.config_mode))
        backups.append(stamp)
    if old != new_config:
        ops.append(WriteFile(CONFIG, new_config, listing.config_mode))
    ops += [Remove(backup_name(stamp)) for stamp in sorted(backups)[:-KEEP_BACKUPS]]
    if listing.triggered:
        ops.append(Rename(TRIGGER, PROCESSED))
    if listing.has_state:
        ops.append(Remove(STATE))
    return tuple(ops)


_CONFIG_DECODER = msgspec.json.Decoder(dict[str, Any])
_SETTINGS_DECODER = msgspec.json.Decoder(ProvisionSettings)
_STATE_DECODER = msgspec.json.Decoder(PendingRegistration)
_ENCODER = msgspec.json.Encoder()


def encode_config(config: dict[str, Any]) -> bytes:
    """thermal_config.json's text: indented, as people edit it."""
    return msgspec.json.format(_ENCODER.encode(config), indent=2) + b"\n"


class ConfigDir:
    """One device's config directory. Blocking: call it through `asyncio.to_thread`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"ConfigDir({str(self.path)!r})"

    def triggered(self) -> bool:
        """Whether provision.txt asks for provisioning."""
        return (self.path / TRIGGER).is_file()

    def read_settings(self) -> ProvisionSettings:
        """provision.json, validated."""
        try:
            data = (self.path / PROVISION_JSON).read_bytes()
        except FileNotFoundError as exc:
            raise CloudError(
                ErrorCode.PROVISION_JSON_MISSING,
                f"provision.txt asks for provisioning but there is no provision.json in "
                f"{self.path}: put the ThingsBoard server and provision key and secret there",
            ) from exc
        except OSError as exc:
            raise CloudError(
                ErrorCode.PROVISION_JSON_INVALID, f"provision.json cannot be read: {exc.strerror}"
            ) from exc
        try:
            return _SETTINGS_DECODER.decode(data)
        except msgspec.ValidationError as exc:
            # msgspec names the field and the rule, never the value (no secret leaks).
            raise CloudError(
                ErrorCode.PROVISION_JSON_INVALID, f"provision.json is not valid: {exc}"
            ) from exc
        except msgspec.DecodeError as exc:
            raise CloudError(
                ErrorCode.PROVISION_JSON_INVALID, f"provision.json is not valid JSON: {exc}"
            ) from exc

    def read_config(self) -> dict[str, Any]:
        """thermal_config.json's object ({} if there is none yet)."""
        data = self._config_bytes()
        return {} if data is None else _decode_config(data)

    def check_writable(self) -> None:
        """Refuse (CONFIG_READ_ONLY) before anything is registered if the config could not be
        updated: a read-only thermal_config.json is kept as the operator meant it (a rename
        would replace it regardless of its mode, even for root), and the directory must take
        new files."""
        target = self.path / CONFIG
        try:
            mode = target.stat().st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and (not mode & 0o222 or not os.access(target, os.W_OK)):
            raise CloudError(
                ErrorCode.CONFIG_READ_ONLY,
                f"thermal_config.json is read-only (mode {stat.S_IMODE(mode):o}): make it "
                "writable (chmod u+w) so the device can store its ThingsBoard credentials",
            )
        if not os.access(self.path, os.W_OK):
            raise CloudError(
                ErrorCode.CONFIG_READ_ONLY,
                f"{self.path} is not writable (or on a read-only file system): the device "
                "cannot store its ThingsBoard credentials there",
            )

    def stored(self) -> DeviceCredentials | None:
        """The credentials thermal_config.json holds, if any."""
        return creds.stored(self.read_config())

    def read_pending(self) -> PendingRegistration | None:
        """The registration under way, if there is one (an unreadable one is reported and
        ignored: it is only ever written whole)."""
        try:
            return _STATE_DECODER.decode((self.path / STATE).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("ignoring %s: %s", STATE, exc)
            return None

    def save_pending(self, pending: PendingRegistration) -> None:
        """Persist the registration under way (before its request goes out)."""
        self.apply(WriteFile(STATE, _ENCODER.encode(pending)))

    def forget_pending(self) -> None:
        """Remove a leftover state file (its registration is over); a failure is only logged,
        the file is harmless."""
        if not (self.path / STATE).exists():
            return
        try:
            self.apply(Remove(STATE))
        except CloudError as exc:
            log.warning("%s", exc.message)

    def clean_temp(self) -> None:
        """Remove temp files an interrupted write left behind."""
        for leftover in self.path.glob(f".*{TEMP_SUFFIX}"):
            # Backups' temp files start with the config's name too.
            if any(leftover.name.startswith(f".{name}.") for name in WRITTEN):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
                log.info("removed %s left by an interrupted write", leftover.name)

    def listing(self) -> Listing:
        """The directory as `commit_plan` sees it."""
        target = self.path / CONFIG
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = SECRET_MODE
        backups = self.backups()
        latest = None
        if backups:
            with contextlib.suppress(OSError):
                latest = (self.path / backup_name(backups[-1])).read_bytes()
        return Listing(
            config=self._config_bytes(),
            config_mode=mode,
            backups=tuple(backups),
            latest_backup=latest,
            triggered=self.triggered(),
            has_state=(self.path / STATE).exists(),
        )

    def backups(self) -> list[int]:
        """The timestamps of the config backups, oldest first."""
        stamps = []
        for entry in self.path.glob(BACKUP_PREFIX + "*"):
            suffix = entry.name.removeprefix(BACKUP_PREFIX)
            if suffix.isdigit():
                stamps.append(int(suffix))
        return sorted(stamps)

    def commit(self, credentials: DeviceCredentials, now: datetime.datetime) -> tuple[str, ...]:
        """Store `credentials` in thermal_config.json (after a backup) and retire provision.txt
        and the state file. Until the config is replaced, a failure leaves it as it was
        (CloudError CONFIG_WRITE_FAILED); after that the registration stands, and what went
        wrong comes back as warnings."""
        try:
            listing = self.listing()
            config = {} if listing.config is None else _decode_config(listing.config)
        except CloudError as exc:
            # It was fine when the run began: someone changed it since.
            raise CloudError(ErrorCode.CONFIG_WRITE_FAILED, exc.message) from exc
        if creds.holds(config, credentials):
            new = listing.config or b""  # an earlier run stored them: nothing to rewrite
        else:
            new = encode_config(creds.merged(config, credentials, now))
        plan = commit_plan(listing, new, int(now.timestamp()))
        committed = CONFIG not in {op.name for op in plan if isinstance(op, WriteFile)}
        for op in plan:
            try:
                self.apply(op)
            except CloudError as exc:
                if not committed:
                    self._undo_backup(plan)
                    raise
                # Stop here: forgetting the state file while provision.txt stays would make
                # the next start register a second device instead of recovering this one.
                log.warning("registration stored, but %s", exc.message)
                return (exc.message,)
            if isinstance(op, WriteFile) and op.name == CONFIG:
                committed = True
        return ()

    def write_provisioning(self, settings: ProvisionSettings) -> None:
        """Write provision.json and then provision.txt: provisioning at the next start."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CloudError(
                ErrorCode.CONFIG_WRITE_FAILED, f"creating {self.path} failed: {exc.strerror}"
            ) from exc
        fields = {k: v for k, v in msgspec.to_builtins(settings).items() if v is not None}
        self.apply(WriteFile(PROVISION_JSON, encode_config(fields)))
        self.apply(WriteFile(TRIGGER, b"", 0o644))

    def apply(self, op: FileOp) -> None:
        """Carry out one operation durably; OSError becomes CONFIG_WRITE_FAILED."""
        try:
            match op:
                case WriteFile():
                    self._write(op)
                case Rename():
                    os.replace(self.path / op.source, self.path / op.target)
                case Remove():
                    with contextlib.suppress(FileNotFoundError):
                        (self.path / op.name).unlink()
            self._sync_dir()
        except OSError as exc:
            raise CloudError(
                ErrorCode.CONFIG_WRITE_FAILED, f"{_describe(op)} failed: {exc.strerror or exc}"
            ) from exc

    def _write(self, op: WriteFile) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{op.name}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(op.data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, op.mode)
            os.replace(temp, self.path / op.name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _sync_dir(self) -> None:
        # The rename is durable only once the directory entry is.
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _undo_backup(self, plan: tuple[FileOp, ...]) -> None:
        # The config is unchanged: a backup of it made for this commit is noise.
        for op in plan:
            if isinstance(op, WriteFile) and op.name.startswith(BACKUP_PREFIX):
                with contextlib.suppress(CloudError):
                    self.apply(Remove(op.name))

    def _config_bytes(self) -> bytes | None:
        try:
            return (self.path / CONFIG).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CloudError(
                ErrorCode.CONFIG_INVALID, f"thermal_config.json cannot be read: {exc.strerror}"
            ) from exc


def _decode_config(data: bytes) -> dict[str, Any]:
    try:
        return _CONFIG_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise CloudError(
            ErrorCode.CONFIG_INVALID,
            f"thermal_config.json is not a JSON object ({exc}): fix it, or move it away to "
            "start from an empty config, so its other settings are not lost",
        ) from exc


def _describe(op: FileOp) -> str:
    match op:
        case WriteFile():
            return f"writing {op.name}"
        case Rename():
            return f"renaming {op.source} to {op.target}"
        case Remove():
            return f"removing {op.name}"
