"""The target network's MQTT broker, administered through Mosquitto's dynamic security plugin:
per-device accounts and the devices' online messages (the ports of orchestrator.ports.broker)."""
