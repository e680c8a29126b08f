"""Secrets at rest: AES-256-GCM under a key file created 0600 on first start.

Each sealed value is bound to a context (for example the session id) as associated data, so a
sealed blob copied to another row does not open there.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_KEY_BYTES = 32
_NONCE_BYTES = 12
_VERSION = b"\x01"


class SecretBoxError(Exception):
    """The key file is unusable or a sealed value does not open."""


class SecretBox:
    """Seals and opens short secrets (Wi-Fi passwords, TOTP seeds)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SecretBoxError("secret key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """Load the key at `path`, creating it (mode 0600) if it does not exist yet."""
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls(_read_private_key(path))
            with os.fdopen(fd, "wb") as handle:
                key = secrets.token_bytes(_KEY_BYTES)
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise SecretBoxError(f"cannot use key file {path}: {exc.strerror}") from exc
        return cls(key)

    def seal(self, plaintext: str, context: str) -> bytes:
        """Encrypt `plaintext`, bound to `context`."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        """Decrypt a value sealed for `context`."""
        if sealed[:1] != _VERSION:
            raise SecretBoxError("unknown sealed-value format")
        if len(sealed) < 1 + _NONCE_BYTES:
            raise SecretBoxError("sealed value is truncated")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except InvalidTag as exc:
            raise SecretBoxError("sealed value does not open with this key and context") from exc


def _read_private_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretBoxError(
            f"{path} is readable by group or others (mode {stat.filemode(mode)}); "
            f"run: chmod 600 {path}"
        )
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise SecretBoxError(f"{path} does not hold a 32-byte key")
    return key
