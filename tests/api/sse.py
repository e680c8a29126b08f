"""A minimal SSE client for tests: reads frames off a real HTTP stream, strictly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseFrame:
    """One frame: its id and the decoded JSON of its single data line."""

    id: int
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data["type"])


class SseReader:
    """Parses frames from a streaming response; fails on anything the contract forbids."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines: AsyncIterator[str] = response.aiter_lines()

    async def next(self) -> SseFrame:
        """The next frame (comments and blank lines skipped)."""
        fields: list[tuple[str, str]] = []
        async for line in self._lines:
            if line == "":
                if fields:
                    return _frame(fields)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.append((name, value.removeprefix(" ")))
        raise EOFError("stream ended")

    async def take(self, count: int) -> list[SseFrame]:
        """The next `count` frames."""
        return [await self.next() for _ in range(count)]

    async def until(self, kind: str) -> list[SseFrame]:
        """Frames up to and including the first of type `kind`."""
        frames = [await self.next()]
        while frames[-1].type != kind:
            frames.append(await self.next())
        return frames


def _frame(fields: list[tuple[str, str]]) -> SseFrame:
    names = [name for name, _ in fields]
    assert "event" not in names, "frames must not carry an event: line"
    assert names.count("data") == 1, f"exactly one data line per frame, got {names}"
    assert names.count("id") == 1, f"exactly one id line per frame, got {names}"
    values = dict(fields)
    data = json.loads(values["data"])
    assert data["version"] == "1.0"
    assert isinstance(data["timestamp"], str)
    assert "payload" in data
    return SseFrame(id=int(values["id"]), data=data)
