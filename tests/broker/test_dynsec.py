"""The dynamic security commands we send and how we read the answers (the exact JSON was
checked against Mosquitto 2.0.11; the link tests run it for real)."""

from __future__ import annotations

import msgspec
import pytest

from orchestrator.broker.dynsec import (
    AccountExistsError,
    CreateClient,
    check_responses,
    create_commands,
    decode_responses,
    encode_batch,
    grant_commands,
    revoke_commands,
    role_name,
)
from orchestrator.ports.broker import BrokerUnavailableError
from tests.broker.conftest import MAC_A, account


def test_a_grant_replaces_the_account_in_one_batch() -> None:
    a = account(MAC_A, "s3cret")
    sent = msgspec.json.decode(encode_batch(grant_commands(a), "c-1"))
    assert sent == {
        "commands": [
            {"command": "deleteClient", "username": "dev-02dc0000000a", "correlationData": "c-1"},
            {
                "command": "deleteRole",
                "rolename": "status-dev-02dc0000000a",
                "correlationData": "c-1",
            },
            {
                "command": "createRole",
                "rolename": "status-dev-02dc0000000a",
                "acls": [
                    {
                        "acltype": "publishClientSend",
                        "topic": "delicasa/devices/02dc0000000a/status",
                        "allow": True,
                        "priority": 1,
                    },
                    {"acltype": "publishClientSend", "topic": "#", "allow": False, "priority": 0},
                    {"acltype": "subscribePattern", "topic": "#", "allow": False, "priority": 0},
                ],
                "correlationData": "c-1",
            },
            {
                "command": "createClient",
                "username": "dev-02dc0000000a",
                "password": "s3cret",
                "clientid": "dev-02dc0000000a",
                "roles": [{"rolename": "status-dev-02dc0000000a"}],
                "correlationData": "c-1",
            },
        ]
    }


def test_a_revoke_deletes_the_client_then_its_role() -> None:
    sent = msgspec.json.decode(encode_batch(revoke_commands("dev-1"), "c-2"))
    assert sent == {
        "commands": [
            {"command": "deleteClient", "username": "dev-1", "correlationData": "c-2"},
            {"command": "deleteRole", "rolename": "status-dev-1", "correlationData": "c-2"},
        ]
    }


def test_a_role_is_never_the_admins() -> None:
    assert role_name("admin") != "admin"


def test_the_password_stays_out_of_reprs() -> None:
    commands = grant_commands(account(MAC_A, "s3cret"))
    assert "s3cret" not in repr(commands)
    assert "s3cret" not in str(commands[-1])
    assert isinstance(commands[-1], CreateClient)


def answer(*responses: str, correlation: str = "c-1") -> bytes:
    items = ",".join(
        f'{{"command":"{r.split(":")[0]}"'
        + (f',"error":"{r.split(":")[1]}"' if ":" in r else "")
        + f',"correlationData":"{correlation}"}}'
        for r in responses
    )
    return f'{{"responses":[{items}]}}'.encode()


def test_missing_things_are_fine_when_deleting() -> None:
    commands = grant_commands(account(MAC_A))
    got = decode_responses(
        answer(
            "deleteClient:Client not found",
            "deleteRole:Role not found",
            "createRole",
            "createClient",
        )
    )
    assert got.correlation == "c-1"
    check_responses(commands, got)


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        (
            ("deleteClient", "deleteRole", "createRole", "createClient:Client already exists"),
            "refused createClient of client dev-02dc0000000a: Client already exists",
        ),
        (
            ("deleteClient", "deleteRole", "createRole:Role already exists", "createClient"),
            "refused createRole of role status-dev-02dc0000000a",
        ),
        (
            ("deleteClient:Permission denied", "deleteRole", "createRole", "createClient"),
            "refused deleteClient",
        ),
        (("deleteClient", "deleteRole"), "answered 2 of 4 commands"),
        (("deleteClient", "deleteRole", "createRole", "getClient"), "answered 'getClient'"),
    ],
)
def test_any_other_answer_is_a_failure_that_names_no_password(
    responses: tuple[str, ...], message: str
) -> None:
    commands = grant_commands(account(MAC_A, "s3cret"))
    with pytest.raises(BrokerUnavailableError, match=message) as failed:
        check_responses(commands, decode_responses(answer(*responses)))
    assert "s3cret" not in str(failed.value)


def test_a_whole_batch_refused_has_no_correlation() -> None:
    # What 2.0.11 says to a message without "commands".
    got = decode_responses(
        b'{"responses":[{"command":"Unknown command","error":"Invalid/missing commands"}]}'
    )
    assert got.correlation is None


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"responses": 1}', b"\xff"])
def test_garbage_answers_raise_msgspec_errors(payload: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_responses(payload)


def test_a_first_grant_only_creates() -> None:
    """Half the commands of a replacement: each one makes the plugin rewrite its file."""
    a = account(MAC_A, "s3cret")
    assert grant_commands(a)[2:] == create_commands(a)
    assert [c.name for c in create_commands(a)] == ["createRole", "createClient"]


@pytest.mark.parametrize(
    "responses",
    [
        ("createRole:Role already exists", "createClient"),
        ("createRole", "createClient:Client already exists"),
    ],
)
def test_creating_what_exists_is_told_apart(responses: tuple[str, ...]) -> None:
    """The grant then replaces the account instead."""
    with pytest.raises(AccountExistsError, match="already exists"):
        check_responses(create_commands(account(MAC_A)), decode_responses(answer(*responses)))
