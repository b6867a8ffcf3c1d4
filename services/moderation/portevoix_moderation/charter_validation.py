"""Charter validation for the API over NATS request/reply: the API never loads the engine.

Request: the charter YAML (UTF-8). Reply: {"ok": true, "version": …} or
{"ok": false, "error": "<loader's precise message>", "rule": <rule id or null>}.
"""

from __future__ import annotations

import contextlib

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from portevoix.runtime.streams import CHARTER_VALIDATE_RPC_SUBJECT
from portevoix_moderation.charter import CharterError, load_charter_text


def validate(data: bytes) -> dict[str, object]:
    try:
        charter = load_charter_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        return {"ok": False, "error": "the charter is not UTF-8", "rule": None}
    except CharterError as exc:
        return {"ok": False, "error": str(exc), "rule": exc.rule}
    return {"ok": True, "version": charter.version}


async def serve_validation(nc: NatsClient) -> Subscription:
    async def answer(msg: Msg) -> None:
        with contextlib.suppress(Exception):  # the requester may have given up
            await msg.respond(orjson.dumps(validate(msg.data)))

    # A queue group: one instance answers each request.
    return await nc.subscribe(CHARTER_VALIDATE_RPC_SUBJECT, queue="moderation", cb=answer)
