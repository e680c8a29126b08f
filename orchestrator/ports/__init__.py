"""Ports: the small Protocols the application core talks through. Each has an in-memory fake
and one contract test suite that runs against the fake and the real adapter alike."""
