"""Personal and financial data, validated by checksum and judged in context.

Numbers count only when their checksum validates (IBAN mod-97, Luhn with a plausible card
prefix and length, NIR key). SIREN/SIRET are public business identifiers and are never
reported; the organisation's own mailboxes, hotlines and role addresses are public too.
Matched text is redacted before it leaves the detector.
"""

from __future__ import annotations

import re
from typing import Literal

import phonenumbers
from stdnum import iban, luhn
from stdnum.fr import nir, siren, siret

from ..context import Hit, PostContext
from .base import CompileContext, DetectorFn, Params, detector

Kind = Literal["iban", "card", "nir", "phone", "email"]

DEFAULT_ROLE_MAILBOXES = [
    "contact",
    "recrutement",
    "recruiting",
    "recruitment",
    "jobs",
    "careers",
    "carrieres",
    "rh",
    "hr",
    "presse",
    "press",
    "media",
    "info",
    "hello",
    "bonjour",
    "support",
    "serviceclient",
    "service-client",
    "talents",
    "candidature",
    "candidatures",
]

_DIGIT = re.compile(r"\d")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d\w])(?:\d[ \-]?){12,18}\d(?![\d])")
_NIR = re.compile(
    r"(?<![\d\w])[12][ .]?\d{2}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{2}|2[AB])"
    r"[ .]?\d{3}[ .]?\d{3}[ .]?\d{2}(?!\d)"
)
# A phone number is not a slice of a longer digit sequence (lot numbers, references).
_PHONE = re.compile(
    r"(?<!\d[ .\-])(?:(?<![\w+])(?:\+|00)[1-9][\d .\-()]{6,18}\d"
    r"|(?<![\w])0[1-9](?:[ .\-]?\d{2}){4})(?![ .\-]?\d)"
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_NOT_DIGIT = re.compile(r"\D")


def redact(text: str, keep_start: int = 0, keep_end: int = 4) -> str:
    """Mask letters and digits except the first/last few, keeping the layout."""
    idx = [i for i, c in enumerate(text) if c.isalnum()]
    hidden = set(idx[keep_start : len(idx) - keep_end] if keep_end else idx[keep_start:])
    return "".join("*" if i in hidden else c for i, c in enumerate(text))


def redact_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _card_prefix_ok(d: str) -> bool:
    n = len(d)
    two, three, four = int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= three <= 305:
        return 14 <= n <= 19
    if four == 6011 or two == 65 or 644 <= three <= 649 or two == 62:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    return two in (50, 56, 57, 58, 67) and 12 <= n <= 19  # Maestro


class PersonalDataParams(Params):
    kinds: list[Kind]
    role_mailboxes: list[str] = DEFAULT_ROLE_MAILBOXES


@detector("personal_data", "personal_data", PersonalDataParams)
def personal_data_detector(params: PersonalDataParams, cctx: CompileContext) -> DetectorFn:
    """IBAN, payment cards, NIR, phone numbers and e-mail addresses of persons."""
    org = cctx.charter.organisation
    kinds = set(params.kinds)
    sirens = {_NOT_DIGIT.sub("", s) for s in org.siren}
    hotlines: set[str] = set()
    for h in org.hotlines:
        try:
            hotlines.add(
                phonenumbers.format_number(
                    phonenumbers.parse(h, "FR"), phonenumbers.PhoneNumberFormat.E164
                )
            )
        except phonenumbers.NumberParseException:
            raise ValueError(f"organisation.hotlines: {h!r} is not a phone number") from None
    mailboxes = {m.strip().lower() for m in org.public_mailboxes}
    domains = [d.strip().lower().lstrip("@") for d in org.domains]
    roles = {r.lower() for r in params.role_mailboxes}

    def public_number(digits: str) -> bool:
        if any(digits.startswith(s) for s in sirens if s):
            return True
        return (len(digits) == 14 and siret.is_valid(digits)) or (
            len(digits) == 9 and siren.is_valid(digits)
        )

    def public_email(address: str) -> bool:
        address = address.lower()
        if address in mailboxes:
            return True
        local, _, domain = address.partition("@")
        own = any(domain == d or domain.endswith("." + d) for d in domains)
        return own and local.split("+")[0] in roles

    def check(ctx: PostContext) -> list[Hit] | None:
        text = ctx.text
        hits: list[Hit] = []
        taken: list[tuple[int, int]] = []
        n_digits: int | None = ctx.cache.get(_DIGIT)
        if n_digits is None:
            n_digits = ctx.cache[_DIGIT] = len(_DIGIT.findall(text))
        # Phones have at least 8 digits, IBANs, cards and NIRs at least 12.
        has_digit = n_digits >= 12
        if has_digit and "iban" in kinds and _IBAN_HINT.search(text):
            for m in _IBAN.finditer(text):
                cand = m.group()
                while len(cand.replace(" ", "")) >= 15:
                    if iban.is_valid(cand):
                        s = m.start()
                        hits.append(Hit(s, s + len(cand), redact(cand, 4, 4), {"kind": "iban"}))
                        taken.append((s, s + len(cand)))
                        break
                    cand = cand[: cand.rfind(" ")] if " " in cand else cand[:-1]
        if has_digit and "nir" in kinds:
            for m in _NIR.finditer(text):
                compact = m.group().replace(" ", "").replace(".", "")
                if nir.is_valid(compact):
                    hits.append(Hit(m.start(), m.end(), redact(m.group(), 0, 2), {"kind": "nir"}))
                    taken.append(m.span())
        if has_digit and "card" in kinds:
            for m in _CARD.finditer(text):
                number = _NOT_DIGIT.sub("", m.group())
                if _overlaps(m.span(), taken) or public_number(number):
                    continue
                if 13 <= len(number) <= 19 and _card_prefix_ok(number) and luhn.is_valid(number):
                    hits.append(Hit(m.start(), m.end(), redact(m.group()), {"kind": "card"}))
                    taken.append(m.span())
        if n_digits >= 8 and "phone" in kinds:
            hits += _phones(text, taken, hotlines)
        if "email" in kinds and "@" in text:
            for m in _EMAIL.finditer(text):
                if not public_email(m.group()):
                    hits.append(Hit(m.start(), m.end(), redact_email(m.group()), {"kind": "email"}))
        return hits or None

    return check


def _phones(text: str, taken: list[tuple[int, int]], hotlines: set[str]) -> list[Hit]:
    hits = []
    for m in _PHONE.finditer(text):
        if _overlaps(m.span(), taken):
            continue
        try:
            num = phonenumbers.parse(m.group(), "FR")
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(num):
            continue
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        if e164 in hotlines:
            continue
        hits.append(Hit(m.start(), m.end(), redact(m.group(), 3, 2), {"kind": "phone"}))
    return hits


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)
