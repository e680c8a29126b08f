"""What the demo tells a newcomer: where the console is, the API key, the TOTP enrolment,
the fleet, and a few requests that provision a batch end to end."""

from __future__ import annotations

import json
import shlex

from orchestrator.demo.appliance import Demo
from orchestrator.demo.codes import LABEL

API = "api/v1/provisioning"


def welcome(demo: Demo, command: str) -> str:
    """The text the demo prints once it runs; `command` runs `orchestrator` (for the
    `demo code` step)."""
    return "\n".join(
        [
            _summary(demo),
            _fleet(demo),
            _totp(demo, command),
            _try_it(demo, command),
            "Ctrl-C stops the demo (the appliance, the fleet and the broker).\n",
        ]
    )


def _summary(demo: Demo) -> str:
    spec = demo.fleet.spec
    fate = "kept" if demo.kept else "removed when the demo stops"
    return (
        "Delicasa orchestrator demo: the appliance, a Mosquitto broker and "
        f"{len(demo.fleet.devices)} simulated devices, all on loopback.\n\n"
        f"Console:     {demo.url}\n"
        f"Health:      {demo.url}api/v1/health\n"
        f"API key:     {demo.api_key}\n"
        f"Data dir:    {demo.data_dir} ({fate})\n"
        f"Broker:      {demo.fleet.broker.url} (the simulated target network's)\n"
        f"Target Wi-Fi: SSID {spec.target_ssid!r}, password {spec.target_password!r} "
        "(the simulated network's)\n"
    )


def _fleet(demo: Demo) -> str:
    listed = set(demo.roster.allowlisted)
    lines = [
        f"Devices: {len(listed)} on the allowlist (one of them, {demo.roster.wrong_password}, "
        "always fails to join: auth_error), "
        f"{len(demo.roster.unlisted)} not on it (they are discovered, never provisioned).",
        f"  {'mac':<17}  {'family':<14}  {'allowlisted':<11}  fault",
    ]
    for device in demo.fleet.devices:
        family = device.agent.identity.family
        on_list = "yes" if device.mac in listed else "no"
        lines.append(f"  {device.mac:<17}  {family:<14}  {on_list:<11}  {device.agent.fault}")
    return "\n".join(lines) + "\n"


def _totp(demo: Demo, command: str) -> str:
    return (
        "TOTP step-up is on: starting a batch and changing the allowlist need a code.\n"
        f"{demo.enrolment}\n"
        f"{LABEL}: no phone? `{command} demo code --data-dir {shlex.quote(str(demo.data_dir))}` "
        "prints the current code,\nand this terminal shows each new code as it takes over. "
        "A real appliance does neither.\n"
    )


def _try_it(demo: Demo, command: str) -> str:
    base = f"{demo.url}{API}"
    spec = demo.fleet.spec
    body = json.dumps({"target_ssid": spec.target_ssid, "target_password": spec.target_password})
    code = f'$({command} demo code --data-dir "$D")'
    return (
        "Try it (in another terminal):\n"
        f"  K={shlex.quote(demo.api_key)}\n"
        f"  D={shlex.quote(str(demo.data_dir))}\n"
        "  # follow the live events in the background (or, without the &, in a terminal of "
        "their own):\n"
        f'  curl -sN -H "X-API-Key: $K" {base}/batch/events &\n'
        "  # start a batch for the target network (the code comes from `demo code`):\n"
        f'  S=$(curl -s -H "X-API-Key: $K" -H "X-TOTP-Code: {code}" \\\n'
        f"        -H 'Content-Type: application/json' -d {shlex.quote(body)} \\\n"
        f"        {base}/batch/start | grep -o 'sess_[a-z0-9]*' | head -n 1); echo \"$S\"\n"
        f"  # once all {len(demo.fleet.devices)} devices are discovered (a second or two), "
        "provision the allowlisted ones:\n"
        f'  curl -s -w "\\n" -X POST -H "X-API-Key: $K" {base}/batch/$S/provision-all\n'
        "  # the devices and their states (verified, failed with its reason, discovered):\n"
        f'  curl -s -w "\\n" -H "X-API-Key: $K" {base}/batch/$S\n'
    )
