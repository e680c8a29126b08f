"""The device protocol: what a device and the orchestrator say to each other, as data.

Pure codecs, no sockets: `messages` (the device's HTTP API), `advert` (the mDNS service and
its TXT record) and `status` (what a device publishes over MQTT on the target network). The
reference device agent and the orchestrator's adapters both speak through these types, and
contracts/device-protocol.md is generated from them.
"""

PROTOCOL_VERSION = 1
"""Bumped only for a breaking change; additions are new optional fields (see COMPATIBILITY)."""

COMPATIBILITY = """\
- `protocol_version` is an integer carried in every HTTP answer, in the mDNS TXT key `pv` and in
  the URL prefix (`/v1`). It changes only for a breaking change; a device may serve several
  versions side by side under their own prefixes.
- Within a version, changes are additions only: new optional fields, new endpoints, new enum
  values in fields documented as open (`family`, `model`, failure `reason`). Both sides ignore
  fields they do not know, so an older orchestrator keeps working with newer firmware and the
  other way round.
- A required field is never added, removed or renamed, and a field's type or meaning never
  changes, within a version.
- The orchestrator refuses a device whose `pv` it does not support, with the reason
  "unsupported protocol version N", instead of guessing.
"""
