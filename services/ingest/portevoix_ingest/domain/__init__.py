"""Pure domain core of the ingest service: no network, no Redis, no NATS.

- normalise: text canonical form, hashtags/mentions/links, language, contract -> domain events,
  natural keys and the late/future timestamp policy;
- webhooks: signature checks and per-network payload adapters (ADAPTERS);
- bulk: JSONL/CSV record parsing for the resumable import CLI.
"""

from .bulk import count_lines, iter_lines, iter_records
from .normalise import (
    classify_time,
    detect_language,
    extract_hashtags,
    extract_links,
    extract_mentions,
    natural_key,
    normalise_text,
    to_ambassador_registered,
    to_engagement_received,
    to_post_received,
)
from .webhooks import (
    ADAPTERS,
    WebhookAuthError,
    WebhookPayloadError,
    adapt,
    sign,
    verify_signature,
)

__all__ = [
    "ADAPTERS",
    "WebhookAuthError",
    "WebhookPayloadError",
    "adapt",
    "classify_time",
    "count_lines",
    "detect_language",
    "extract_hashtags",
    "extract_links",
    "extract_mentions",
    "iter_lines",
    "iter_records",
    "natural_key",
    "normalise_text",
    "sign",
    "to_ambassador_registered",
    "to_engagement_received",
    "to_post_received",
    "verify_signature",
]
