"""SecretBox: a 0600 key file made on first use, and AES-GCM values bound to their context."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.security.secretbox import SecretBox, SecretBoxError

PLAINTEXT = "correct-horse-battery-staple"


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "secret.key"


@pytest.fixture
def box(key_path: Path) -> SecretBox:
    return SecretBox.from_key_file(key_path)


def test_key_file_is_created_private_with_32_bytes(key_path: Path) -> None:
    SecretBox.from_key_file(key_path)

    mode = key_path.stat().st_mode
    assert stat.S_ISREG(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert len(key_path.read_bytes()) == 32


def test_key_file_mode_ignores_a_permissive_umask(key_path: Path) -> None:
    previous = os.umask(0)
    try:
        SecretBox.from_key_file(key_path)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_second_load_reuses_the_key(key_path: Path) -> None:
    first = SecretBox.from_key_file(key_path)
    key = key_path.read_bytes()
    sealed = first.seal(PLAINTEXT, "sess_a")

    second = SecretBox.from_key_file(key_path)

    assert second.open(sealed, "sess_a") == PLAINTEXT
    assert key_path.read_bytes() == key


def test_a_fresh_key_does_not_open_another_keys_values(tmp_path: Path) -> None:
    sealed = SecretBox.from_key_file(tmp_path / "one.key").seal(PLAINTEXT, "sess_a")
    other = SecretBox.from_key_file(tmp_path / "two.key")

    with pytest.raises(SecretBoxError):
        other.open(sealed, "sess_a")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o020])
def test_key_file_readable_by_others_is_refused(key_path: Path, mode: int) -> None:
    SecretBox.from_key_file(key_path)
    key_path.chmod(mode)

    with pytest.raises(SecretBoxError, match="chmod 600") as caught:
        SecretBox.from_key_file(key_path)

    assert str(key_path) in str(caught.value)


def test_owner_only_modes_are_accepted(key_path: Path) -> None:
    SecretBox.from_key_file(key_path)
    key_path.chmod(0o400)

    SecretBox.from_key_file(key_path)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_key_file_of_wrong_length_is_refused(key_path: Path, length: int) -> None:
    key_path.write_bytes(b"k" * length)
    key_path.chmod(0o600)

    with pytest.raises(SecretBoxError, match="32-byte"):
        SecretBox.from_key_file(key_path)


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33])
def test_key_of_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(SecretBoxError, match="32 bytes"):
        SecretBox(b"k" * length)


@pytest.mark.parametrize("plaintext", ["", PLAINTEXT, "pässwörd ✓ 🔑", "x" * 4096])
def test_seal_then_open_round_trips(box: SecretBox, plaintext: str) -> None:
    assert box.open(box.seal(plaintext, "sess_a"), "sess_a") == plaintext


def test_value_sealed_for_one_context_does_not_open_for_another(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT, "sess_a")

    with pytest.raises(SecretBoxError):
        box.open(sealed, "sess_b")


def test_ciphertext_does_not_contain_the_plaintext(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT, "sess_a")

    assert PLAINTEXT.encode() not in sealed
    assert b"sess_a" not in sealed


def test_sealing_twice_gives_different_blobs(box: SecretBox) -> None:
    first, second = box.seal(PLAINTEXT, "sess_a"), box.seal(PLAINTEXT, "sess_a")

    assert first != second
    assert first[1:13] != second[1:13]  # the nonces
    assert box.open(first, "sess_a") == box.open(second, "sess_a") == PLAINTEXT


def test_every_tampered_byte_is_detected(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT, "sess_a")

    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(SecretBoxError):
            box.open(bytes(tampered), "sess_a")


@pytest.mark.parametrize("cut", [0, 13, 20, -1])
def test_truncated_value_is_refused(box: SecretBox, cut: int) -> None:
    sealed = box.seal(PLAINTEXT, "sess_a")

    with pytest.raises(SecretBoxError):
        box.open(sealed[:cut], "sess_a")


@pytest.mark.parametrize("cut", [1, 8])
def test_value_truncated_inside_the_nonce_is_refused(box: SecretBox, cut: int) -> None:
    sealed = box.seal(PLAINTEXT, "sess_a")

    with pytest.raises(SecretBoxError):
        box.open(sealed[:cut], "sess_a")
