"""`orchestrator demo`: the appliance against a simulated fleet, for a newcomer's first batch."""
