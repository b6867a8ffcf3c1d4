"""Signed incoming webhooks: signature checks and the registry of payload adapters.

Porte-Voix's own scheme (for bridges and partners posting to ``/v1/webhooks/{network}``):
headers ``X-PV-Timestamp: <unix seconds>`` and ``X-PV-Signature: sha256=<hex>``, where the hex is
HMAC-SHA256(secret, timestamp + "." + body). Binding the timestamp into the MAC and refusing
timestamps outside a window stops replays of captured requests; event-id deduplication catches
replays inside the window. Several ``sha256=`` values (comma separated) and several secrets are
accepted so either side can rotate its secret without downtime.

The networks' native schemes (LinkedIn X-LI-Signature, X CRC and x-twitter-webhooks-signature)
have helpers too; they carry no timestamp, so only event-id deduplication protects from replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from .network_adapters import (
    ContractDict,
    WebhookPayloadError,
    adapt_generic,
    adapt_linkedin,
    adapt_mastodon,
    adapt_x,
)

__all__ = [
    "ADAPTERS",
    "REASONS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookAuthError",
    "WebhookPayloadError",
    "adapt",
    "linkedin_challenge_response",
    "sign",
    "verify_linkedin_signature",
    "verify_signature",
    "verify_x_signature",
    "x_crc_response",
]

SIGNATURE_HEADER: Final = "X-PV-Signature"
TIMESTAMP_HEADER: Final = "X-PV-Timestamp"
REASONS: Final = (
    "missing_timestamp",
    "missing_signature",
    "malformed_timestamp",
    "malformed_signature",
    "stale_timestamp",
    "future_timestamp",
    "bad_signature",
)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
# Bounds the HMAC work an unauthenticated request can cause.
_MAX_SIGNATURES = 5


class WebhookAuthError(Exception):
    """The request is not authentic or not fresh. `reason` is one of REASONS (stable, for
    metrics and the 401 body); `detail` is for logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _secrets(secret: bytes | Sequence[bytes]) -> list[bytes]:
    keys = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not keys or any(not k for k in keys):
        # An empty key would make every signature computable by anyone: a configuration bug.
        raise ValueError("webhook secret must be non-empty")
    return [bytes(k) for k in keys]


def _mac(secret: bytes, timestamp: str, body: bytes) -> bytes:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).digest()


def sign(body: bytes, timestamp: str | int, secret: bytes) -> str:
    """The X-PV-Signature value for `body` sent at `timestamp` (unix seconds)."""
    return "sha256=" + _mac(_secrets(secret)[0], str(timestamp), body).hex()


def verify_signature(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: bytes | Sequence[bytes],
    now: float,
    window_s: int = 300,
) -> None:
    """Return if `signature` authenticates `body` at a fresh `timestamp`; raise WebhookAuthError.

    The MAC is checked before freshness, so "stale_timestamp" always means an authentic but old
    request (a replay or a stuck queue), never a forgery.
    """
    keys = _secrets(secret)
    if timestamp is None or not timestamp.strip():
        raise WebhookAuthError("missing_timestamp", f"{TIMESTAMP_HEADER} header is required")
    if signature is None or not signature.strip():
        raise WebhookAuthError("missing_signature", f"{SIGNATURE_HEADER} header is required")
    timestamp = timestamp.strip()
    if not _TIMESTAMP.match(timestamp):
        raise WebhookAuthError("malformed_timestamp", "expected unix time in whole seconds")
    candidates = [s.strip() for s in signature.split(",") if s.strip()]
    if len(candidates) > _MAX_SIGNATURES:
        raise WebhookAuthError("malformed_signature", f"more than {_MAX_SIGNATURES} signatures")
    digests: list[bytes] = []
    for candidate in candidates:
        m = _SIGNATURE.match(candidate)
        if m is None:
            raise WebhookAuthError("malformed_signature", "expected sha256=<64 hex digits>")
        digests.append(bytes.fromhex(m.group(1)))
    if not digests:
        raise WebhookAuthError("malformed_signature", "expected sha256=<64 hex digits>")
    # Compare against every key and digest without early exit, in constant time per pair.
    matched = False
    for key in keys:
        expected = _mac(key, timestamp, body)
        for digest in digests:
            matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise WebhookAuthError("bad_signature", "HMAC-SHA256 does not match")
    age = now - int(timestamp)
    if age > window_s:
        raise WebhookAuthError("stale_timestamp", f"signed {int(age)} s ago, window {window_s} s")
    if age < -window_s:
        raise WebhookAuthError(
            "future_timestamp", f"signed {int(-age)} s in the future, window {window_s} s"
        )


# ---- network-native schemes ----------------------------------------------------------------


def verify_linkedin_signature(body: bytes, signature: str | None, client_secret: bytes) -> None:
    """LinkedIn push: X-LI-Signature = hex(HMAC-SHA256(clientSecret, "hmacsha256=" + body))."""
    if signature is None or not signature.strip():
        raise WebhookAuthError("missing_signature", "X-LI-Signature header is required")
    sig = signature.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sig):
        raise WebhookAuthError("malformed_signature", "expected 64 hex digits")
    expected = hmac.new(_secrets(client_secret)[0], b"hmacsha256=" + body, hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), bytes.fromhex(sig)):
        raise WebhookAuthError("bad_signature", "X-LI-Signature does not match")


def linkedin_challenge_response(challenge_code: str, client_secret: bytes) -> dict[str, str]:
    """Body answering LinkedIn's GET ?challengeCode=… webhook validation."""
    mac = hmac.new(_secrets(client_secret)[0], challenge_code.encode(), hashlib.sha256)
    return {"challengeCode": challenge_code, "challengeResponse": mac.hexdigest()}


def x_crc_response(crc_token: str, consumer_secret: bytes) -> dict[str, str]:
    """Body answering X's GET ?crc_token=… challenge (Account Activity API)."""
    mac = hmac.new(_secrets(consumer_secret)[0], crc_token.encode(), hashlib.sha256).digest()
    return {"response_token": "sha256=" + base64.b64encode(mac).decode("ascii")}


def verify_x_signature(body: bytes, signature: str | None, consumer_secret: bytes) -> None:
    """X push: x-twitter-webhooks-signature = "sha256=" + base64(HMAC-SHA256(secret, body))."""
    if signature is None or not signature.strip():
        raise WebhookAuthError("missing_signature", "x-twitter-webhooks-signature is required")
    sig = signature.strip()
    if not sig.startswith("sha256="):
        raise WebhookAuthError("malformed_signature", "expected sha256=<base64>")
    try:
        given = base64.b64decode(sig[len("sha256=") :], validate=True)
    except ValueError as exc:
        raise WebhookAuthError("malformed_signature", "signature is not base64") from exc
    expected = hmac.new(_secrets(consumer_secret)[0], body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, given):
        raise WebhookAuthError("bad_signature", "x-twitter-webhooks-signature does not match")


# ---- payload adapters ----------------------------------------------------------------------

Adapter = Callable[[Any], list[ContractDict]]

ADAPTERS: dict[str, Adapter] = {
    "linkedin": adapt_linkedin,
    "x": adapt_x,
    "mastodon": adapt_mastodon,
    "generic": adapt_generic,
}


def adapt(network: str, payload: Any) -> list[ContractDict]:
    """Contract dicts for a decoded webhook body from `network` (a key of ADAPTERS)."""
    adapter = ADAPTERS.get(network)
    if adapter is None:
        raise WebhookPayloadError(
            f"unknown webhook source {network!r}; expected one of {', '.join(sorted(ADAPTERS))}"
        )
    return adapter(payload)
