"""Apply the playbook to a booted Debian bookworm container, twice, reboot it, check the appliance.

The base root (debootstrap) and the wheelhouse are cached under the cache directory; each run
boots an overlayfs copy of the root with `systemd-nspawn -b` on a private network, drives it
with Ansible's chroot connection through scripts/deploy-test-nsenter, and removes everything it
created (container, mount, network namespace, run directory) even when a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("deploytest")

REPO = Path(__file__).resolve().parent.parent
WRAPPER = REPO / "scripts" / "deploy-test-nsenter"
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOK = ANSIBLE_DIR / "site.yml"
INVENTORY = ANSIBLE_DIR / "inventories" / "ci"
VAULT_PASSWORD_FILE = INVENTORY / "vault-password-for-ci-only"
INVENTORY_HOST = "ci-appliance"

DEFAULT_CACHE = Path("/var/cache/orchestrator-deploy-test")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# The container has no route out, so everything the playbook installs with apt is already in the
# base root (the playbook's apt tasks then find it present); the rest serves the checks
# (busybox: the DHCP client, mosquitto-clients: the broker checks).
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "python3-packaging",  # ansible.builtin.pip needs it on the target
    "python3-venv",
    "iproute2",
    "busybox",
    "hostapd",
    "dnsmasq",
    "mosquitto",
    "mosquitto-clients",
    "nftables",
    "sudo",
    "libpam-systemd",  # polkitd needs a logind, which debootstrap does not resolve itself
    "polkitd",
)
# Bump to rebuild every cached root after a change to how it is prepared.
BASE_FORMAT = "1"

UNITS = ("orchestrator.service", "dnsmasq.service", "mosquitto.service", "nftables.service")
ENV_FILE = "/etc/orchestrator/orchestrator.env"
# The role's default; the inventory may override it (orchestrator_listen_port).
DEFAULT_API_PORT = 8080

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)
LEASE = re.compile(r"lease of (?P<address>[0-9.]+) obtained")

BOOT_TIMEOUT = 90.0
HEALTH_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
PLAYBOOK_TIMEOUT = 900.0


class DeployTestError(Exception):
    """A step of the deployment test failed; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class Appliance:
    """What the checks need to know of the CI inventory's settings."""

    service_user: str
    api_port: int
    onboarding_interface: str
    onboarding_address: str
    mqtt_port: int
    mqtt_admin: str
    mqtt_admin_password: str = field(repr=False)


def read_inventory(ansible_playbook: Path) -> Appliance:
    """The CI inventory's settings (vault decrypted with the CI-only password)."""
    inventory = ansible_playbook.with_name("ansible-inventory")
    result = run(
        [
            inventory,
            "-i",
            INVENTORY,
            "--playbook-dir",
            ANSIBLE_DIR,
            "--vault-password-file",
            VAULT_PASSWORD_FILE,
            "--host",
            INVENTORY_HOST,
        ],
        env=_ansible_env(),
        cwd=ANSIBLE_DIR,
    )
    values = json.loads(result.stdout)
    try:
        return Appliance(
            service_user=str(values["orchestrator_user"]),
            api_port=int(values.get("orchestrator_listen_port", DEFAULT_API_PORT)),
            onboarding_interface=str(values["onboarding_interface"]),
            onboarding_address=str(values["onboarding_address"]),
            mqtt_port=int(values["mosquitto_target_port"]),
            mqtt_admin=str(values["mosquitto_admin_username"]),
            mqtt_admin_password=str(values["vault_mosquitto_admin_password"]),
        )
    except (KeyError, ValueError) as exc:
        msg = f"the CI inventory lacks a setting the checks need: {exc!r}"
        raise DeployTestError(msg) from exc


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


