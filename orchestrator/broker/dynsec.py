"""Mosquitto's dynamic security plugin, as data: the commands that create and remove a device
account, and the reading of the plugin's answers. No I/O here.

The plugin takes `{"commands": [...]}` on CONTROL_TOPIC and answers every batch with one
`{"responses": [...]}` on RESPONSE_TOPIC, one response per command, in order, each echoing the
command's `correlationData`. A response carries `error` when its command failed; the other
commands of the batch still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import msgspec

from orchestrator.ports.broker import BrokerUnavailableError, DeviceAccount

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ROLE_PREFIX = "status-"
"""A device's role is named after its username, prefixed so it can never be the admin's."""


class Acl(msgspec.Struct, frozen=True, kw_only=True):
    """One rule of a role; the higher priority is checked first."""

    acltype: Literal["publishClientSend", "subscribePattern"]
    topic: str
    allow: bool
    priority: int


class RoleRef(msgspec.Struct, frozen=True, kw_only=True):
    """A role given to a client."""

    rolename: str


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="command"):
    absent: ClassVar[str | None] = None
    """The error that means the goal already holds (deleting what is not there)."""
    exists: ClassVar[str | None] = None
    """The error that means the subject is already there (creating it again)."""

    @property
    def name(self) -> str:
        """The command's name, as the plugin calls it."""
        return str(self.__struct_config__.tag)


class CreateRole(_Command, frozen=True, kw_only=True, tag="createRole"):
    """Create a role with its rules."""

    exists: ClassVar[str | None] = "Role already exists"
    rolename: str
    acls: tuple[Acl, ...]

    @property
    def subject(self) -> str:
        """The role."""
        return f"role {self.rolename}"


class DeleteRole(_Command, frozen=True, kw_only=True, tag="deleteRole"):
    """Delete a role (clients holding it keep their connection)."""

    absent: ClassVar[str | None] = "Role not found"
    rolename: str

    @property
    def subject(self) -> str:
        """The role."""
        return f"role {self.rolename}"


class CreateClient(_Command, frozen=True, kw_only=True, tag="createClient"):
    """Create a client account bound to one client id."""

    exists: ClassVar[str | None] = "Client already exists"
    username: str
    password: str
    clientid: str
    roles: tuple[RoleRef, ...]

    def __repr__(self) -> str:
        return f"CreateClient(username={self.username!r}, password=<redacted>)"

    @property
    def subject(self) -> str:
        """The client."""
        return f"client {self.username}"


class DeleteClient(_Command, frozen=True, kw_only=True, tag="deleteClient"):
    """Delete a client account; the broker disconnects every connection made with it."""

    absent: ClassVar[str | None] = "Client not found"
    username: str

    @property
    def subject(self) -> str:
        """The client."""
        return f"client {self.username}"


Command = CreateRole | DeleteRole | CreateClient | DeleteClient


class Response(
    msgspec.Struct, frozen=True, kw_only=True, rename={"correlation": "correlationData"}
):
    """The plugin's answer to one command (`data` of read commands is not needed)."""

    command: str
    error: str | None = None
    correlation: str | None = None


class Responses(msgspec.Struct, frozen=True, kw_only=True):
    """The plugin's answer to one batch."""

    responses: tuple[Response, ...]

    @property
    def correlation(self) -> str | None:
        """The batch's correlation id, echoed from its commands."""
        return self.responses[0].correlation if self.responses else None


_RESPONSES = msgspec.json.Decoder(Responses)
_ENCODER = msgspec.json.Encoder()


def role_name(username: str) -> str:
    """The role of device account `username`."""
    return ROLE_PREFIX + username


def grant_commands(account: DeviceAccount) -> tuple[Command, ...]:
    """Replace any account of that username with one that may connect as `account.client_id`
    and publish on `account.status_topic` only. Deleting first makes a re-grant refuse the old
    password and disconnect whoever still uses it."""
    return (*revoke_commands(account.username), *create_commands(account))


def create_commands(account: DeviceAccount) -> tuple[Command, ...]:
    """Create the account of `grant_commands`, which must not exist yet (AccountExistsError
    otherwise). Half the commands of a replacement: the plugin rewrites its whole
    configuration file after each one, so every command costs the broker time that grows
    with the number of accounts."""
    role = role_name(account.username)
    acls = (
        Acl(acltype="publishClientSend", topic=account.status_topic, allow=True, priority=1),
        # Denied whatever the broker's default ACL access says.
        Acl(acltype="publishClientSend", topic="#", allow=False, priority=0),
        Acl(acltype="subscribePattern", topic="#", allow=False, priority=0),
    )
    return (
        CreateRole(rolename=role, acls=acls),
        CreateClient(
            username=account.username,
            password=account.password,
            clientid=account.client_id,
            roles=(RoleRef(rolename=role),),
        ),
    )


def revoke_commands(username: str) -> tuple[Command, ...]:
    """Remove account `username` and its role; the broker disconnects its clients."""
    return DeleteClient(username=username), DeleteRole(rolename=role_name(username))


def encode_batch(commands: Sequence[Command], correlation: str) -> bytes:
    """The message to publish on CONTROL_TOPIC; every command carries `correlation`."""
    batch = [
        {**msgspec.to_builtins(command), "correlationData": correlation} for command in commands
    ]
    return _ENCODER.encode({"commands": batch})


class AccountExistsError(BrokerUnavailableError):
    """A create command found its subject already there: expected of `create_commands` for
    an account granted before, a fault anywhere else."""


def decode_responses(payload: bytes) -> Responses:
    """Parse a message of RESPONSE_TOPIC (msgspec.DecodeError / ValidationError on garbage)."""
    return _RESPONSES.decode(payload)


def check_responses(commands: Sequence[Command], answer: Responses) -> None:
    """Raise BrokerUnavailableError unless every command succeeded or found its goal already
    met. Messages name the command and its subject, never a password."""
    if len(answer.responses) != len(commands):
        raise BrokerUnavailableError(
            f"dynamic security answered {len(answer.responses)} of {len(commands)} commands"
        )
    for command, response in zip(commands, answer.responses, strict=True):
        if response.command != command.name:
            raise BrokerUnavailableError(
                f"dynamic security answered {response.command!r} to {command.name!r}"
            )
        if response.error is None or response.error == command.absent:
            continue
        refused = f"dynamic security refused {command.name} of {command.subject}: {response.error}"
        if response.error == command.exists:
            raise AccountExistsError(refused)
        raise BrokerUnavailableError(refused)
