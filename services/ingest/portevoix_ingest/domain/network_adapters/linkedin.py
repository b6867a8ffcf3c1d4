"""LinkedIn payloads -> ingest contract v1 dicts.

Modelled, documented subset:
- Organization Social Action Notifications webhook (Community Management API):
  ``{"type": "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS", "notifications": [{"notificationId",
  "action", "organizationalEntity", "sourcePost", "decoratedSourcePost": {"entity", "owner",
  "text"}, "generatedActivity", "decoratedGeneratedActivity": {"comment"|"share": {"entity",
  "owner", "text"}}, "lastModifiedAt", "actor"?}]}``. Actions: LIKE, COMMENT, ADMIN_COMMENT,
  SHARE (a member reposted the page's post: the advocacy act itself), SHARE_MENTION (a member's
  post mentions the page); COMMENT_EDIT/COMMENT_DELETE are ignored (no contract support).
- Objects a polling bridge may forward, alone or as a Rest.li collection ``{"elements": [...]}``:
  Posts API posts (``commentary``, ``reshareContext``), legacy UGC posts (``specificContent``),
  Reactions API reactions (``reactionType``) and Comments API comments (``message``).

Handles on LinkedIn are member URNs (``urn:li:person:…``): notifications never carry vanity
names, so an ambassador's ``linkedin`` handle must be registered as their member URN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._common import (
    ContractDict,
    WebhookPayloadError,
    compact,
    engagement,
    iso_from_epoch_ms,
    obj,
    opt_str,
    req_str,
)

__all__ = ["adapt_linkedin", "little_text_to_plain"]

NETWORK = "linkedin"
NOTIFICATIONS = "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS"
_PUBLIC_VISIBILITY = frozenset({"PUBLIC", "LOGGED_IN"})

# Posts API "little text": {hashtag|\#|tag}, @[Name](urn:li:person:…), and reserved characters
# escaped with a backslash.
_LT_HASHTAG = re.compile(r"\{hashtag\|\\?[#＃]\|([^}]*)\}")
_LT_MENTION = re.compile(r"@\[((?:\\.|[^\]\\])*)\]\((urn:li:[^)]+)\)")
_LT_ESCAPE = re.compile(r"\\([\\|{}@\[\]()<>#*_~])")


def little_text_to_plain(text: str) -> str:
    """Render LinkedIn little-text commentary as members see it ("#tag", "Name")."""
    text = _LT_HASHTAG.sub(lambda m: "#" + m.group(1), text)
    text = _LT_MENTION.sub(lambda m: m.group(1), text)
    return _LT_ESCAPE.sub(r"\1", text)


def _epoch(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> str:
    for key in keys:
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            return iso_from_epoch_ms(value, f"{where}.{key}")
    raise WebhookPayloadError(f"{where}: no timestamp (expected one of {', '.join(keys)})")


def _engagement(
    kind: str, event_id: str, post_id: str, actor: str, at: str, text: str | None = None
) -> ContractDict:
    return engagement(NETWORK, kind, event_id, post_id, actor, at, text)


def _post(
    post_id: str, author: str, text: str, kind: str, at: str, url: str | None = None
) -> ContractDict:
    return compact(
        type="post",
        event_id=f"linkedin:post:{post_id}",
        network=NETWORK,
        post_id=post_id,
        author=author,
        text=text,
        kind=kind,
        occurred_at=at,
        url=url or f"https://www.linkedin.com/feed/update/{post_id}/",
    )


# ---- webhook notifications -----------------------------------------------------------------


def _notification(n: Mapping[str, Any], where: str) -> list[ContractDict]:
    action = req_str(n, "action", where)
    at = _epoch(n, ("lastModifiedAt",), where)
    source = n.get("decoratedSourcePost")
    # decoratedSourcePost.entity is the share/ugcPost URN posts are ingested under; sourcePost
    # may be the activity URN of the same post.
    post_id = opt_str(source, "entity") if isinstance(source, Mapping) else None
    post_id = post_id or req_str(n, "sourcePost", where)
    generated = n.get("decoratedGeneratedActivity")
    generated = generated if isinstance(generated, Mapping) else {}
    comment = generated.get("comment") if isinstance(generated.get("comment"), Mapping) else None
    share = generated.get("share") if isinstance(generated.get("share"), Mapping) else None

    if action == "LIKE":
        actor = opt_str(n, "actor")
        if not actor:
            # Without a member URN the like cannot be attributed to anyone: skip it rather than
            # reject the batch (LinkedIn batches 10 notifications).
            return []
        return [_engagement("like", f"linkedin:like:{actor}:{post_id}", post_id, actor, at)]

    if action in ("COMMENT", "ADMIN_COMMENT"):
        if comment is None:
            raise WebhookPayloadError(
                f"{where}: {action} without decoratedGeneratedActivity.comment"
            )
        comment_id = opt_str(comment, "entity") or req_str(n, "generatedActivity", where)
        actor = opt_str(comment, "owner") or req_str(n, "actor", where)
        text = opt_str(comment, "text")
        message = comment.get("message")
        if text is None and isinstance(message, Mapping):
            text = opt_str(message, "text")
        return [
            _engagement("comment", f"linkedin:comment:{comment_id}", post_id, actor, at, text or "")
        ]

    if action in ("SHARE", "SHARE_MENTION"):
        if share is None:
            raise WebhookPayloadError(f"{where}: {action} without decoratedGeneratedActivity.share")
        share_id = opt_str(share, "entity") or req_str(n, "generatedActivity", where)
        owner = opt_str(share, "owner") or req_str(n, "actor", where)
        text = little_text_to_plain(opt_str(share, "text") or "")
        if action == "SHARE_MENTION":
            # A member's own post naming the page: original advocacy content.
            return [_post(share_id, owner, text, "original", at)]
        out = [_engagement("share", f"linkedin:share:{share_id}", post_id, owner, at)]
        if text.strip():
            # A repost with the member's own words is a relay to moderate (disclosure rule).
            out.append(_post(share_id, owner, text, "relay", at))
        return out

    # COMMENT_EDIT / COMMENT_DELETE and future actions: nothing the contract can carry.
    return []


# ---- objects from the REST APIs -----------------------------------------------------------


def _visible(visibility: Any) -> bool:
    if isinstance(visibility, Mapping):  # UGC: {"com.linkedin.ugc.MemberNetworkVisibility": …}
        visibility = next(iter(visibility.values()), None)
    return visibility is None or visibility in _PUBLIC_VISIBILITY


def _rest_post(p: Mapping[str, Any], where: str) -> list[ContractDict]:
    if p.get("lifecycleState", "PUBLISHED") != "PUBLISHED" or not _visible(p.get("visibility")):
        # Drafts and connections-only posts are not public advocacy.
        return []
    post_id = req_str(p, "id", where)
    author = req_str(p, "author", where)
    if "specificContent" in p:  # legacy UGC post
        content = obj(p["specificContent"], f"{where}.specificContent")
        share = obj(content.get("com.linkedin.ugc.ShareContent"), f"{where}.ShareContent")
        commentary = share.get("shareCommentary")
        text = opt_str(commentary, "text") if isinstance(commentary, Mapping) else None
        relay = isinstance(p.get("responseContext"), Mapping)
        at = _epoch(p, ("firstPublishedAt", "created.time"), where)
        return [_post(post_id, author, text or "", "relay" if relay else "original", at)]
    text = little_text_to_plain(opt_str(p, "commentary") or "")
    relay = isinstance(p.get("reshareContext"), Mapping)
    at = _epoch(p, ("publishedAt", "createdAt"), where)
    return [_post(post_id, author, text, "relay" if relay else "original", at)]


def _reaction(r: Mapping[str, Any], where: str) -> ContractDict:
    # Every reaction type (LIKE, PRAISE, EMPATHY, INTEREST, APPRECIATION, ENTERTAINMENT) is a like
    # for scoring: the contract has one kind of approval.
    post_id = req_str(r, "root", where)
    created = obj(r.get("created"), f"{where}.created")
    actor = req_str(created, "actor", f"{where}.created")
    at = _epoch(r, ("created.time",), where)
    return _engagement("like", f"linkedin:like:{actor}:{post_id}", post_id, actor, at)


def _comment(c: Mapping[str, Any], where: str) -> ContractDict:
    post_id = req_str(c, "object", where)
    actor = req_str(c, "actor", where)
    comment_id = opt_str(c, "commentUrn") or opt_str(c, "$URN") or req_str(c, "id", where)
    message = obj(c.get("message"), f"{where}.message")
    at = _epoch(c, ("created.time",), where)
    text = opt_str(message, "text") or ""
    return _engagement("comment", f"linkedin:comment:{comment_id}", post_id, actor, at, text)


def _element(e: Mapping[str, Any], where: str) -> list[ContractDict]:
    if "reactionType" in e:
        return [_reaction(e, where)]
    if "message" in e and "object" in e:
        return [_comment(e, where)]
    if "commentary" in e or "specificContent" in e:
        return _rest_post(e, where)
    raise WebhookPayloadError(
        f"{where}: not a LinkedIn post, reaction or comment "
        "(expected commentary/specificContent, reactionType or message+object)"
    )


def adapt_linkedin(payload: Any) -> list[ContractDict]:
    data = obj(payload, "linkedin payload")
    if data.get("type") == NOTIFICATIONS:
        items = data.get("notifications")
        if not isinstance(items, list):
            raise WebhookPayloadError("linkedin payload.notifications: expected a list")
        out: list[ContractDict] = []
        for i, n in enumerate(items):
            out.extend(_notification(obj(n, f"notifications[{i}]"), f"notifications[{i}]"))
        return out
    if isinstance(data.get("elements"), list):
        out = []
        for i, e in enumerate(data["elements"]):
            out.extend(_element(obj(e, f"elements[{i}]"), f"elements[{i}]"))
        return out
    if "type" in data:
        raise WebhookPayloadError(f"linkedin payload: unknown type {data.get('type')!r}")
    return _element(data, "linkedin payload")
