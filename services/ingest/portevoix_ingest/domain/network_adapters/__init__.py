"""Per-network webhook payload adapters: network JSON -> list of ingest contract v1 dicts.

Adapters only reshape; `parse_ingest_event` validates each dict afterwards. Event ids derive
from the network's own ids, so a re-sent webhook yields the same event_id (a duplicate).
"""

from ._common import ContractDict, WebhookPayloadError, html_to_text
from .generic import adapt_generic
from .linkedin import adapt_linkedin, little_text_to_plain
from .mastodon import adapt_mastodon
from .x import adapt_x

__all__ = [
    "ContractDict",
    "WebhookPayloadError",
    "adapt_generic",
    "adapt_linkedin",
    "adapt_mastodon",
    "adapt_x",
    "html_to_text",
    "little_text_to_plain",
]