@dataclass(kw_only=True)
class Timings:
    """How long each step took, for the summary."""

    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step `name` (also when it fails)."""
        logger.info("== %s", name)
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.steps.append((name, elapsed))
            logger.info("-- %s: %.1f s", name, elapsed)

    def summary(self) -> str:
        """One line per step, then the total."""
        lines = [f"  {name:<40} {seconds:7.1f} s" for name, seconds in self.steps]
        lines.append(f"  {'total':<40} {sum(s for _, s in self.steps):7.1f} s")
        return "\n".join(lines)


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a host command, capturing its output; raise DeployTestError when it fails."""
    args = [str(a) for a in argv]
    logger.debug("$ %s", " ".join(args))
    try:
        result = subprocess.run(  # noqa: S603 -- the harness's own command lines
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"{args[0]} timed out after {timeout:.0f} s: {' '.join(args)}"
        raise DeployTestError(msg) from exc
    if check and result.returncode != 0:
        msg = (
            f"exit {result.returncode}: {' '.join(args)}\n"
            f"{_tail(result.stdout)}\n{_tail(result.stderr)}"
        )
        raise DeployTestError(msg)
    return result


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def preflight(ansible_playbook: Path) -> str | None:
    """Why the test cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, overlayfs, network namespaces)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/system-deps.sh installs it)"
    if not ansible_playbook.exists():
        return f"{ansible_playbook} is missing (make venv installs Ansible)"
    if not PLAYBOOK.exists():
        return f"{PLAYBOOK} is missing"
    return None


def base_root(cache: Path, mirror: str) -> Path:
    """The cached Debian root for this package list, built with debootstrap when missing."""
    key = hashlib.sha256(
        "\n".join((BASE_FORMAT, SUITE, mirror, *BASE_PACKAGES)).encode()
    ).hexdigest()[:16]
    root = cache / f"root-{key}"
    if root.is_dir():
        logger.info("base root: cached %s", root)
        return root
    partial = cache / f"root-{key}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    cache.mkdir(parents=True, exist_ok=True)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            partial,
            mirror,
        ],
        timeout=900,
    )
    # The container's own name, not the build machine's (debootstrap copies the host's).
    (partial / "etc" / "hostname").write_text("appliance-ci\n")
    # systemd makes a fresh machine ID on each first boot of an empty one.
    (partial / "etc" / "machine-id").write_text("")
    partial.rename(root)
    logger.info("base root: built %s", root)
    return root


def wheelhouse(cache: Path, run_dir: Path, python: Path) -> Path:
    """A wheelhouse with requirements.lock's wheels (cached) and this project's wheel."""
    lock = REPO / "requirements.lock"
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    cached = cache / f"wheels-{key}"
    if not cached.is_dir():
        partial = cache / f"wheels-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        run(
            [python, "-m", "pip", "wheel", "--require-hashes", "-r", lock, "-w", partial],
            timeout=900,
        )
        partial.rename(cached)
    house = run_dir / "wheelhouse"
    house.mkdir()
    for wheel in cached.glob("*.whl"):
        os.link(wheel, house / wheel.name)
    # Built afresh each run: the wheel under test is the working tree's.
    run([python, "-m", "pip", "wheel", "--no-deps", "-w", house, REPO], timeout=300)
    return house


@dataclass(kw_only=True)
class Container:
    """A booted systemd-nspawn container on an overlayfs copy of the base root."""

    name: str
    run_dir: Path
    lower: Path
    onboarding_host_if: str
    onboarding_interface: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        """The container's root directory as the host sees it (Ansible's ansible_host)."""
        return self.run_dir / "merged"

    @property
    def leader_file(self) -> Path:
        """Where the wrapper finds the container's init (see scripts/deploy-test-nsenter)."""
        return self.run_dir / "leader.pid"

    def mount(self) -> None:
        """Mount the overlay: the cached root below, this run's changes above."""
        for sub in ("upper", "work", "merged"):
            (self.run_dir / sub).mkdir()
        options = (
            f"lowerdir={self.lower},upperdir={self.run_dir / 'upper'},"
            f"workdir={self.run_dir / 'work'}"
        )
        run(["mount", "-t", "overlay", "overlay", "-o", options, self.root])
        # The container cannot reach a mirror, and the playbook's apt tasks refresh the package
        # lists when they look older than cache_valid_time: make them look fresh.
        stamp = self.root / "var" / "lib" / "apt" / "periodic" / "update-success-stamp"
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()

    def boot(self) -> None:
        """Start the container and wait until systemd reports the system up."""
        console = (self.run_dir / "console.log").open("ab")
        # --keep-unit --register=no: the build machine's init need not be systemd (no machined).
        # The extra veth is the stand-in for the Wi-Fi interface; its host end becomes the
        # DHCP client's interface.
        self.process = subprocess.Popen(  # noqa: S603
            [  # noqa: S607 -- found on PATH, as preflight() checked
                "systemd-nspawn",
                "--boot",
                f"--directory={self.root}",
                f"--machine={self.name}",
                "--register=no",
                "--keep-unit",
                "--network-veth",
                f"--network-veth-extra={self.onboarding_host_if}:{self.onboarding_interface}",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
                "--console=passive",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
        )
        console.close()
        deadline = time.monotonic() + BOOT_TIMEOUT
        self._find_leader(deadline)
        # Carrier on the stand-in, as hostapd gives the real Wi-Fi interface: without it the
        # onboarding interface never comes up and network-online.target waits for it.
        self._link_up(deadline)
        while True:
            state = self.exec(["systemctl", "is-system-running", "--wait"], check=False)
            status = state.stdout.strip()
            if status in {"running", "degraded"}:
                logger.info("container %s booted: %s", self.name, status)
                return
            if time.monotonic() > deadline:
                msg = f"container {self.name} did not finish booting: {status!r}"
                raise DeployTestError(msg)
            time.sleep(0.5)

    def _find_leader(self, deadline: float) -> None:
        """Record the host PID of the container's init (the nspawn child running systemd)."""
        assert self.process is not None  # noqa: S101 -- boot() just started it
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = (
                    f"systemd-nspawn exited with {self.process.returncode}:\n"
                    f"{_tail((self.run_dir / 'console.log').read_text(errors='replace'))}"
                )
                raise DeployTestError(msg)
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    if comm == "systemd":
                        self.leader_file.write_text(f"{pid}\n")
                        return
            time.sleep(0.1)
        msg = f"container {self.name}: no init process after {BOOT_TIMEOUT:.0f} s"
        raise DeployTestError(msg)

    def _link_up(self, deadline: float) -> None:
        """Set the host end of the stand-in onboarding veth up once nspawn has created it."""
        link = Path(f"/sys/class/net/{self.onboarding_host_if}")
        while not link.exists():
            if time.monotonic() > deadline:
                msg = f"systemd-nspawn did not create {self.onboarding_host_if}"
                raise DeployTestError(msg)
            time.sleep(0.05)
        run(["ip", "link", "set", self.onboarding_host_if, "up"])

    def exec(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (as `user` when given)."""
        prefix = ["runuser", "-u", user, "--"] if user else []
        return run([WRAPPER, self.root, *prefix, *argv], check=check, timeout=timeout)

    def shutdown(self) -> None:
        """Power the container off and wait for systemd-nspawn to exit (kill it if it hangs)."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        with contextlib.suppress(DeployTestError):
            self.exec(["systemctl", "poweroff"], check=False, timeout=10)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            logger.warning("container %s did not power off; killing it", self.name)
            process.kill()
            process.wait(timeout=10)
        self.leader_file.unlink(missing_ok=True)
        self.process = None

    def reboot(self) -> None:
        """Power off and boot again: what a Pi does on a power cycle."""
        self.shutdown()
        self.boot()

    def unmount(self) -> None:
        """Unmount the overlay when it is mounted."""
        if os.path.ismount(self.root):
            run(["umount", self.root])


@contextlib.contextmanager
def booted_container(
    name: str, run_dir: Path, lower: Path, appliance: Appliance
) -> Iterator[Container]:
    """A mounted container (boot() it), always powered off and unmounted afterwards."""
    container = Container(
        name=name,
        run_dir=run_dir,
        lower=lower,
        onboarding_host_if=f"{name}-ob",
        onboarding_interface=appliance.onboarding_interface,
    )
    try:
        container.mount()
        yield container
    finally:
        try:
            container.shutdown()
        finally:
            container.unmount()
            # Gone with the container's network namespace, unless a stray process still holds it.
            for link in (f"ve-{name}", container.onboarding_host_if):
                if Path(f"/sys/class/net/{link}").exists():
                    run(["ip", "link", "del", link], check=False)


@dataclass(frozen=True, kw_only=True)
class Recap:
    """The PLAY RECAP numbers of one host."""

    ok: int
    changed: int
    unreachable: int
    failed: int


def apply_playbook(
    ansible_playbook: Path,
    container: Container,
    house: Path,
    extra_vars: Sequence[str],
    log: Path,
) -> tuple[Recap, list[str]]:
    """Run the playbook against the container; the recap and the names of changed tasks."""
    argv = [
        str(ansible_playbook),
        "-i",
        str(INVENTORY),
        str(PLAYBOOK),
        "-e",
        f"ansible_host={container.root}",
        "-e",
        f"ansible_chroot_exe={WRAPPER}",
        "-e",
        f"orchestrator_wheelhouse={house}",
        "--vault-password-file",
        str(VAULT_PASSWORD_FILE),
    ]
    for extra in extra_vars:
        argv += ["-e", extra]
    env = _ansible_env()
    logger.info("$ %s", " ".join(argv))
    output: list[str] = []
    with (
        log.open("a") as log_file,
        subprocess.Popen(  # noqa: S603 -- our own command line
            argv,
            cwd=ANSIBLE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None  # noqa: S101 -- stdout=PIPE
        deadline = time.monotonic() + PLAYBOOK_TIMEOUT
        timed_out = False
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                log_file.write(line)
                output.append(line)
                if time.monotonic() > deadline:
                    timed_out = True
                    break
        except BaseException:
            # Interrupted: stop it before the container is powered off under it.
            process.kill()
            raise
        if timed_out:
            process.kill()
            process.wait()
            msg = f"ansible-playbook ran longer than {PLAYBOOK_TIMEOUT:.0f} s"
            raise DeployTestError(msg)
        returncode = process.wait()
    text = "".join(output)
    recap = _parse_recap(text)
    if returncode != 0 or recap.failed or recap.unreachable:
        msg = f"ansible-playbook failed (exit {returncode}, {recap}); log: {log}"
        raise DeployTestError(msg)
    return recap, changed_tasks(text)


def _parse_recap(text: str) -> Recap:
    matches = list(RECAP.finditer(text))
    if not matches:
        msg = "ansible-playbook printed no PLAY RECAP"
        raise DeployTestError(msg)
    match = matches[-1]
    return Recap(
        ok=int(match["ok"]),
        changed=int(match["changed"]),
        unreachable=int(match["unreachable"]),
        failed=int(match["failed"]),
    )


def changed_tasks(text: str) -> list[str]:
    """The tasks (and handlers) that reported a change, in the order they ran."""
    changed: list[str] = []
    task = ""
    for line in text.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line[line.index("[") + 1 : line.rindex("]")]
        elif line.startswith("changed:") and task and task not in changed:
            changed.append(task)
    return changed


def check_units(container: Container) -> None:
    """Every appliance unit is active and enabled; systemd has no failed unit."""
    problems = []
    for unit in UNITS:
        active = container.exec(["systemctl", "is-active", unit], check=False).stdout.strip()
        enabled = container.exec(["systemctl", "is-enabled", unit], check=False).stdout.strip()
        logger.info("%s: %s, %s", unit, active, enabled)
        if active != "active" or enabled != "enabled":
            problems.append(f"{unit} is {active}/{enabled}")
    failed = container.exec(
        ["systemctl", "list-units", "--failed", "--plain", "--no-legend"], check=False
    ).stdout.strip()
    if failed:
        problems.append(f"failed units:\n{failed}")
    if problems:
        for unit in UNITS:
            status = container.exec(
                ["journalctl", "-b", "--no-pager", "-n", "30", "-u", unit], check=False
            )
            logger.error("journal of %s:\n%s", unit, status.stdout)
        raise DeployTestError("; ".join(problems))


def check_no_restarts(container: Container) -> None:
    """No appliance unit has restarted since boot (a crash loop looks active between crashes)."""
    restarted = []
    for unit in UNITS:
        shown = container.exec(["systemctl", "show", "-P", "NRestarts", unit]).stdout.strip()
        if shown not in {"", "0"}:
            restarted.append(f"{unit} restarted {shown} time(s)")
    if restarted:
        raise DeployTestError("; ".join(restarted))


def check_health(container: Container, appliance: Appliance) -> None:
    """The API answers /api/v1/health, asked as the service user."""
    script = (
        "import sys, urllib.request\n"
        f"url = 'http://127.0.0.1:{appliance.api_port}/api/v1/health'\n"
        "with urllib.request.urlopen(url, timeout=5) as r:\n"
        "    sys.stdout.write(f'{r.status} {r.read().decode()}')\n"
    )
    # The unit is Type=exec: active before the server listens.
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while True:
        result = container.exec(["python3", "-c", script], user=appliance.service_user, check=False)
        if result.returncode == 0 and result.stdout.startswith("200 "):
            logger.info("health: %s", result.stdout)
            return
        if time.monotonic() > deadline:
            journal = container.exec(
                ["journalctl", "-b", "--no-pager", "-n", "20", "-u", "orchestrator.service"],
                check=False,
            )
            logger.error("journal of orchestrator.service:\n%s", journal.stdout)
            msg = f"/api/v1/health did not answer 200: {result.stdout} {_tail(result.stderr, 1)}"
            raise DeployTestError(msg)
        time.sleep(0.5)


def check_env_file(container: Container) -> None:
    """The environment file with the secrets is 0600."""
    mode = container.exec(["stat", "-c", "%a %U", ENV_FILE]).stdout.strip()
    logger.info("%s: %s", ENV_FILE, mode)
    if not mode.startswith("600 "):
        msg = f"{ENV_FILE} is {mode}, not 600"
        raise DeployTestError(msg)


def _mqtt_pub(container: Container, port: int, *auth: str) -> subprocess.CompletedProcess[str]:
    return container.exec(
        [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "deploy-test/probe",
            "-m",
            "x",
            "-q",
            "1",
            *auth,
        ],
        check=False,
        timeout=15,
    )


def check_mosquitto(container: Container, appliance: Appliance) -> None:
    """The broker refuses anonymous and wrong-password clients, accepts a created device."""
    port = appliance.mqtt_port
    anonymous = _mqtt_pub(container, port)
    if anonymous.returncode == 0:
        raise DeployTestError("mosquitto accepted an anonymous client")
    wrong = _mqtt_pub(container, port, "-u", appliance.mqtt_admin, "-P", "not-the-password")
    if wrong.returncode == 0:
        raise DeployTestError("mosquitto accepted a wrong password")
    device, secret = "deploy-test-device", hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    ctrl = [
        "mosquitto_ctrl",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-u",
        appliance.mqtt_admin,
        "-P",
        appliance.mqtt_admin_password,
        "dynsec",
    ]
    created = container.exec([*ctrl, "createClient", device, "-p", secret], check=False)
    if created.returncode != 0:
        msg = f"mosquitto_ctrl createClient failed: {_tail(created.stdout + created.stderr, 5)}"
        raise DeployTestError(msg)
    accepted = _mqtt_pub(container, port, "-u", device, "-P", secret)
    if accepted.returncode != 0:
        msg = f"mosquitto refused a device account: {_tail(accepted.stderr, 5)}"
        raise DeployTestError(msg)
    logger.info("mosquitto: anonymous refused, wrong password refused, device accepted")


def check_dhcp(container: Container, appliance: Appliance, namespace: str) -> str:
    """A client on the stand-in onboarding interface gets a lease; returns its address."""
    host_if = container.onboarding_host_if
    run(["ip", "netns", "add", namespace])
    run(["ip", "link", "set", host_if, "netns", namespace])
    run(["ip", "-n", namespace, "link", "set", host_if, "up"])
    result = run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "busybox",
            "udhcpc",
            "-i",
            host_if,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "2",
            "-s",
            "/bin/true",
        ],
        check=False,
        timeout=30,
    )
    match = LEASE.search(result.stdout + result.stderr)
    if match is None:
        msg = f"no DHCP lease on {appliance.onboarding_interface}: {_tail(result.stderr, 10)}"
        raise DeployTestError(msg)
    address = match["address"]
    logger.info("dhcp: leased %s", address)
    # The firewall: a device on the onboarding network must not reach the broker.
    run(["ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", host_if])
    probe = run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "busybox",
            "nc",
            "-w",
            "3",
            appliance.onboarding_address,
            str(appliance.mqtt_port),
        ],
        check=False,
        timeout=15,
    )
    if probe.returncode == 0:
        msg = f"an onboarding client reached the broker on port {appliance.mqtt_port}"
        raise DeployTestError(msg)
    logger.info("firewall: the onboarding client cannot reach port %d", appliance.mqtt_port)
    return address


