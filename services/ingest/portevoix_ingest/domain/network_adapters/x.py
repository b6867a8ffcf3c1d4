"""X (Twitter) Account Activity API payloads -> ingest contract v1 dicts.

Modelled subset (v1.1 object shapes, which the Account Activity API still delivers):
``{"for_user_id": "…", "tweet_create_events": [Tweet…], "favorite_events": [{…}], …}``.

- a tweet by the subscribed user -> ``post`` (original); a quote tweet -> ``post`` (relay, it has
  its own text to moderate) plus a ``share`` of the quoted tweet;
- a retweet -> ``share`` of the original tweet (no text of its own, so no post);
- a reply -> ``comment`` on the tweet replied to;
- ``favorite_events`` -> ``like``.
Deletes, follows, blocks, mutes and direct messages are recognised and ignored: the contract has
no place for them, and DMs are private.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._common import (
    ContractDict,
    WebhookPayloadError,
    compact,
    iso_from_epoch_ms,
    obj,
    opt_str,
    req_str,
)

__all__ = ["adapt_x"]

NETWORK = "x"
_HANDLED = ("tweet_create_events", "favorite_events")
_IGNORED = (
    "tweet_delete_events",
    "follow_events",
    "block_events",
    "mute_events",
    "user_event",
    "direct_message_events",
    "direct_message_indicate_typing_events",
    "direct_message_mark_read_events",
)


def _occurred(item: Mapping[str, Any], where: str) -> str:
    if item.get("timestamp_ms") is not None:
        return iso_from_epoch_ms(item["timestamp_ms"], f"{where}.timestamp_ms")
    created = req_str(item, "created_at", where)
    try:
        # v1.1 format: "Wed Oct 10 20:19:24 +0000 2018"
        at = datetime.strptime(created, "%a %b %d %H:%M:%S %z %Y")
    except ValueError as exc:
        raise WebhookPayloadError(f"{where}.created_at: unreadable date {created!r}") from exc
    return at.isoformat().replace("+00:00", "Z")


def _full_text(tweet: Mapping[str, Any]) -> str:
    """The untruncated text, without the leading reply @mentions, with t.co links expanded."""
    source: Mapping[str, Any] = tweet
    ext = tweet.get("extended_tweet")
    if isinstance(ext, Mapping) and isinstance(ext.get("full_text"), str):
        source = ext
    raw = source.get("full_text") or source.get("text") or ""
    if not isinstance(raw, str):
        raw = ""
    # v1.1 escapes &, < and > in text; entity indices count the unescaped characters.
    text = html.unescape(raw)
    rng = source.get("display_text_range")
    if isinstance(rng, list) and len(rng) == 2 and all(isinstance(i, int) for i in rng):
        # Drops the leading reply @mentions and the trailing media/quote link.
        text = text[rng[0] : rng[1]]
    entities = source.get("entities")
    if isinstance(entities, Mapping):
        # t.co hides the real destination: moderation and link stats need the expanded URL.
        for url in entities.get("urls") or []:
            if isinstance(url, Mapping) and url.get("url") and url.get("expanded_url"):
                text = text.replace(str(url["url"]), str(url["expanded_url"]))
        for media in entities.get("media") or []:
            if isinstance(media, Mapping) and media.get("url"):
                text = text.replace(str(media["url"]), "")
    return text.strip()


def _user(tweet: Mapping[str, Any], where: str) -> tuple[str, str, int | None]:
    user = obj(tweet.get("user"), f"{where}.user")
    followers = user.get("followers_count")
    return (
        req_str(user, "id_str", f"{where}.user"),
        req_str(user, "screen_name", f"{where}.user"),
        followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
    )


def _tweet(tweet: Mapping[str, Any], for_user: str | None, where: str) -> list[ContractDict]:
    tweet_id = req_str(tweet, "id_str", where)
    user_id, screen_name, followers = _user(tweet, where)
    at = _occurred(tweet, where)

    retweeted = tweet.get("retweeted_status")
    if isinstance(retweeted, Mapping):
        return [
            compact(
                type="share",
                event_id=f"x:retweet:{tweet_id}",
                network=NETWORK,
                post_id=req_str(retweeted, "id_str", f"{where}.retweeted_status"),
                actor=screen_name,
                occurred_at=at,
            )
        ]

    reply_to = opt_str(tweet, "in_reply_to_status_id_str")
    if reply_to:
        return [
            compact(
                type="comment",
                event_id=f"x:reply:{tweet_id}",
                network=NETWORK,
                post_id=reply_to,
                actor=screen_name,
                occurred_at=at,
                text=_full_text(tweet),
            )
        ]

    quoted = tweet.get("quoted_status")
    is_quote = bool(tweet.get("is_quote_status")) and isinstance(quoted, Mapping)
    if for_user is not None and user_id != for_user and not is_quote:
        # Someone else's tweet that merely mentions the subscribed user: not advocacy activity.
        return []
    post = compact(
        type="post",
        event_id=f"x:tweet:{tweet_id}",
        network=NETWORK,
        post_id=tweet_id,
        author=screen_name,
        text=_full_text(tweet),
        kind="relay" if is_quote else "original",
        occurred_at=at,
        url=f"https://x.com/{screen_name}/status/{tweet_id}",
        followers=followers,
    )
    if not is_quote:
        return [post]
    assert isinstance(quoted, Mapping)
    share = compact(
        type="share",
        event_id=f"x:quote:{tweet_id}",
        network=NETWORK,
        post_id=req_str(quoted, "id_str", f"{where}.quoted_status"),
        actor=screen_name,
        occurred_at=at,
    )
    if for_user is not None and user_id != for_user:
        # A stranger quoting the subscribed user's tweet: only the share concerns us.
        return [share]
    return [post, share]


def _favorite(fav: Mapping[str, Any], where: str) -> ContractDict:
    status = obj(fav.get("favorited_status"), f"{where}.favorited_status")
    user = obj(fav.get("user"), f"{where}.user")
    status_id = req_str(status, "id_str", f"{where}.favorited_status")
    user_id = req_str(user, "id_str", f"{where}.user")
    return compact(
        type="like",
        # From the ids, not the event's opaque hash: a re-sent webhook, or unlike + like, is
        # the same event.
        event_id=f"x:fav:{user_id}:{status_id}",
        network=NETWORK,
        post_id=status_id,
        actor=req_str(user, "screen_name", f"{where}.user"),
        occurred_at=_occurred(fav, where),
    )


def adapt_x(payload: Any) -> list[ContractDict]:
    data = obj(payload, "x payload")
    if not any(k in data for k in (*_HANDLED, *_IGNORED)):
        raise WebhookPayloadError(
            "x payload: no Account Activity event array "
            "(expected tweet_create_events or favorite_events)"
        )
    for_user = opt_str(data, "for_user_id")
    out: list[ContractDict] = []
    for key in _HANDLED:
        items = data.get(key, [])
        if not isinstance(items, list):
            raise WebhookPayloadError(f"x payload.{key}: expected a list")
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if key == "tweet_create_events":
                out.extend(_tweet(obj(item, where), for_user, where))
            else:
                out.append(_favorite(obj(item, where), where))
    return out
