"""A webhook delivery that reaches a standby is handed to the leader, so the alias move still
starts the rollout within a second (polling stays the safety net).

The leader writes its receiver's address on the Lease (``ANNOTATION_LEADER_WEBHOOK``, one of the
elector's holder annotations; only the operator's ServiceAccount may update that Lease); the
standby forwards the delivery there unchanged. The standby does not verify it: the leader checks
the signature, the timestamp and replays, exactly as for a delivery it got itself. The hop is
inside the cluster to a pod IP, which no certificate names, so the certificate is not checked on
it; the HMAC signature is what makes a delivery count, and a delivery carries no secret.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web

from ..api.errors import KubeError
from ..api.vocabulary import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_PATH
from ..settings import OperatorSettings

log = logging.getLogger(__name__)

ANNOTATION_LEADER_WEBHOOK = "tryon.dev/leader-webhook-url"
FORWARDED = (SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER, "Content-Type")
HANDOVER_TIMEOUT_SECONDS = 5.0


def webhook_url(settings: OperatorSettings) -> str | None:
    """This replica's own receiver address, when it has a pod IP and a webhook port."""
    if not settings.pod_ip or not settings.webhook_port:
        return None
    scheme = "https" if settings.webhook_cert_file else "http"
    host = f"[{settings.pod_ip}]" if ":" in settings.pod_ip else settings.pod_ip
    return f"{scheme}://{host}:{settings.webhook_port}"


def lease_annotations(settings: OperatorSettings) -> dict[str, str | None]:
    """What this replica, as leader, advertises on the Lease: where its receiver answers (None: it
    has no address to give, and a stale one is still removed when it releases the Lease)."""
    return {ANNOTATION_LEADER_WEBHOOK: webhook_url(settings)}


class Handover:
    """``await handover(headers, body)``: the leader's answer when this replica is a standby,
    None when it leads (then it handles the delivery itself).

    The standby's view of the Lease can be a retry period old (it lost the race to create the
    Lease, or the leader just changed), so when it knows no leader, or the one it knows does not
    answer, it reads the Lease once more and tries the leader named there.
    """

    def __init__(
        self,
        leading: Callable[[], bool],
        leader_url: Callable[[], str | None],
        read_leader_url: Callable[[], str | None],
    ) -> None:
        self._leading = leading
        self._leader_url = leader_url
        self._read_leader_url = read_leader_url
        self._tls = ssl.create_default_context()
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    async def __call__(self, headers: Mapping[str, str], body: bytes) -> web.Response | None:
        if self._leading():
            return None
        sent = {k: headers[k] for k in FORWARDED if k in headers}
        known = self._leader_url()
        failure = None
        if known is not None:
            answer, failure = await self._forward(known, sent, body)
            if answer is not None:
                return answer
        fresh = await self._read()
        if fresh is not None and fresh != known:
            answer, failure = await self._forward(fresh, sent, body)
            if answer is not None:
                return answer
        if failure is None:
            log.warning("webhook on a standby, leader address unknown; polling will see the change")
            return web.json_response(
                {"error": "this replica is a standby and the leader is not known yet"}, status=503
            )
        return web.json_response({"error": f"leader unreachable: {failure}"}, status=503)

    async def _read(self) -> str | None:
        try:
            return await asyncio.to_thread(self._read_leader_url)
        except KubeError as err:
            log.warning("webhook on a standby: the Lease could not be read: %s", err)
            return None

    async def _forward(
        self, url: str, sent: Mapping[str, str], body: bytes
    ) -> tuple[web.Response | None, str | None]:
        """The leader's answer, or None and why it could not be reached."""
        timeout = aiohttp.ClientTimeout(total=HANDOVER_TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{url}{WEBHOOK_PATH}", data=body, headers=sent, ssl=self._tls) as r,
            ):
                answer = await r.read()
                log.info("webhook handed to the leader at %s: HTTP %d", url, r.status)
                reply = web.Response(status=r.status, body=answer, content_type="application/json")
                return reply, None
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("webhook handover to %s failed: %s", url, err)
            return None, str(err) or type(err).__name__
