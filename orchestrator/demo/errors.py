"""Why the demo cannot do what it was asked; the message says what to do instead."""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot start, or cannot show a code, here."""
