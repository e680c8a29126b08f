"""contracts/device-protocol.md and one JSON Schema per message, rendered from the protocol.

Pure text from the protocol's types, constants and docstrings. Enum members and struct fields
are described by the string literal that follows them in the source; Python keeps no such
docstrings at run time, so they are read from the source here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi

from orchestrator.domain.network import DEFAULT_ONBOARDING_SSID
from orchestrator.protocol import COMPATIBILITY, PROTOCOL_VERSION, status
from orchestrator.protocol.advert import SERVICE_TYPE, AdvertError, parse_txt, txt_record
from orchestrator.protocol.messages import (
    API_PREFIX,
    CREDENTIALS_PATH,
    ENDPOINTS,
    ERROR_STATUS,
    INFO_PATH,
    MAX_REQUEST_BYTES,
    Credentials,
    DeliveryReceipt,
    DeviceError,
    DeviceErrorCode,
    DeviceInfo,
    DeviceState,
    ErrorAnswer,
    FailureReason,
    LastFailure,
    MqttCredentials,
    SecurityScheme,
)
from orchestrator.protocol.status import QOS, Offline, Online, StatusMessage, status_topic
from orchestrator.protocol.typedoc import (
    anchor_link,
    attribute_docs,
    clean_descriptions,
    docstring,
    inline_code,
    json_block,
    markdown_table,
    optional_text,
    service_label,
    structs_of,
    type_text,
)

DOCUMENT = "device-protocol.md"
SCHEMA_DIR = "device-protocol"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

TXT_MEANING = {
    "mac": "The device's MAC address: its identity (the instance name carries no meaning).",
    "fam": "Device family, as `family` in `/info` (open set).",
    "model": "Model, as `model` in `/info`.",
    "fw": "Firmware version, as `firmware_version` in `/info`.",
    "pv": "Protocol version, a decimal integer (see [Compatibility](#compatibility)).",
    "state": "The [device state](#devicestate).",
    "sec": "Comma-separated [security schemes](#securityscheme); unknown ones are ignored.",
    "fail": "Only in state `failed`: the [failure reason](#failurereason).",
}
"""Every key `txt_record` writes; rendering fails when one has no meaning here."""

EXAMPLE_INFO = DeviceInfo(
    protocol_version=PROTOCOL_VERSION,
    mac="24:0A:C4:12:34:56",
    family="esp32-cam",
    model="AI-Thinker",
    firmware_version="1.4.2",
    rssi=-52,
    state=DeviceState.UNPROVISIONED,
    security_schemes=[SecurityScheme.PLAIN, SecurityScheme.SEC2],
)
EXAMPLE_FAILED = msgspec.structs.replace(
    EXAMPLE_INFO,
    state=DeviceState.FAILED,
    last_failure=LastFailure(
        reason=FailureReason.AUTH_ERROR,
        message="the target network refused the password",
        attempts=3,
    ),
)
EXAMPLE_CREDENTIALS = Credentials(
    target_ssid="PlantFloor",
    target_password="correct horse battery staple",  # noqa: S106 - a documented example
    mqtt=MqttCredentials(
        broker_url="mqtt://10.20.0.5:1883",
        username="cam-0042",
        password="7f3e9c0d2b",  # noqa: S106 - a documented example
        topic_prefix="delicasa/cam-0042",
    ),
    device_name="cam-0042",
    nonce="q8Z3m1Xw9LkP2vT7yR4s",
)
EXAMPLE_RECEIPT = DeliveryReceipt(
    protocol_version=PROTOCOL_VERSION,
    nonce=EXAMPLE_CREDENTIALS.nonce,
    state=DeviceState.PROVISIONED,
)
EXAMPLE_ERROR = ErrorAnswer(
    protocol_version=PROTOCOL_VERSION,
    error=DeviceError(code=DeviceErrorCode.BUSY, message="already leaving with other credentials"),
)
EXAMPLE_ONLINE = Online(
    nonce=EXAMPLE_CREDENTIALS.nonce,
    mac=EXAMPLE_INFO.mac,
    ip="10.20.0.117",
    firmware_version=EXAMPLE_INFO.firmware_version,
    device_name=EXAMPLE_CREDENTIALS.device_name,
)
EXAMPLE_OFFLINE = Offline(mac=EXAMPLE_INFO.mac)


def message_types() -> dict[str, Any]:
    """Every message that travels whole (HTTP bodies, MQTT payloads) by schema name, in the
    order of the flow."""
    types: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        for struct in (endpoint.request, endpoint.answer):
            if struct is not None:
                types[struct.__name__] = struct
    types[ErrorAnswer.__name__] = ErrorAnswer
    types[Online.__name__] = Online
    types[Offline.__name__] = Offline
    types["StatusMessage"] = StatusMessage
    return types


def schema_file(name: str) -> str:
    """Where the schema of message `name` lives, relative to contracts/."""
    return f"{SCHEMA_DIR}/{name}.schema.json"


def contract_files() -> dict[str, Callable[[], str]]:
    """The document and every schema, by path under contracts/, with their renderers."""
    files: dict[str, Callable[[], str]] = {DOCUMENT: render_document}
    for name in sorted(message_types()):
        files[schema_file(name)] = functools.partial(render_schema, name)
    return files


def render_schema(name: str) -> str:
    """The JSON Schema of one message, field docstrings included, keys sorted."""
    schema = msgspec.json.schema(message_types()[name])
    structs = {cls.__name__: cls for cls in structs_of([message_types()[name]])}
    for definition_name, definition in schema.get("$defs", {}).items():
        if definition_name in structs:
            properties = definition["properties"]
            for field, doc in attribute_docs(structs[definition_name]).items():
                properties[field]["description"] = doc
    document = {"$schema": JSON_SCHEMA_DIALECT, "title": name, **clean_descriptions(schema)}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def render_document() -> str:
    """contracts/device-protocol.md."""
    sections = [
        _preamble(),
        _overview(),
        _discovery(),
        _http_api(),
        _delivery(),
        _errors(),
        _enums(),
        _messages(),
        _mqtt(),
        _compatibility(),
        _schemas(),
    ]
    return "\n".join(line for section in sections for line in [*section, ""]).rstrip() + "\n"


def _preamble() -> list[str]:
    return [
        f"# Device protocol v{PROTOCOL_VERSION}",
        "",
        "<!-- Generated from orchestrator/protocol by "
        "`python -m orchestrator.contracts contracts`: do not edit. -->",
        "",
        "What a device and the orchestrator say to each other: discovery on the onboarding "
        "network, the device's HTTP API, and the status a device publishes once online. Every "
        f"message also has a JSON Schema in [`{SCHEMA_DIR}/`]({SCHEMA_DIR}/).",
    ]


def _overview() -> list[str]:
    service = service_label(SERVICE_TYPE)
    return [
        "## Overview",
        "",
        f"1. The device joins the onboarding Wi-Fi network `{DEFAULT_ONBOARDING_SSID}`, the "
        "appliance's access point (WPA2; the SSID shown is the appliance's default).",
        "2. It gets an address from the appliance by DHCP.",
        f"3. It advertises the mDNS service `{service}` with the [TXT record](#discovery-over-mdns)"
        " below and serves the [HTTP API](#http-api) on the advertised port.",
        f"4. The orchestrator reads `GET {INFO_PATH}`, checks the device against its allowlist and "
        f"delivers credentials with `POST {CREDENTIALS_PATH}` (answer 202).",
        "5. The device leaves the onboarding network, joins the target network, connects to the "
        f"MQTT broker with a last will on `{status_topic('<topic_prefix>')}` and publishes "
        "`online` there with the nonce it was given. Only that message proves the device is "
        "online (see [MQTT](#mqtt-on-the-target-network)).",
        "6. When it cannot get online it gives up after a bounded number of attempts, comes back "
        "to the onboarding network in state `failed` and says why (TXT `fail`, `last_failure` "
        "in `/info`); the orchestrator may deliver credentials again.",
    ]


def _discovery() -> list[str]:
    record = txt_record(EXAMPLE_FAILED)
    if set(record) != set(TXT_MEANING):
        raise ValueError(f"describe the TXT keys {sorted(set(record) ^ set(TXT_MEANING))}")
    rows = [
        [
            inline_code(key),
            "yes" if _txt_key_required(record, key) else "no",
            inline_code(value),
            meaning,
        ]
        for key, meaning in TXT_MEANING.items()
        for value in [record[key]]
    ]
    example = " ".join(f"{k}={v}" for k, v in txt_record(EXAMPLE_INFO).items())
    return [
        "## Discovery over mDNS",
        "",
        f"Service type `{service_label(SERVICE_TYPE)}` (`{SERVICE_TYPE}`): the SRV record gives "
        "the port of the HTTP API, the A record the device's address. TXT values are UTF-8 "
        "strings and each `key=value` fits in 255 bytes. Readers ignore keys they do not know; "
        "a record that lacks a required key, or has a bad `pv` or `state`, is not a device of "
        "this protocol.",
        "",
        *markdown_table(["key", "required", "example", "meaning"], rows),
        "",
        f"A factory-fresh device: `{example}`",
    ]


def _http_api() -> list[str]:
    rows = [
        [
            inline_code(endpoint.method),
            inline_code(endpoint.path),
            anchor_link(endpoint.request.__name__) if endpoint.request else "-",
            anchor_link(endpoint.answer.__name__),
            str(endpoint.status),
            endpoint.summary,
        ]
        for endpoint in ENDPOINTS
    ]
    return [
        "## HTTP API",
        "",
        f"Plain HTTP on the onboarding network, every path under `{API_PREFIX}`. Bodies are JSON "
        f"(`application/json`); a request body never exceeds {MAX_REQUEST_BYTES} bytes. Every "
        "answer carries `protocol_version`; errors have [one shape](#errors).",
        "",
        *markdown_table(["method", "path", "request", "answer", "status", "summary"], rows),
        "",
        f"`GET {INFO_PATH}` on a factory-fresh device:",
        "",
        *json_block(EXAMPLE_INFO),
        "",
        "and after a failed attempt:",
        "",
        *json_block(EXAMPLE_FAILED),
    ]


def _delivery() -> list[str]:
    busy = ERROR_STATUS[DeviceErrorCode.BUSY]
    return [
        "## Credential delivery",
        "",
        docstring(Credentials),
        "",
        "- Equal credentials (the same body, so the same nonce) are idempotent: the device "
        "answers again as it did the first time, so a lost answer is retried safely.",
        f"- Different credentials while the device is leaving with others answer "
        f"`{DeviceErrorCode.BUSY.value}` ({busy}).",
        f"- `nonce`: {attribute_docs(Credentials)['nonce']}",
        "",
        f"`POST {CREDENTIALS_PATH}`:",
        "",
        *json_block(EXAMPLE_CREDENTIALS),
        "",
        "answers 202 with:",
        "",
        *json_block(EXAMPLE_RECEIPT),
    ]


def _errors() -> list[str]:
    docs = attribute_docs(DeviceErrorCode)
    rows = [
        [inline_code(code.value), str(ERROR_STATUS[code]), docs.get(code.name, "-")]
        for code in DeviceErrorCode
    ]
    return [
        "## Errors",
        "",
        f"{docstring(ErrorAnswer)} Its shape is [ErrorAnswer](#erroranswer), for example:",
        "",
        *json_block(EXAMPLE_ERROR),
        "",
        f"### {DeviceErrorCode.__name__}",
        "",
        f"{docstring(DeviceErrorCode)} Each comes with one HTTP status:",
        "",
        *markdown_table(["code", "HTTP status", "meaning"], rows),
    ]


def _enums() -> list[str]:
    lines = ["## Device states, failure reasons and security schemes"]
    for enum in (DeviceState, FailureReason, SecurityScheme):
        docs = attribute_docs(enum)
        rows = [[inline_code(member.value), docs.get(member.name, "-")] for member in enum]
        lines += [
            "",
            f"### {enum.__name__}",
            "",
            docstring(enum),
            "",
            *markdown_table(["value", "meaning"], rows),
        ]
    return lines


def _messages() -> list[str]:
    lines = [
        "## Messages",
        "",
        "Fields not listed as required may be absent. Both sides ignore fields they do not know.",
    ]
    for cls in structs_of(message_types().values()):
        lines += ["", f"### {cls.__name__}", "", docstring(cls)]
        schema_name = cls.__name__ if cls.__name__ in message_types() else None
        info = mi.type_info(cls)
        if not isinstance(info, mi.StructType):  # pragma: no cover - _structs yields structs
            raise TypeError(cls)
        if info.tag_field is not None:
            lines += ["", f"Tagged: `{info.tag_field}` is `{info.tag}`."]
        docs = attribute_docs(cls)
        rows = [
            [
                inline_code(field.encode_name),
                type_text(field.type),
                "yes" if field.required else optional_text(field),
                docs.get(field.name, ""),
            ]
            for field in info.fields
        ]
        lines += ["", *markdown_table(["field", "type", "required", "description"], rows)]
        if schema_name is not None:
            lines += ["", f"Schema: [`{schema_file(schema_name)}`]({schema_file(schema_name)})"]
    return lines


def _mqtt() -> list[str]:
    return [
        "## MQTT on the target network",
        "",
        docstring(status),
        "",
        *markdown_table(
            ["topic", "QoS", "retained", "payload"],
            [
                [
                    inline_code(status_topic("<topic_prefix>")),
                    str(QOS),
                    "yes",
                    f"{anchor_link('Online')} or {anchor_link('Offline')} "
                    "(tagged by `state`), JSON",
                ]
            ],
        ),
        "",
        f"- `{Online.__struct_config__.tag}`: {docstring(Online)}",
        f"- `{Offline.__struct_config__.tag}`: {docstring(Offline)}",
        "",
        *json_block(EXAMPLE_ONLINE),
        "",
        *json_block(EXAMPLE_OFFLINE),
    ]


def _compatibility() -> list[str]:
    return [
        "## Compatibility",
        "",
        f"This is protocol version {PROTOCOL_VERSION}.",
        "",
        COMPATIBILITY.rstrip(),
    ]


def _schemas() -> list[str]:
    return [
        "## JSON Schemas",
        "",
        *(f"- [`{schema_file(name)}`]({schema_file(name)})" for name in sorted(message_types())),
    ]


def _txt_key_required(record: dict[str, str], key: str) -> bool:
    """Whether parse_txt refuses `record` without `key` (asked of the code, not restated)."""
    try:
        parse_txt({k: v for k, v in record.items() if k != key})
    except AdvertError:
        return True
    return False