def record_security(container: Container, report: Path) -> str:
    """`systemd-analyze security` of the orchestrator unit: the full table to `report`."""
    result = container.exec(
        ["systemd-analyze", "security", "--no-pager", "orchestrator.service"], check=False
    )
    report.write_text(result.stdout)
    overall = next(
        (line for line in result.stdout.splitlines() if "Overall exposure" in line),
        f"no rating (exit {result.returncode}): {_tail(result.stderr, 3)}",
    )
    logger.info("systemd-analyze security: %s (table: %s)", overall.strip(), report)
    return overall.strip()


def _cleanup_namespace(namespace: str) -> None:
    if Path(f"/run/netns/{namespace}").exists():
        run(["ip", "netns", "del", namespace], check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="deploy-test", description=__doc__)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("DEPLOY_TEST_CACHE", DEFAULT_CACHE)),
        help="where the base root and the wheelhouse are cached (default: %(default)s)",
    )
    parser.add_argument("--mirror", default=os.environ.get("DEPLOY_TEST_MIRROR", DEFAULT_MIRROR))
    parser.add_argument(
        "--ansible-playbook",
        type=Path,
        default=Path(
            os.environ.get("ANSIBLE_PLAYBOOK", REPO / ".venv" / "bin" / "ansible-playbook")
        ),
    )
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        help="passed to ansible-playbook -e (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the deployment test; 0 when the appliance passed every check."""
    args = parse_args(argv)
    # A SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so the cleanup still runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="deploy-test: %(message)s",
        stream=sys.stderr,
    )
    reason = preflight(args.ansible_playbook)
    if reason is not None:
        logger.error("cannot run: %s", reason)
        return 2
    timings = Timings()
    # Short: the host end of the stand-in veth is named after it (15 characters at most).
    name = f"dt{os.getpid() % 100000}"
    run_dir = args.cache / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    try:
        _run_all(args, timings, name, run_dir)
    except DeployTestError as exc:
        logger.error("FAILED: %s", exc)  # noqa: TRY400 -- the message is the report
        logger.info("timings:\n%s", timings.summary())
        if args.keep:
            logger.info("logs kept in %s", run_dir)
        return 1
    finally:
        _cleanup_namespace(f"{name}-client")
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    logger.info("PASSED\ntimings:\n%s", timings.summary())
    return 0


