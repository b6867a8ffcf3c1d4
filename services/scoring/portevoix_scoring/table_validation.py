"""Points-table validation for the API over NATS request/reply: the API never loads the rules.

Request: the table YAML (UTF-8). Reply: {"ok": true, "version": …} or {"ok": false, "error": …}.
"""

from __future__ import annotations

import contextlib

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from portevoix.runtime.streams import POINTS_TABLE_VALIDATE_RPC_SUBJECT
from portevoix_scoring.domain.table import load_table


def validate(data: bytes) -> dict[str, object]:
    try:
        # Text, never a path: a request must not make the service read its own files.
        table = load_table(data.decode("utf-8") + "\n")
    except UnicodeDecodeError:
        return {"ok": False, "error": "the points table is not UTF-8"}
    except ValueError as exc:  # PointsTableError and pydantic's ValidationError
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "version": table.version}


async def serve_validation(nc: NatsClient) -> Subscription:
    async def answer(msg: Msg) -> None:
        with contextlib.suppress(Exception):  # the requester may have given up
            await msg.respond(orjson.dumps(validate(msg.data)))

    return await nc.subscribe(POINTS_TABLE_VALIDATE_RPC_SUBJECT, queue="scoring", cb=answer)
