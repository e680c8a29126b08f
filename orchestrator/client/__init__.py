"""The command line's client of a running appliance: the V1 API over HTTP and its event
stream, used exactly as any other client would (same key, same step-up rules)."""
