"""Questions to the person at the terminal: its controlling TTY, which still answers when
standard input is a pipe (`allowlist import -`). Blocking: call them off the event loop."""

from __future__ import annotations

import getpass
import io
import os

_TTY = "/dev/tty"


def has_terminal() -> bool:
    """Whether this process has a controlling terminal to ask."""
    try:
        fd = os.open(_TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def ask(question: str) -> str | None:
    """A line typed at the terminal (echoed), or None without a terminal or an answer."""
    try:
        fd = os.open(_TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    # Unbuffered, as getpass does: a terminal cannot seek, which buffered read-write needs.
    with io.TextIOWrapper(io.FileIO(fd, "r+"), encoding="utf-8") as tty:
        tty.write(question)
        tty.flush()
        answer = tty.readline()
    return answer.strip() or None


def ask_secret(question: str) -> str | None:
    """A line typed at the terminal without echo, or None without a terminal."""
    if not has_terminal():
        # getpass would fall back to reading standard input, with a warning: not wanted.
        return None
    return getpass.getpass(question)