def _run_all(args: argparse.Namespace, timings: Timings, name: str, run_dir: Path) -> None:
    appliance = read_inventory(args.ansible_playbook)
    log = run_dir / "ansible.log"
    with timings.step("base root (debootstrap, cached)"):
        lower = base_root(args.cache, args.mirror)
    with timings.step("wheelhouse"):
        house = wheelhouse(args.cache, run_dir, args.python)
    with booted_container(name, run_dir, lower, appliance) as container:
        with timings.step("boot"):
            container.boot()
        with timings.step("apply"):
            recap, _ = apply_playbook(args.ansible_playbook, container, house, args.extra_vars, log)
            logger.info("first apply: %s", recap)
        with timings.step("apply again (idempotence)"):
            recap, changed = apply_playbook(
                args.ansible_playbook, container, house, args.extra_vars, log
            )
            if recap.changed:
                msg = f"second apply changed {recap.changed} task(s): {changed}"
                raise DeployTestError(msg)
        with timings.step("reboot"):
            container.reboot()
        with timings.step("checks"):
            check_units(container)
            check_health(container, appliance)
            check_env_file(container)
            check_mosquitto(container, appliance)
            check_dhcp(container, appliance, f"{name}-client")
            check_no_restarts(container)
            record_security(container, run_dir / "security.txt")
