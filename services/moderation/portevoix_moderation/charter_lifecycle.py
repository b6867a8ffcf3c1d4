"""Charter versions on the bus: every moderation instance hot-reloads the activated charter.

`CharterPublished` events reach *every* instance (an ordered, ephemeral consumer per instance,
not the shared durable): a charter is validated (`load_charter`), stored (versions, meta, active
version in Redis — once, by the first instance to see the event) and, when `activate` is set,
swapped into the running engine without restart. A broken one is refused: dead-lettered with
the exact error, audited, and the running charter stays.

At start an instance takes the active version from Redis, then replays the charter events of
the stream in order (they are few) before consuming posts, then follows new ones live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from portevoix.contracts.deadletter import DeadLetter
from portevoix.contracts.events import EVENT_SUBJECTS, CharterPublished
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import EVENTS, dlq_subject
from portevoix_moderation.charter import Charter, CharterError, load_charter_text
from portevoix_moderation.metrics import CHARTER_EVENTS, CHARTER_INFO
from portevoix_moderation.store import ModerationStore

SUBJECT = EVENT_SUBJECTS["charter.published"]
log = logging.getLogger("portevoix.moderation.charters")


class CharterLifecycle:
    def __init__(
        self,
        store: ModerationStore,
        publisher: EventPublisher,
        activate: Callable[[Charter], None],
        *,
        boot: Charter,
    ) -> None:
        self._store = store
        self._pub = publisher
        self._activate = activate
        self.active: Charter = boot
        self._sub: Any = None

    async def start(self, js: JetStreamContext) -> Charter:
        """Active charter at start (Redis, then the stream's later events), then follow live."""
        stored = await self._store.active_charter()
        if stored is not None:
            try:
                self.active = load_charter_text(stored[1])
            except CharterError as exc:  # written by an older, laxer version: keep the boot one
                log.error("stored charter refused", extra={"pv": {"error": str(exc)}})
        last = 0
        seq = 1
        while True:
            try:
                raw = await js.get_msg(EVENTS.name, seq=seq, subject=SUBJECT, next=True)
            except NotFoundError:
                break
            assert raw.seq is not None and raw.data is not None
            last = raw.seq
            charter = await self.receive(raw.data, raw.seq, swap=False)
            if charter is not None:
                self.active = charter
            seq = raw.seq + 1
        self._activate(self.active)
        self._sub = await js.subscribe(
            SUBJECT,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last + 1
            ),
            cb=self._on_msg,
        )
        return self.active

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        try:
            await self.receive(msg.data, msg.metadata.sequence.stream, swap=True)
        except Exception as exc:  # never kill the subscription; Redis may be back next time
            log.error("charter event failed", extra={"pv": {"error": repr(exc)[:300]}})

    async def receive(self, data: bytes, stream_seq: int, *, swap: bool) -> Charter | None:
        """Handle one charter event; the charter if it is to be activated, None otherwise."""
        try:
            event = CharterPublished.model_validate(orjson.loads(data))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            await self._refuse(None, data, stream_seq, "invalid_event", f"not a charter: {exc}")
            return None
        try:
            charter = load_charter_text(event.charter_yaml)
            if charter.version != event.version:
                raise CharterError(
                    f"the event announces version {event.version!r} but the YAML says "
                    f"{charter.version!r}"
                )
        except CharterError as exc:
            await self._refuse(event, data, stream_seq, "invalid_charter", str(exc))
            return None
        if await self._store.first_to_handle(f"charter:{event.event_id}"):
            meta = {
                "version": charter.version,
                "name": charter.name,
                "rules": len(charter.rules),
                "published_by": event.published_by,
                "published_at": event.occurred_at.isoformat(),
                "event_id": event.event_id,
            }
            await self._store.save_charter(
                charter.version, event.charter_yaml, meta, activate=event.activate
            )
            await self._store.audit(
                {"at": _now(), "actor": event.published_by,
                 "action": "charter_activated" if event.activate else "charter_stored",
                 "charter_version": charter.version, "event_id": event.event_id}
            )  # fmt: skip
        CHARTER_EVENTS.labels("activated" if event.activate else "stored").inc()
        if not event.activate:
            return None
        if swap:
            self._activate(charter)
            self.active = charter
        return charter

    async def _refuse(
        self,
        event: CharterPublished | None,
        data: bytes,
        stream_seq: int,
        code: str,
        reason: str,
    ) -> None:
        CHARTER_EVENTS.labels("refused").inc()
        eid = event.event_id if event else f"seq-{stream_seq}"
        log.error("charter refused", extra={"pv": {"event_id": eid, "reason": reason[:500]}})
        if not await self._store.first_to_handle(f"charter:{eid}"):
            return  # another instance dead-lettered it already
        letter = DeadLetter(
            event_id=f"dlq:charter:{eid}",
            service="moderation",
            consumer="charter-reload",
            reason_code=code,
            reason=reason,
            detail={"version": event.version} if event else {},
            original_subject=SUBJECT,
            original_msg_id=event.event_id if event else None,
            original_stream_seq=stream_seq,
            attempts=1,
            failed_at=datetime.now(UTC),
            payload=data.decode("utf-8", "replace"),
        )
        await self._pub.publish(
            Outgoing(dlq_subject("moderation"), letter.event_id,
                     orjson.dumps(letter.model_dump(mode="json")),
                     {"Pv-Event-Type": "dead_letter", "Pv-Reason": code})
        )  # fmt: skip
        await self._store.audit(
            {"at": _now(), "actor": event.published_by if event else "?",
             "action": "charter_refused", "charter_version": event.version if event else None,
             "reason": reason, "event_id": eid}
        )  # fmt: skip


def show_active(charter: Charter) -> None:
    CHARTER_INFO.clear()
    CHARTER_INFO.labels(charter.version).set(1)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
