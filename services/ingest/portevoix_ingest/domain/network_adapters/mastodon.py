"""Mastodon payloads -> ingest contract v1 dicts.

Modelled shapes:
- admin webhook ``{"event": "status.created", "created_at": …, "object": Status}``;
- a Notification ``{"id", "type", "created_at", "account", "status"}`` (or a list of them, as
  returned by ``GET /api/v1/notifications``) for ``favourite``, ``reblog``, ``mention``, ``quote``;
- a streaming message ``{"event": "notification"|"update", "payload": "<JSON string>"}``.

Only ``public`` and ``unlisted`` statuses are ingested: ``private`` (followers-only) and
``direct`` statuses are private correspondence, not advocacy.
Status ids are those of the instance sending the payload. An ambassador's posts and the
notifications about them both come from the ambassador's home instance, so the ids agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._common import (
    ContractDict,
    WebhookPayloadError,
    compact,
    engagement,
    html_to_text,
    obj,
    opt_str,
    req_str,
)

__all__ = ["adapt_mastodon", "mastodon_handle", "status_text"]

NETWORK = "mastodon"
_PUBLIC = frozenset({"public", "unlisted"})
# Admin webhook events with no ingest meaning (accounts, reports) or no contract support yet
# (edits: the contract has no revision field, see the ingest report).
_IGNORED_EVENTS = frozenset(
    {
        "status.updated",
        "account.created",
        "account.updated",
        "account.approved",
        "report.created",
        "report.updated",
    }
)


def mastodon_handle(account: Mapping[str, Any], where: str) -> str:
    """Full ``user@instance`` address: local accounts' ``acct`` lacks the domain."""
    acct = req_str(account, "acct", where)
    if "@" in acct:
        return acct
    host = urlsplit(opt_str(account, "url") or "").hostname
    return f"{acct}@{host}" if host else acct


def status_text(status: Mapping[str, Any]) -> str:
    # A content warning is part of what readers see first: moderate it with the body.
    body = html_to_text(opt_str(status, "content") or "")
    spoiler = opt_str(status, "spoiler_text")
    return f"{spoiler.strip()}\n\n{body}" if spoiler else body


def _is_public(status: Mapping[str, Any]) -> bool:
    return status.get("visibility", "public") in _PUBLIC


def _quoted_status(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # Mastodon 4.5 quote posts: {"quote": {"state": "accepted", "quoted_status": Status}}.
    quote = status.get("quote")
    if isinstance(quote, Mapping) and quote.get("state") == "accepted":
        quoted = quote.get("quoted_status")
        if isinstance(quoted, Mapping):
            return quoted
    return None


def _status(status: Mapping[str, Any], where: str) -> list[ContractDict]:
    if not _is_public(status):
        return []
    status_id = req_str(status, "id", where)
    account = obj(status.get("account"), f"{where}.account")
    actor = mastodon_handle(account, f"{where}.account")
    at = req_str(status, "created_at", where)

    reblog = status.get("reblog")
    if isinstance(reblog, Mapping):
        original = req_str(reblog, "id", f"{where}.reblog")
        return [_engagement("share", f"mastodon:reblog:{actor}:{original}", original, actor, at)]

    reply_to = opt_str(status, "in_reply_to_id")
    if reply_to:
        return [
            _engagement(
                "comment", f"mastodon:reply:{status_id}", reply_to, actor, at, status_text(status)
            )
        ]

    quoted = _quoted_status(status)
    followers = account.get("followers_count")
    post = compact(
        type="post",
        event_id=f"mastodon:status:{status_id}",
        network=NETWORK,
        post_id=status_id,
        author=actor,
        text=status_text(status),
        kind="relay" if quoted is not None else "original",
        occurred_at=at,
        url=opt_str(status, "url") or opt_str(status, "uri"),
        followers=followers if isinstance(followers, int) and followers >= 0 else None,
    )
    if quoted is None:
        return [post]
    quoted_id = req_str(quoted, "id", f"{where}.quote.quoted_status")
    return [post, _engagement("share", f"mastodon:quote:{status_id}", quoted_id, actor, at)]


def _engagement(
    kind: str, event_id: str, post_id: str, actor: str, at: str, text: str | None = None
) -> ContractDict:
    return engagement(NETWORK, kind, event_id, post_id, actor, at, text)


def _notification(n: Mapping[str, Any], where: str) -> list[ContractDict]:
    kind = req_str(n, "type", where)
    if kind not in ("favourite", "reblog", "mention", "quote"):
        # follow, poll, update, status, admin.*…: nothing to score or moderate. Unknown future
        # types are ignored too rather than failing the whole batch.
        return []
    status = obj(n.get("status"), f"{where}.status")
    if not _is_public(status):
        return []
    account = obj(n.get("account"), f"{where}.account")
    actor = mastodon_handle(account, f"{where}.account")
    at = req_str(n, "created_at", where)
    status_id = req_str(status, "id", f"{where}.status")
    if kind == "favourite":
        return [_engagement("like", f"mastodon:fav:{actor}:{status_id}", status_id, actor, at)]
    if kind == "reblog":
        # Same id as the status.created route for the reblog, so either delivery deduplicates.
        return [_engagement("share", f"mastodon:reblog:{actor}:{status_id}", status_id, actor, at)]
    if kind == "quote":
        quoted = _quoted_status(status)
        if quoted is None:
            return []
        quoted_id = req_str(quoted, "id", f"{where}.status.quote.quoted_status")
        return [_engagement("share", f"mastodon:quote:{status_id}", quoted_id, actor, at)]
    # mention: only a reply is an engagement on a post; a bare mention is someone else's post.
    reply_to = opt_str(status, "in_reply_to_id")
    if not reply_to:
        return []
    return [
        _engagement(
            "comment",
            f"mastodon:reply:{status_id}",
            reply_to,
            actor,
            opt_str(status, "created_at") or at,
            status_text(status),
        )
    ]


def adapt_mastodon(payload: Any) -> list[ContractDict]:
    if isinstance(payload, list):
        out: list[ContractDict] = []
        for i, item in enumerate(payload):
            out.extend(_notification(obj(item, f"[{i}]"), f"[{i}]"))
        return out
    data = obj(payload, "mastodon payload")
    event = data.get("event")
    if isinstance(event, str) and "payload" in data:
        # Streaming API: the payload is itself a JSON document, as a string.
        inner = data["payload"]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError as exc:
                raise WebhookPayloadError("mastodon stream payload: not JSON") from exc
        if event == "notification":
            return _notification(obj(inner, "payload"), "payload")
        if event == "update":
            return _status(obj(inner, "payload"), "payload")
        return []  # delete, status.update, filters_changed…: nothing to ingest
    if isinstance(event, str):
        if event == "status.created":
            return _status(obj(data.get("object"), "object"), "object")
        if event in _IGNORED_EVENTS:
            return []
        raise WebhookPayloadError(f"mastodon webhook: unknown event {event!r}")
    if "type" in data and "account" in data:
        return _notification(data, "notification")
    raise WebhookPayloadError(
        "mastodon payload: expected a webhook {event, object}, a notification {type, account, "
        "status} or a streaming message {event, payload}"
    )
