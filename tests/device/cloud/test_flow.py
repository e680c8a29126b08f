"""The registration flow without an event loop: what it asks for, and when it retries,
recovers, persists or gives up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
import pytest

from orchestrator.device.cloud.errors import CloudError, ErrorCode, ErrorType
from orchestrator.device.cloud.flow import (
    RETRY_DELAYS_S,
    Command,
    Confirm,
    Flow,
    Pause,
    Prove,
    Publish,
    Registered,
    Reply,
    Save,
    Verdict,
    confirm_stored,
    register,
)
from orchestrator.device.cloud.names import PendingRegistration, pending_for
from orchestrator.device.cloud.settings import ProvisionSettings

T = TypeVar("T")
SETTINGS = ProvisionSettings(
    server_url="tb.local", server_port=1883, provision_device_key="k", provision_device_secret="s"
)
PENDING = pending_for(SETTINGS, None)
TOKEN = PENDING.access_token


def success(token: str = TOKEN) -> bytes:
    return msgspec.json.encode(
        {"credentialsValue": token, "credentialsType": "ACCESS_TOKEN", "status": "SUCCESS"}
    )


NOT_FOUND = b'{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}'
FAILURE = b'{"errorMsg":"Failed to provision device!","status":"FAILURE"}'


def unreachable() -> CloudError:
    return CloudError(ErrorCode.SERVER_UNREACHABLE, "cannot reach tb.local:1883")


def no_answer() -> CloudError:
    return CloudError(ErrorCode.NO_ANSWER, "no answer in 30 s")


Handler = Callable[[Command], "Reply | CloudError"]


def run(flow: Flow[T], handler: Handler) -> tuple[list[Command], T]:
    """Drive `flow` with `handler` (a CloudError it returns is thrown in)."""
    seen: list[Command] = []
    outcome: Reply | CloudError = None
    while True:
        try:
            command = flow.throw(outcome) if isinstance(outcome, CloudError) else flow.send(outcome)
        except StopIteration as stop:
            return seen, stop.value
        seen.append(command)
        outcome = handler(command)


def server(
    *answers: Reply | CloudError, verdicts: tuple[Verdict | CloudError, ...] = ()
) -> Handler:
    """Publish gets `answers` in turn, Confirm and Prove `verdicts` (default: accepted)."""
    publish, check = list(answers), list(verdicts)

    def handle(command: Command) -> Reply | CloudError:
        match command:
            case Publish():
                return publish.pop(0)
            case Confirm() | Prove():
                return check.pop(0) if check else Verdict.ACCEPTED
            case _:
                return None

    return handle


def kinds(commands: list[Command]) -> list[str]:
    return [type(c).__name__ for c in commands]


def doubtful(pending: PendingRegistration = PENDING) -> PendingRegistration:
    return msgspec.structs.replace(pending, in_doubt=True)


def test_the_happy_path_persists_then_publishes_then_proves() -> None:
    commands, registered = run(register(SETTINGS, PENDING), server(success()))
    assert kinds(commands) == ["Save", "Publish", "Prove"]
    save, publish, prove = commands
    assert isinstance(save, Save)
    assert save.pending == doubtful()
    assert isinstance(publish, Publish)
    assert publish.request.device_name == PENDING.device_name
    assert publish.request.token == TOKEN
    assert publish.request.credentials_type == "ACCESS_TOKEN"
    assert (publish.request.provision_device_key, publish.request.provision_device_secret) == (
        "k",
        "s",
    )
    assert prove == Prove(TOKEN)
    assert registered == Registered(access_token=TOKEN)


def test_network_failures_are_retried_after_1_2_and_4_seconds() -> None:
    handler = server(unreachable(), unreachable(), unreachable(), success())
    commands, registered = run(register(SETTINGS, PENDING), handler)
    pauses = [c for c in commands if isinstance(c, Pause)]
    assert [p.seconds for p in pauses] == [1.0, 2.0, 4.0] == list(RETRY_DELAYS_S)
    assert [(p.retry, p.retries) for p in pauses] == [(1, 3), (2, 3), (3, 3)]
    # Nothing went out while the server was unreachable: no token to confirm.
    assert kinds(commands) == [
        "Save",
        "Publish",
        "Pause",
        "Publish",
        "Pause",
        "Publish",
        "Pause",
        "Publish",
        "Prove",
    ]
    assert registered.access_token == TOKEN


def test_after_three_retries_the_network_error_ends_it_counting_four_attempts() -> None:
    handler = server(unreachable(), unreachable(), unreachable(), unreachable())
    with pytest.raises(CloudError) as caught:
        run(register(SETTINGS, PENDING), handler)
    assert caught.value.code is ErrorCode.SERVER_UNREACHABLE
    assert caught.value.error_type is ErrorType.NETWORK
    assert caught.value.attempts == 4


@pytest.mark.parametrize(
    ("answer", "code"),
    [(NOT_FOUND, ErrorCode.PROVISION_NOT_FOUND), (FAILURE, ErrorCode.PROVISION_FAILURE)],
)
def test_refusals_are_never_retried_and_clear_the_doubt(answer: bytes, code: ErrorCode) -> None:
    commands: list[Command] = []
    with pytest.raises(CloudError) as caught:
        run(register(SETTINGS, PENDING), _recording(commands, server(answer)))
    assert caught.value.code is code
    assert caught.value.attempts == 1
    assert kinds(commands) == ["Save", "Publish", "Save"]
    assert commands[-1] == Save(PENDING)  # in_doubt False again: the refusal created nothing


def test_a_lost_answer_is_recovered_by_confirming_the_token_without_asking_again() -> None:
    commands, registered = run(register(SETTINGS, PENDING), server(no_answer()))
    assert kinds(commands) == ["Save", "Publish", "Pause", "Confirm"]
    assert commands[-1] == Confirm(TOKEN)
    assert registered == Registered(access_token=TOKEN, recovered=True)


def test_a_request_that_never_arrived_is_sent_again_once_the_token_is_refused() -> None:
    handler = server(no_answer(), success(), verdicts=(Verdict.REFUSED, Verdict.ACCEPTED))
    commands, registered = run(register(SETTINGS, PENDING), handler)
    assert kinds(commands) == ["Save", "Publish", "Pause", "Confirm", "Publish", "Prove"]
    assert not registered.recovered


def test_an_earlier_run_in_doubt_confirms_first_and_asks_nothing_if_the_device_exists() -> None:
    commands, registered = run(register(SETTINGS, doubtful()), server())
    assert kinds(commands) == ["Confirm"]
    assert registered.recovered


def test_an_earlier_run_in_doubt_whose_token_is_unknown_asks_without_saving_again() -> None:
    handler = server(success(), verdicts=(Verdict.REFUSED, Verdict.ACCEPTED))
    commands, _ = run(register(SETTINGS, doubtful()), handler)
    assert kinds(commands) == ["Confirm", "Publish", "Prove"]


def test_a_failed_confirmation_is_retried_as_a_network_failure() -> None:
    handler = server(verdicts=(unreachable(), unreachable(), Verdict.ACCEPTED))
    commands, registered = run(register(SETTINGS, doubtful()), handler)
    assert kinds(commands) == ["Confirm", "Pause", "Confirm", "Pause", "Confirm"]
    assert registered.recovered


def test_a_proof_lost_on_the_network_is_tried_again_without_a_second_request() -> None:
    handler = server(success(), verdicts=(unreachable(), Verdict.ACCEPTED))
    commands, registered = run(register(SETTINGS, PENDING), handler)
    assert kinds(commands) == ["Save", "Publish", "Prove", "Pause", "Prove"]
    assert registered.access_token == TOKEN


def test_a_refused_new_token_is_not_stored() -> None:
    with pytest.raises(CloudError) as caught:
        run(register(SETTINGS, PENDING), server(success(), verdicts=(Verdict.REFUSED,)))
    assert caught.value.code is ErrorCode.TOKEN_REFUSED
    assert caught.value.error_type is ErrorType.AUTH
    assert PENDING.device_name in caught.value.message


def test_the_servers_token_wins_over_ours() -> None:
    commands, registered = run(register(SETTINGS, PENDING), server(success("pre-provisioned")))
    assert commands[-1] == Prove("pre-provisioned")
    assert registered.access_token == "pre-provisioned"


def test_an_unusable_answer_is_not_retried() -> None:
    with pytest.raises(CloudError) as caught:
        run(register(SETTINGS, PENDING), server(b'{"status":"SUCCESS"}'))
    assert caught.value.code is ErrorCode.ANSWER_INVALID


def test_stored_credentials_are_confirmed_with_retries() -> None:
    commands, _ = run(confirm_stored("t"), server(verdicts=(unreachable(), Verdict.ACCEPTED)))
    assert kinds(commands) == ["Confirm", "Pause", "Confirm"]
    with pytest.raises(CloudError) as caught:
        run(confirm_stored("t"), server(verdicts=(Verdict.REFUSED,)))
    assert caught.value.code is ErrorCode.STORED_TOKEN_REFUSED


def test_commands_do_not_show_tokens() -> None:
    assert TOKEN not in repr(Confirm(TOKEN)) + repr(Prove(TOKEN)) + repr(
        Registered(access_token=TOKEN)
    )


def _recording(into: list[Command], handler: Handler) -> Handler:
    def handle(command: Command) -> Reply | CloudError:
        into.append(command)
        return handler(command)

    return handle
