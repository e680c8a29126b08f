"""The reference device agent: the device side of the protocol, runnable by the hundred in one
process for the fleet simulator.

- `agent`: DeviceAgent (lifecycle, credentials, going online)
- `settings`: DeviceIdentity and AgentTiming, what a device is and how fast it acts
- `lifecycle`: the Phase enum and its transition table
- `network`: the NetworkSwitch port and SimulatedNetworks, the loopback tier's world
- `mqtt`: the status link to the broker (the only aiomqtt user here)
- `http`: DeviceApi, one ASGI app for many agents, and `serving` it with uvicorn
- `faults`: FaultProfile and the seeded assignment over a fleet
- `mdns`: DeviceAdvertiser, one zeroconf responder advertising many devices (the only
  zeroconf user here)
- `errors`: the agent's error root
"""
