"""The provisioning engine: per-family strategies (pure), the adapters that carry their
requests, the retry/timeout/circuit policy, and the engine that runs devices in waves."""
