"""Device names and tokens: chosen once, kept while they fit the settings."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec

from orchestrator.device.cloud.names import (
    NAME_PATTERN,
    PendingRegistration,
    access_token,
    device_name,
    pending_for,
)
from orchestrator.device.cloud.settings import ProvisionSettings

SETTINGS = ProvisionSettings(
    server_url="tb.local", server_port=1883, provision_device_key="k", provision_device_secret="s"
)


def test_default_names_follow_the_seed_pattern() -> None:
    names = {device_name("thermal-camera") for _ in range(200)}
    assert all(NAME_PATTERN.match(n) and n.startswith("thermal-camera-") for n in names)
    assert all(len(n) == len("thermal-camera-") + 6 for n in names)
    assert len(names) > 190  # random, not a counter


def test_a_prefix_replaces_thermal_camera() -> None:
    name = device_name("lab-cam")
    assert name.startswith("lab-cam-")
    assert NAME_PATTERN.match(name)


def test_names_use_upper_case_letters_and_digits_only() -> None:
    letters = itertools.cycle("A9")

    def choice(alphabet: Sequence[str]) -> str:
        letter = next(letters)
        assert letter in alphabet
        return letter

    assert device_name("x", choice=choice) == "x-A9A9A9"


def test_tokens_are_20_letters_and_digits_and_differ() -> None:
    tokens = {access_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 20 and t.isalnum() and t.isascii() for t in tokens)


def test_an_earlier_registration_is_kept_while_it_fits() -> None:
    first = pending_for(SETTINGS, None)
    assert pending_for(SETTINGS, first) is first
    doubtful = msgspec.structs.replace(first, in_doubt=True)
    assert pending_for(SETTINGS, doubtful) is doubtful


def test_another_server_or_prefix_starts_a_new_registration() -> None:
    first = pending_for(SETTINGS, None)
    other_server = msgspec.structs.replace(SETTINGS, server_port=1884)
    other_prefix = msgspec.structs.replace(SETTINGS, device_name_prefix="lab-cam")
    assert pending_for(other_server, first).device_name != first.device_name
    renamed = pending_for(other_prefix, first)
    assert renamed.device_name.startswith("lab-cam-")
    assert renamed.access_token != first.access_token


def test_repr_hides_the_token() -> None:
    pending = pending_for(SETTINGS, None)
    assert pending.access_token not in repr(pending)
    assert isinstance(pending, PendingRegistration)
