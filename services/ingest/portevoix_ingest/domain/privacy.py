"""GDPR: erasure (art. 17) as a domain event, and the pseudonymous keys ingest keeps.

Erasure is requested on the raw stream (so it is ordered after every registration and activity
already queued) and, once ingest has removed the personal data it owns, announced as
`ambassador.erased` so every other service can remove or anonymise what it derived.
The announcement carries no handle and no name: only the opaque ambassador id that other
services already key their data by.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from portevoix.contracts.events import SCHEMA_VERSION, AmbassadorErased
from portevoix.contracts.ingest import ErasureRequested

__all__ = [
    "AmbassadorErased",
    "ErasureRequested",
    "handle_digest",
    "natural_key_digest",
    "to_ambassador_erased",
]

# The contracts live in the shared package; re-exported here for ingest's domain.
__all__ += ["ERASURE_SCHEMA_VERSION"]
ERASURE_SCHEMA_VERSION = SCHEMA_VERSION


def to_ambassador_erased(
    request: ErasureRequested,
    producer: str,
    at: datetime,
    *,
    team: str | None,
    networks: list[str],
    existed: bool,
) -> AmbassadorErased:
    return AmbassadorErased(
        event_id=f"erased:{request.request_id}",
        occurred_at=at,
        producer=producer,
        ambassador_id=request.ambassador_id,
        request_id=request.request_id,
        requested_by=request.requested_by,
        team=team,
        networks=sorted(networks),
        existed=existed,
    )


def handle_digest(network: str, handle: str) -> str:
    """A handle's tombstone id: recognises the erased handle without storing it."""
    return hashlib.sha256(f"{network}\x1f{handle}".encode()).hexdigest()[:32]


def natural_key_digest(key: str) -> str:
    """Natural keys of likes and shares contain the actor's handle: store a digest instead, so
    the dedupe map holds no readable personal data and expires on its own (TTL)."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
