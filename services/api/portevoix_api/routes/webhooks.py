"""`POST|GET /v1/webhooks/{network}`: signed webhooks from the networks and from bridges.

The API only forwards: the exact body bytes (the signature covers them) and the signature
headers go to the ingest service over NATS request/reply (`pv.rpc.ingest.webhook.v1`), which
holds the per-network secrets, verifies the HMAC and the replay window, adapts the payload to
contract v1 and publishes it to `pv.raw.v1` with the derived event ids as `Nats-Msg-Id`.
No bearer token: the signature is the authentication.
"""

from __future__ import annotations

from typing import Annotated, Any

import nats.errors
import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from portevoix.runtime.streams import WEBHOOK_RPC_SUBJECT
from portevoix_api.problems import Problem
from portevoix_api.routes.events import IngestResult

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

FORWARDED = ("X-PV-Signature", "X-PV-Timestamp", "X-LI-Signature", "x-twitter-webhooks-signature")
# NATS carries the body in one message (server max_payload defaults to 1 MiB).
MAX_WEBHOOK_BYTES = 900 * 1024
RPC_TIMEOUT_S = 10.0
NetworkParam = Annotated[
    str, Path(description="linkedin | x | mastodon | generic", pattern=r"^[a-z0-9_-]{1,32}$")
]
TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 422: "Invalid request"}


async def _ask_ingest(request: Request, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    try:
        reply = await request.app.state.nc.request(
            WEBHOOK_RPC_SUBJECT, body, timeout=RPC_TIMEOUT_S, headers=headers
        )
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as exc:
        raise Problem(
            503, "Service unavailable", "the ingest service did not answer; retry later",
            kind="ingest-unavailable", headers={"Retry-After": "5"},
        ) from exc  # fmt: skip
    except nats.errors.Error as exc:
        raise Problem(
            503, "Service unavailable", f"event bus error ({type(exc).__name__}); retry later",
            kind="bus-unavailable", headers={"Retry-After": "5"},
        ) from exc  # fmt: skip
    answer = orjson.loads(reply.data)
    return int(answer["status"]), answer["body"]


def _answer(status: int, body: Any) -> Response:
    if status == 200:
        return JSONResponse(body)
    if status == 503:
        raise Problem(
            503, "Service unavailable", str(body.get("detail", "event bus unavailable")),
            kind="bus-unavailable", headers={"Retry-After": "5"}, reason=body.get("reason"),
        )  # fmt: skip
    reason = str(body.get("reason", "error"))
    title = TITLES.get(status, "Internal error")
    kind = "webhook-signature" if status == 401 else f"webhook-{reason.replace('_', '-')}"
    raise Problem(
        status if status in TITLES else 500, title, f"{reason}: {body.get('detail', '')}",
        kind=kind, reason=reason,
    )  # fmt: skip


@router.post(
    "/{network}",
    response_model=IngestResult,
    summary="Receive a signed webhook",
    description="Headers `X-PV-Timestamp: <unix s>` and `X-PV-Signature: sha256=<hex "
    "HMAC-SHA256(secret, timestamp + '.' + body)>`, or the network's native scheme "
    "(`X-LI-Signature` for LinkedIn, `x-twitter-webhooks-signature` for X). A bad, missing, "
    "stale or future signature is a 401 problem whose `reason` says which. The payload is "
    "adapted to contract v1 (linkedin, x, mastodon, generic); per-item results as for "
    "`POST /v1/events`.",
    responses={401: {"description": "Signature refused (see `reason`)"}},
)
async def receive_webhook(request: Request, network: NetworkParam) -> Response:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "Payload too large", f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise Problem(413, "Payload too large", f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    headers = {"Pv-Network": network, "Pv-Op": "deliver"}
    for name in FORWARDED:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return _answer(*await _ask_ingest(request, headers, body))


@router.get(
    "/{network}",
    summary="Webhook registration handshake",
    description='X: `?crc_token=…` → `{"response_token": "sha256=…"}`. LinkedIn: '
    '`?challengeCode=…` → `{"challengeCode", "challengeResponse"}`.',
)
async def webhook_handshake(request: Request, network: NetworkParam) -> Response:
    query = {k: v for k, v in request.query_params.items() if k in ("crc_token", "challengeCode")}
    headers = {
        "Pv-Network": network,
        "Pv-Op": "handshake",
        "Pv-Query": orjson.dumps(query).decode(),
    }
    return _answer(*await _ask_ingest(request, headers, b""))
