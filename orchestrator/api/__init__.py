"""The PiOrchestrator V1 HTTP API (litestar): envelope, errors, auth, routes."""
