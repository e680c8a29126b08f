"""Operator security: API keys and sealing secrets at rest."""
