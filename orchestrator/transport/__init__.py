"""Transports that carry the orchestrator's requests to devices on the onboarding network."""
