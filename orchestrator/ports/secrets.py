"""Sealing secrets at rest."""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    """Encrypts a secret bound to a context string, and opens it again."""

    def seal(self, plaintext: str, context: str) -> bytes:
        """Encrypt `plaintext` for `context`."""
        ...

    def open(self, sealed: bytes, context: str) -> str:
        """Decrypt a value sealed for `context`."""
        ...
