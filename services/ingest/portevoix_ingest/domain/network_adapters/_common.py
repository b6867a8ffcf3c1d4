"""Helpers shared by the network payload adapters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

__all__ = [
    "ContractDict",
    "WebhookPayloadError",
    "compact",
    "html_to_text",
    "iso_from_epoch_ms",
    "obj",
    "opt_str",
    "req_str",
]

# One ingest-contract v1 event, not yet validated (parse_ingest_event does that).
ContractDict = dict[str, Any]


class WebhookPayloadError(ValueError):
    """The webhook body is not a shape this adapter knows; `reason` says what was expected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WebhookPayloadError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    # Networks send numeric ids as numbers in some payloads and strings in others.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise WebhookPayloadError(f"{where}.{key}: missing or not a string")
    return value


def opt_str(data: Mapping[str, Any] | None, key: str) -> str | None:
    if data is None:
        return None
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def iso_from_epoch_ms(value: Any, where: str) -> str:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WebhookPayloadError(f"{where}: expected epoch milliseconds, got {value!r}")
    at = datetime.fromtimestamp(value / 1000, tz=UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact(**fields: Any) -> ContractDict:
    """A contract dict without the optional fields that are None (the contract forbids nulls
    only by omission: None would be accepted, but absent keeps producers' payloads minimal)."""
    return {k: v for k, v in fields.items() if v is not None}


def engagement(
    network: str,
    kind: str,
    event_id: str,
    post_id: str,
    actor: str,
    at: str,
    text: str | None = None,
) -> ContractDict:
    """An engagement in ingest contract v1, as every network adapter builds it."""
    return compact(
        type=kind,
        event_id=event_id,
        network=network,
        post_id=post_id,
        actor=actor,
        occurred_at=at,
        text=text,
    )


class _TextExtractor(HTMLParser):
    # Block elements end a line; <br> is a line break; everything else contributes its text.
    _BLOCKS = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_MANY_BREAKS = re.compile(r"[ \t]*\n[ \t]*(?:\n[ \t]*)+")


def html_to_text(html: str) -> str:
    """Mastodon-style HTML to plain text: paragraphs -> blank line, <br> -> newline, entities
    decoded. Hidden link parts (``<span class="invisible">https://www.</span>``) are kept, so the
    text holds full URLs, not the shortened display form."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    return _MANY_BREAKS.sub("\n\n", text).strip()
