"""Delicasa batch Wi-Fi provisioning orchestrator."""

__version__ = "0.1.0"
