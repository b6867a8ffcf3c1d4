"""Text normalisation, entity extraction, language detection and ingest -> domain event mapping.

Pure functions only: no I/O besides loading py3langid's bundled model once, lazily.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from array import array
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from portevoix.contracts.events import (
    SCHEMA_VERSION,
    AmbassadorRegistered,
    EngagementReceived,
    PostReceived,
    post_key,
)
from portevoix.contracts.ingest import (
    AmbassadorIn,
    EngagementIn,
    PostIn,
    Rejection,
    normalise_handle,
)

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

__all__ = [
    "DEFAULT_LANGS",
    "MAX_AGE",
    "MAX_FUTURE_SKEW",
    "classify_time",
    "detect_language",
    "engagement_received_payload",
    "extract_hashtags",
    "extract_links",
    "extract_mentions",
    "natural_key",
    "normalise_lang_tag",
    "normalise_text",
    "to_ambassador_registered",
    "to_engagement_received",
    "to_post_received",
]

DEFAULT_LANGS: tuple[str, ...] = ("fr", "en")
MAX_FUTURE_SKEW = timedelta(minutes=5)
MAX_AGE = timedelta(days=400)

# --------------------------------------------------------------------------------------------
# normalise_text
# --------------------------------------------------------------------------------------------

# Every line-break convention becomes "\n" so offsets and "one line" rules agree across clients.
_LINE_BREAKS = re.compile(r"\r\n|[\r\u2028\u2029\x85\x0b\x0c]")
# Invisible characters that only serve to split words ("con\u200bnard") or reorder text
# (Trojan-source bidi overrides): posts are French or English, where none of them is needed.
_ALWAYS_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\u3164\ufeff\uffa0]"
)
# ZWJ/ZWNJ are legitimate inside emoji sequences (👩‍💻): keep them only between two emoji.
_EMOJI_CHAR = "[\u00a9\u00ae\u203c-\u3299\U0001f000-\U0001faff\ufe0f]"
_ZW_JOINERS = re.compile(f"(?<!{_EMOJI_CHAR})[\u200c\u200d]|[\u200c\u200d](?!{_EMOJI_CHAR})")
# Unicode tag characters smuggle hidden ASCII; keep them only in subdivision flags (🏴 + tags).
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
_TRAILING_SPACES = re.compile(r"[ \t\u00a0\u3000]+$", re.MULTILINE)


def _drop_tag_chars(text: str) -> str:
    if not _TAG_CHARS.search(text):
        return text
    out: list[str] = []
    pos = 0
    for m in _TAG_FLAG.finditer(text):
        out.append(_TAG_CHARS.sub("", text[pos : m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(_TAG_CHARS.sub("", text[pos:]))
    return "".join(out)


# Categories Cc and Cs (controls, lone surrogates) except "\n" and "\t": a regex, not a per-char
# unicodedata loop, because this runs on every post on the hot path.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Anything any normalisation step would touch; ordinary text skips straight to NFC and trimming.
_NEEDS_WORK = re.compile(
    f"{_LINE_BREAKS.pattern}|{_CONTROLS.pattern}|{_ALWAYS_INVISIBLE.pattern}|[\u200c\u200d]"
    "|[\U000e0000-\U000e007f]"
)


def _drop_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


def normalise_text(text: str) -> str:
    """Canonical user text: NFC, "\\n" line ends, no controls or obfuscating invisibles, trimmed.

    Idempotent: normalise_text(normalise_text(t)) == normalise_text(t).
    """
    if _NEEDS_WORK.search(text) is None:
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        return _TRAILING_SPACES.sub("", text).strip()
    text = _LINE_BREAKS.sub("\n", text)
    text = _drop_controls(text)
    text = _ALWAYS_INVISIBLE.sub("", text)
    text = _drop_tag_chars(text)
    # Repeat joiner removal: dropping one joiner can leave another with a non-emoji neighbour.
    while True:
        stripped = _ZW_JOINERS.sub("", text)
        if stripped == text:
            break
        text = stripped
    # NFC last: removing invisibles can bring a base letter next to its combining accent.
    text = unicodedata.normalize("NFC", text)
    text = _TRAILING_SPACES.sub("", text)
    return text.strip()


# --------------------------------------------------------------------------------------------
# entities: links, hashtags, mentions
# --------------------------------------------------------------------------------------------

# Bare domains are only recognised with a TLD from this list: "e.g.", "fin.Ensuite" (a missing
# space), "rapport.pdf" or "Node.js" must not become links. "example" (RFC 2606) is what
# documentation, seeds and tests use.
_BARE_TLDS = (
    "com|org|net|fr|eu|io|co|ai|app|dev|be|ch|ca|lu|mc|uk|de|es|it|nl|pt|us|info|biz|tech|"
    "gouv\\.fr|paris|bzh|ly|gl|me|tv|cloud|online|site|blog|news|jobs|careers|example"
)
_URL = re.compile(r"(?i)\bhttps?://[^\s<>\"'`{}|\\^]+")
_BARE = re.compile(
    r"(?i)(?<![\w@./:#-])(?:www\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    rf"(?:{_BARE_TLDS})(?![\w-])(?::\d{{2,5}})?(?:/[^\s<>\"'`{{}}|\\^]*)?"
)
_TRAILING_PUNCT = ".,;:!?…'\"»«“”‘’*"
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _trim_link(url: str) -> str:
    # Sentence punctuation after a link belongs to the sentence; a closing bracket belongs to the
    # link only when the link opened it (Wikipedia-style "Foo_(bar)").
    while url:
        last = url[-1]
        unbalanced = last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])
        if last in _TRAILING_PUNCT or unbalanced:
            url = url[:-1]
        else:
            break
    return url


def _link_spans(text: str) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for m in _URL.finditer(text):
        link = _trim_link(m.group())
        if "://" in link and len(link) > link.index("://") + 3:
            spans.append((m.start(), m.start() + len(link), link))
    for m in _BARE.finditer(text):
        if any(s <= m.start() < e for s, e, _ in spans):
            continue
        link = _trim_link(m.group())
        if "." in link:
            spans.append((m.start(), m.start() + len(link), link))
    spans.sort()
    return spans


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def extract_links(text: str) -> list[str]:
    """http(s) URLs and bare domains ("example.com/x"), as written, trailing punctuation removed.

    Bare domains are returned without inventing a scheme (we cannot know http vs https).
    Deduplicated, in order of first appearance.
    """
    return _dedupe(link for _, _, link in _link_spans(normalise_text(text)))


def _mask_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    out = text
    for start, end, _ in reversed(spans):
        out = out[:start] + " " * (end - start) + out[end:]
    return out


def _mask_links(text: str) -> str:
    # "example.com/#ancre" or "…/@alice" inside a URL is neither a hashtag nor a mention.
    return _mask_spans(text, _link_spans(text))


# A hashtag starts after a non-word character (so "C#" or "page#3" are not hashtags), may use the
# full-width "＃" some keyboards produce, and must contain a letter ("#1" is a ranking, not a tag).
_HASHTAG = re.compile(r"(?<![\w&#＃])[#＃](\w+)")
# Mentions: "@alice", "@alice.martin", or a fediverse address "@alice@piaille.fr". The look-behind
# keeps e-mail addresses ("rh@example.com") out.
_MENTION = re.compile(
    r"(?<![\w@.+-])@(\w(?:[\w.-]*\w)?(?:@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+)?)",
    re.IGNORECASE,
)


def extract_hashtags(text: str) -> list[str]:
    """Hashtags without the '#', lower-cased (accents kept), deduplicated, first appearance first.

    "#idée #Collaborateur #IDÉE" -> ["idée", "collaborateur"].
    """
    return _hashtags_of(_mask_links(normalise_text(text)))


def _hashtags_of(masked: str) -> list[str]:
    if "#" not in masked and "＃" not in masked:
        return []
    tags = (m.group(1).lower() for m in _HASHTAG.finditer(masked))
    return _dedupe(t for t in tags if any(c.isalpha() for c in t))


def extract_mentions(text: str) -> list[str]:
    """Mentioned handles, normalised like contract handles (no '@', case-folded), deduplicated."""
    return _mentions_of(_mask_links(normalise_text(text)))


def _mentions_of(masked: str) -> list[str]:
    if "@" not in masked:
        return []
    return _dedupe(normalise_handle(m.group(1)) for m in _MENTION.finditer(masked))


def _entities(text: str) -> tuple[list[str], list[str], list[str]]:
    """(hashtags, mentions, links) of already-normalised text, finding link spans only once."""
    spans = _link_spans(text)
    masked = _mask_spans(text, spans) if spans else text
    return _hashtags_of(masked), _mentions_of(masked), _dedupe(link for _, _, link in spans)


# --------------------------------------------------------------------------------------------
# language detection
# --------------------------------------------------------------------------------------------

# Below this many letters the classifier is guessing ("ok", "Top !", "👏👏").
MIN_LETTERS_FOR_LANG = 12
# A sentence shorter than this does not vote on its own in mixed-language posts.
_MIN_SEGMENT_LETTERS = 8
_SEGMENTS = re.compile(r"(?<=[.!?…])\s+|\n+|\s+[-–—|/]\s+")
_NON_LINGUISTIC = re.compile(r"(?i)\bhttps?://\S+|(?<!\w)@\S+")
_model_lock = threading.Lock()


def _stream_array(archive: Any, member: str) -> array[int] | None:
    """A 1-D little-endian unsigned .npy member read straight into a stdlib array (what
    py3langid's `_to_array` returns), without a second, NumPy copy of its 20 MB; None when the
    member is laid out otherwise (the caller then reads it the usual way)."""
    import numpy as np

    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            return None
        codes = {2: "H", 4: "I", 8: "L"}
        if (
            len(shape) != 1
            or dtype.kind != "u"
            or dtype.byteorder == ">"
            or dtype.itemsize not in codes
        ):
            return None
        out = array(codes[dtype.itemsize])
        if out.itemsize != dtype.itemsize:
            return None
        size = shape[0] * dtype.itemsize
        pending = b""
        while len(out) * out.itemsize + len(pending) < size:
            chunk = f.read(1 << 20)
            if not chunk:
                return None
            pending += chunk
            whole = len(pending) - len(pending) % out.itemsize
            out.frombytes(pending[:whole])
            pending = pending[whole:]
        return out if len(out) == shape[0] else None


def _load_restricted(langs: tuple[str, ...]) -> LanguageIdentifier:
    """py3langid's model restricted to `langs` while it is read: its 142-language matrix (28 MB)
    only ever exists inside one statement, so loading peaks ~30 MB lower than loading it whole
    and restricting afterwards. Same file, same arrays as `LanguageIdentifier.from_model_file`
    followed by `set_languages`."""
    import lzma
    import shutil
    import tempfile

    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier
    from py3langid.modelio import _to_array

    with tempfile.TemporaryFile(suffix=".npz") as tmp:
        with lzma.open(MODEL_DIR / MODEL_FILE) as src:
            shutil.copyfileobj(src, tmp, length=1 << 20)
        tmp.seek(0)
        with np.load(tmp, allow_pickle=False) as data:
            classes: list[str] = data["classes"].tolist()
            unknown = set(langs) - set(classes)
            if unknown:
                raise ValueError(f"Unknown language code(s): {unknown}")
            keep = [i for i, c in enumerate(classes) if c in langs]
            ptc = data["ptc"][:, keep]
            pc = data["pc"][keep]
            nextmove = _stream_array(data.zip, "nextmove.npy") or _to_array(data["nextmove"])
            row = _to_array(data["nextmove_row"])
            output = data["out_feat"].tolist()
    return LanguageIdentifier(
        ptc, pc, [classes[i] for i in keep], nextmove, output, norm_probs=True, tk_row=row
    )


@lru_cache(maxsize=16)
def _identifier(langs: tuple[str, ...]) -> LanguageIdentifier:
    # One identifier per language set, restricted on a model of its own: set_languages mutates
    # its identifier, and the module-level langid.set_languages would be process-global. Only
    # the restricted columns are kept, which keeps the ingest process inside its memory budget;
    # another language set (settings are fixed, so in practice none) reads the file again.
    with _model_lock:
        try:
            return _load_restricted(langs)
        except ValueError:
            raise
        except Exception:  # a model layout we do not know: the library's own loader
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            ident.set_languages(list(langs))
            ident._full_model = (ident.nb_ptc, ident.nb_pc, ident.nb_classes)
            return ident


def _letters(text: str) -> int:
    return sum(map(str.isalpha, text))


def normalise_lang_tag(tag: str) -> str:
    """ "FR", "fr-FR", "en_GB" -> "fr", "fr", "en": rules and messages are chosen per language."""
    return re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower()


def detect_language(text: str, allowed: Iterable[str] = DEFAULT_LANGS) -> str | None:
    """The dominant language among `allowed`, or None when the text is too short to tell.

    Mixed FR/EN posts are split into sentences; each sentence votes for its language weighted by
    its letter count, so the language most of the post is written in wins.
    """
    return _detect(normalise_text(text), _lang_set(tuple(allowed)))


@lru_cache(maxsize=16)
def _lang_set(allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({normalise_lang_tag(lang) for lang in allowed}))


# Function words of one of French and English only ("a", "on", "me", "as"… are
# left out where the other language uses the same spelling).
def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_FR_WORDS = _wordset(
    "le la les des du de un une et est sont pour pas avec dans sur nous vous notre nos votre vos "
    "ce cette ces qui que au aux en ne plus très tout tous toute être avoir à il elle ils elles "
    "je tu mais ou où donc car leur leurs son sa ses mon ma mes été sommes êtes cet par"
)
_EN_WORDS = _wordset(
    "the and is are for not with in we you our your this that these those who to of an be have "
    "it at by from was were will would can could has had they them their my his her its been "
    "what which when where there here all just about"
)
_WORDS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _function_word_verdict(text: str) -> str | None:
    """fr or en when the post's function words leave no doubt, else None (ask the model).

    A fast path: py3langid reads every byte through Python (~0.2 ms a post); most posts are
    plainly one language. Mixed or unusual posts fall through to the sentence vote below.
    """
    fr = en = 0
    for word in _WORDS.findall(text.lower()):
        if word in _FR_WORDS:
            fr += 1
        elif word in _EN_WORDS:
            en += 1
    if fr >= 3 and fr >= 5 * en:
        return "fr"
    if en >= 3 and en >= 5 * fr:
        return "en"
    return None


def _detect(normalised: str, langs: tuple[str, ...]) -> str | None:
    if not langs:
        return None
    cleaned = _NON_LINGUISTIC.sub(" ", normalised)
    # Hashtags carry words ("#fierté") but the '#' itself is noise for the n-gram model.
    cleaned = cleaned.replace("#", " ").replace("＃", " ")
    total = _letters(cleaned)
    if total < MIN_LETTERS_FOR_LANG:
        return None
    if len(langs) == 1:
        return langs[0]
    if langs == ("en", "fr"):
        clear = _function_word_verdict(cleaned)
        if clear is not None:
            return clear
    ident = _identifier(langs)
    votes: dict[str, float] = {}
    voters = [(seg, n) for seg in _SEGMENTS.split(cleaned) if (n := _letters(seg))]
    voters = [(seg, n) for seg, n in voters if n >= _MIN_SEGMENT_LETTERS]
    if len(voters) == 1:
        # One voting sentence decides alone: its confidence cannot change the winner.
        return str(ident.classify(voters[0][0])[0])
    for segment, n in voters:
        lang, conf = ident.classify(segment)
        votes[lang] = votes.get(lang, 0.0) + n * conf
    if not votes:
        # Only short fragments: classify the whole text at once.
        lang, _ = ident.classify(cleaned)
        return str(lang)
    return max(sorted(votes), key=lambda k: votes[k])


# --------------------------------------------------------------------------------------------
# ingest contract -> domain events
# --------------------------------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("timestamps must be time-zone aware")
    return at.astimezone(UTC)


def to_post_received(
    post: PostIn,
    ambassador_id: str,
    producer: str,
    *,
    allowed_langs: Iterable[str] = DEFAULT_LANGS,
) -> PostReceived:
    """PostReceived for a validated post; event_id is the input's: re-ingestion is a duplicate."""
    text = normalise_text(post.text)
    langs = _lang_set(tuple(allowed_langs))
    lang = normalise_lang_tag(post.lang) if post.lang else _detect(text, langs)
    hashtags, mentions, links = _entities(text)
    return PostReceived(
        event_id=post.event_id,
        occurred_at=_utc(post.occurred_at),
        producer=producer,
        post_key=post_key(post.network, post.post_id),
        network=post.network,
        post_id=post.post_id,
        ambassador_id=ambassador_id,
        author=post.author,
        text=text,
        kind=post.kind,
        url=post.url,
        lang=lang,
        campaign=post.campaign,
        followers=post.followers,
        hashtags=hashtags,
        mentions=mentions,
        links=links,
    )


def to_engagement_received(
    e: EngagementIn, actor_ambassador_id: str | None, producer: str
) -> EngagementReceived:
    """EngagementReceived for a validated engagement; comment text normalised (empty -> None)."""
    text = normalise_text(e.text) if e.text is not None else None
    return EngagementReceived(
        event_id=e.event_id,
        occurred_at=_utc(e.occurred_at),
        producer=producer,
        engagement=e.type,
        post_key=post_key(e.network, e.post_id),
        network=e.network,
        post_id=e.post_id,
        actor=e.actor,
        actor_ambassador_id=actor_ambassador_id,
        text=text or None,
    )


def to_ambassador_registered(a: AmbassadorIn, producer: str, at: datetime) -> AmbassadorRegistered:
    """AmbassadorRegistered at `at` (the ingest time: the contract carries no timestamp)."""
    return AmbassadorRegistered(
        event_id=a.idempotency_key(),
        occurred_at=_utc(at),
        producer=producer,
        ambassador_id=a.ambassador_id,
        display_name=normalise_text(a.display_name),
        team=normalise_text(a.team),
        handles=dict(a.handles),
        consent=a.consent,
    )


# --------------------------------------------------------------------------------------------
# deduplication beyond event_id
# --------------------------------------------------------------------------------------------

_NaturalKeyed = (
    PostIn | EngagementIn | AmbassadorIn | PostReceived | EngagementReceived | AmbassadorRegistered
)


def natural_key(event: _NaturalKeyed) -> str | None:
    """Deduplication key from what happened, independent of the producer's event_id.

    Two producers (a webhook and a nightly import) reporting the same fact with different event ids
    collapse onto one key:
    - post: ``post:{network}:{post_id}`` (a post exists once);
    - like/share: ``{type}:{network}:{post_id}:{actor}`` (one like, one share per actor per post:
      unlike/re-like or undo/redo must not farm points).
    None for the rest, which only event_id can deduplicate:
    - comment: an actor may legitimately comment many times on one post, and the contract has no
      comment id, so two comments by the same person are indistinguishable without event_id;
    - click: every click is a separate fact (rate limits belong to scoring, not dedup);
    - ambassador: a registration is state, not a fact: a later update with the same id must win,
      and AmbassadorIn.idempotency_key already deduplicates identical resends.
    """
    if isinstance(event, PostIn | PostReceived):
        return f"post:{event.network}:{event.post_id}"
    if isinstance(event, EngagementIn):
        kind: str = event.type
    elif isinstance(event, EngagementReceived):
        kind = event.engagement
    else:
        return None
    if kind in ("like", "share"):
        return f"{kind}:{event.network}:{event.post_id}:{normalise_handle(event.actor)}"
    return None


# --------------------------------------------------------------------------------------------
# late / out-of-order events
# --------------------------------------------------------------------------------------------


def classify_time(
    occurred_at: datetime,
    now: datetime,
    *,
    max_future: timedelta = MAX_FUTURE_SKEW,
    max_age: timedelta = MAX_AGE,
) -> Rejection | None:
    """None when `occurred_at` is acceptable, else a Rejection naming the rule.

    Late events inside `max_age` are accepted: scoring buckets by occurred_at, not arrival, so an
    out-of-order event lands in its own period. Beyond the clock-skew allowance a future timestamp
    is a producer bug (or a farming attempt on a future period); beyond `max_age` an event falls
    outside every board anyone still looks at and would only rewrite closed history.
    """
    occurred, current = _utc(occurred_at), _utc(now)
    iso = occurred.isoformat().replace("+00:00", "Z")
    if occurred > current + max_future:
        return Rejection(
            field="occurred_at",
            rule="future_timestamp",
            message=f"occurred_at is more than {max_future} in the future of the ingest clock",
            value=iso,
        )
    if occurred < current - max_age:
        return Rejection(
            field="occurred_at",
            rule="too_old",
            message=f"occurred_at is older than the accepted {max_age.days} days",
            value=iso,
        )
    return None


def engagement_received_payload(
    e: EngagementIn, actor_ambassador_id: str | None, producer: str
) -> dict[str, object]:
    """The JSON object of `to_engagement_received(...)`, built without a pydantic round trip.

    Engagements are most of the traffic; the input is already validated, so re-validating the
    output model costs more than the rest of their processing. Equality with the model is a
    unit test. Datetimes stay objects: the caller serialises with orjson (OPT_UTC_Z).
    """
    text = normalise_text(e.text) if e.text is not None else None
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": e.event_id,
        "occurred_at": _utc(e.occurred_at),
        "producer": producer,
        "type": "engagement.received",
        "engagement": e.type,
        "post_key": f"{e.network}:{e.post_id}",
        "network": e.network,
        "post_id": e.post_id,
        "actor": e.actor,
        "actor_ambassador_id": actor_ambassador_id,
        "text": text or None,
    }
