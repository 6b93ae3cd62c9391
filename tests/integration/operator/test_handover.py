"""A delivery that reaches a standby goes to the leader even when the standby's view of the Lease
is a retry period old: it reads the Lease once more when it knows no leader, or when the one it
knows does not answer (a fresh-clone CI run lost a delivery to the first case: the standby had
lost the race to create the Lease and had not looked again yet)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tryon_operator.api.errors import KubeError
from tryon_operator.api.vocabulary import WEBHOOK_PATH
from tryon_operator.registry.handover import Handover
from tryon_operator.registry.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

from tests.integration.operator.webhook_receiver import Receiver, running_receiver
from tests.support.servers import free_port

pytestmark = pytest.mark.integration

HEADERS = {SIGNATURE_HEADER: "v1,c2ln", TIMESTAMP_HEADER: "1764547200",
           DELIVERY_HEADER: "d-1", "Content-Type": "application/json", "X-Other": "dropped"}
BODY = b'{"entity": "model_version_alias", "action": "created"}'


def deliver(known: str | None, read: Callable[[], str | None]) -> tuple[int, str, list[str]]:
    """Posts BODY through a standby's handover; its answer and the Lease reads it made."""
    reads: list[str] = []

    def read_lease() -> str | None:
        reads.append("GET")
        return read()

    handover = Handover(lambda: False, lambda: known, read_lease)
    answer = asyncio.run(handover(HEADERS, BODY))
    assert answer is not None
    return answer.status, answer.text or "", reads


def forwarded(leader: Receiver) -> list[dict[str, str]]:
    return [r.headers for r in leader.on(WEBHOOK_PATH)]


def test_a_standby_that_knows_the_leader_forwards_without_reading_the_lease() -> None:
    with running_receiver() as leader:
        status, _, reads = deliver(leader.base_url, lambda: None)
    assert status == 200 and reads == []
    (headers,) = forwarded(leader)
    assert headers[DELIVERY_HEADER] == "d-1" and "X-Other" not in headers


def test_a_standby_that_has_seen_no_leader_yet_reads_the_lease_and_forwards() -> None:
    with running_receiver() as leader:
        status, _, reads = deliver(None, lambda: leader.base_url)
    assert status == 200 and reads == ["GET"]
    assert len(forwarded(leader)) == 1


def test_a_standby_whose_leader_is_gone_forwards_to_the_one_the_lease_names_now() -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    with running_receiver() as leader:
        status, _, reads = deliver(gone, lambda: leader.base_url)
    assert status == 200 and reads == ["GET"]
    assert len(forwarded(leader)) == 1


def test_a_leader_that_does_not_answer_and_is_still_named_is_a_503() -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    status, text, reads = deliver(gone, lambda: gone)
    assert status == 503 and "leader unreachable" in text and reads == ["GET"]


def test_no_leader_in_the_view_nor_in_the_lease_is_a_503_polling_covers() -> None:
    status, text, reads = deliver(None, lambda: None)
    assert status == 503 and "not known yet" in text and reads == ["GET"]


def test_an_unreadable_lease_is_a_503_not_an_error() -> None:
    def unreadable() -> str | None:
        raise KubeError("the apiserver is not reachable")

    status, text, _ = deliver(None, unreadable)
    assert status == 503 and "not known yet" in text
