"""The deployment test: the playbook applied to a booted Debian bookworm container, then checked."""
