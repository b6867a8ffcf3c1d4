"""Sealed personal fields: crypto-shredding of the domain event log.

`PV_EVENTS` is kept a year and projections are rebuilt from it, so personal data cannot be
deleted from it message by message without losing the aggregates it feeds. Instead, ingest seals
every personal field of the events it publishes with a data key of the person they belong to
(AES-256-GCM, the owner's id as associated data). An erasure deletes that one key: every copy of
those fields — in the log, in a backup of it, in a read model that kept the sealed value — is
unreadable from then on, while the rest of the event (ids, network, kind, campaign, hashtags,
timestamps) still counts in the anonymous aggregates.

A sealed value is a string: `pv:sealed:1:<owner>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The
owner is the ambassador whose key sealed it, so any reader knows which key opens it. A field that
does not start with the prefix is plaintext (internal producers and older events): readers accept
both.

Sealed fields per event type (everything else stays readable):
- `ambassador.registered`: `display_name`, every value of `handles`            — owner `ambassador_id`
- `post.received`: `author`, `text`, `url`, `links[]`, every `mentions[]` item  — owner `ambassador_id`
- `engagement.received` by a fellow ambassador: `actor`, `text`                 — owner
  `actor_ambassador_id` (a stranger's handle is not an ambassador's data to shred; it leaves the
  log with the stream's retention)
"""

from __future__ import annotations

from typing import Final

SEALED_PREFIX: Final = "pv:sealed:1:"

# event type -> (owner field, scalar fields, list fields, dict-valued fields)
SealSpec = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
PERSONAL_FIELDS: Final[dict[str, SealSpec]] = {
    "ambassador.registered": ("ambassador_id", ("display_name",), (), ("handles",)),
    "post.received": ("ambassador_id", ("author", "text", "url"), ("mentions", "links"), ()),
    "engagement.received": ("actor_ambassador_id", ("actor", "text"), (), ()),
}


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def owner_of(sealed: str) -> str:
    """The owner id written in a sealed value (base64url has no ':', so the last one ends it)."""
    rest = sealed[len(SEALED_PREFIX) :]
    owner, sep, _ = rest.rpartition(":")
    if not sep or not owner:
        raise ValueError("not a sealed value")
    return owner
