"""Language identification: a cheap stop-word vote first, py3langid only when it is unsure.

py3langid costs ~60-100 µs a post and ~45 MB of resident memory once loaded (its byte n-gram
automaton); most posts are plainly in one language and a vote on discriminative function
words settles them in a few µs. The model is loaded lazily, on the first post the vote
cannot settle *and* that shows signs of a language the charter does not allow: a post
whose only function words are in the charter's languages (or that has none) is not sent to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import lzma
import shutil
import tempfile
import threading
import zipfile
from array import array
from functools import lru_cache
from typing import Any

# Function words that are frequent in one language and rare in the other candidates
# (words shared with Spanish/Italian such as "de", "la", "que", "en" are left out).
_STOP = {
    "fr": frozenset(
        [
            "le",
            "les",
            "des",
            "du",
            "est",
            "et",
            "une",
            "pour",
            "nous",
            "vous",
            "avec",
            "dans",
            "sur",
            "au",
            "aux",
            "je",
            "ce",
            "cette",
            "ces",
            "qui",
            "pas",
            "sont",
            "ont",
            "mais",
            "tres",
            "notre",
            "nos",
            "votre",
            "vos",
            "ton",
            "tes",
            "ils",
            "elle",
            "leur",
            "leurs",
            "chez",
            "mes",
            "ses",
            "merci",
            "bravo",
            "aussi",
            "comme",
            "depuis",
            "tous",
            "toutes",
            "toute",
            "tout",
            "cet",
            "etre",
            "avons",
            "ou",
            "donc",
            "car",
            "quel",
            "quelle",
            "fait",
            "faire",
            "veux",
            "voulez",
            "qu",
            "j",
            "l",
            "d",
            "n",
            "aujourd",
            "hui",
            "nouvelle",
            "nouveau",
            "equipe",
            "equipes",
            "semaine",
            "annee",
            "collegues",
            "entreprise",
            "bien",
            "plus",
            "sous",
            "ici",
            "ca",
            "lundi",
            "mardi",
            "mercredi",
            "jeudi",
            "vendredi",
            "samedi",
            "dimanche",
            "offres",
            "projet",
        ]
    ),
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "of",
            "to",
            "for",
            "with",
            "our",
            "we",
            "you",
            "this",
            "that",
            "be",
            "have",
            "has",
            "from",
            "your",
            "my",
            "by",
            "not",
            "it",
            "its",
            "they",
            "their",
            "what",
            "who",
            "about",
            "proud",
            "team",
            "new",
            "today",
            "us",
            "out",
            "all",
            "more",
            "can",
            "get",
            "how",
            "if",
            "week",
            "year",
            "people",
            "work",
            "great",
            "thanks",
            "thank",
            "news",
            "at",
            "just",
            "next",
            "month",
            "stay",
            "these",
            "only",
            "now",
            "here",
            "there",
            "up",
            "do",
            "been",
            "were",
            "which",
            "also",
            "into",
            "than",
            "them",
            "some",
            "very",
        ]
    ),
}

# The other languages the guesser names (so that the language rule can say which one).
# Only words that are not also common French or English words (after folding) are listed:
# "die", "war", "den", "hat" (de), "y", "con", "es", "se", "nos" (es), "il", "per", "non",
# "ma", "e" (it), "te", "we", "met", "er" (nl), "mais", "do", "no", "a", "e" (pt) are left out,
# as are words shared by two of these languages ("del", "para", "estamos", "da"), and "com"
# (every link and e-mail address).
_STOP_EXTRA = {
    "de": frozenset(
        [
            "und",
            "der",
            "das",
            "ist",
            "nicht",
            "ein",
            "eine",
            "einen",
            "einem",
            "einer",
            "auf",
            "fur",
            "wir",
            "ich",
            "sie",
            "dem",
            "zu",
            "von",
            "sich",
            "auch",
            "im",
            "uns",
            "unsere",
            "unser",
            "unseren",
            "unserem",
            "sehr",
            "heute",
            "bei",
            "wird",
            "werden",
            "haben",
            "sind",
            "aus",
            "nach",
            "oder",
            "aber",
            "noch",
            "neue",
            "neuen",
            "zum",
            "zur",
            "diese",
            "dieser",
            "dieses",
            "konnen",
            "wieder",
            "jetzt",
            "immer",
            "euch",
            "ihre",
            "ihren",
            "gibt",
            "vom",
            "beim",
            "dass",
            "wenn",
            "gerne",
            "danke",
            "ganzen",
            "freuen",
            "uber",
            "mehr",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "muy",
            "nuestra",
            "nuestro",
            "nuestros",
            "nuestras",
            "pero",
            "sus",
            "hoy",
            "gracias",
            "tambien",
            "hay",
            "desde",
            "todos",
            "todas",
            "nueva",
            "nuevo",
            "nuevas",
            "nuevos",
            "contentos",
            "equipo",
            "somos",
            "esta",
            "este",
            "estan",
            "por",
            "una",
        ]
    ),
    "it": frozenset(
        [
            "di",
            "della",
            "delle",
            "degli",
            "dei",
            "che",
            "sono",
            "siamo",
            "nostro",
            "nostra",
            "nostri",
            "nostre",
            "gli",
            "anche",
            "questo",
            "questa",
            "questi",
            "molto",
            "alla",
            "alle",
            "nel",
            "nella",
            "nelle",
            "sul",
            "sulla",
            "dal",
            "dalla",
            "ed",
            "abbiamo",
            "sempre",
            "oggi",
            "grazie",
            "tutti",
            "tutto",
            "tutta",
            "nuovo",
            "nuova",
            "nuovi",
            "orgogliosi",
        ]
    ),
    "nl": frozenset(
        [
            "het",
            "een",
            "van",
            "zijn",
            "wij",
            "ons",
            "onze",
            "voor",
            "niet",
            "ook",
            "naar",
            "bij",
            "wordt",
            "worden",
            "hebben",
            "deze",
            "dit",
            "zoeken",
            "nieuwe",
            "maar",
            "nog",
            "hij",
            "zij",
            "uit",
            "jullie",
            "graag",
            "vandaag",
            "trots",
            "op",
        ]
    ),
    "pt": frozenset(
        [
            "uma",
            "nossa",
            "nosso",
            "nossos",
            "nossas",
            "nao",
            "ao",
            "aos",
            "pela",
            "pelo",
            "pelos",
            "muito",
            "muita",
            "sao",
            "estao",
            "voce",
            "tambem",
            "isso",
            "isto",
            "fabrica",
            "contratar",
        ]
    ),
}
# A few kept words belong to two of them ("das": de/pt, "una": es/it, "por", "esta", "este":
# es/pt): they count for one, enough to see a foreign language; the model settles the rest.
_STOP.update(_STOP_EXTRA)
_ALL_STOP: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOP.items():
    for _w in _words:
        _ALL_STOP[_w] = (*_ALL_STOP.get(_w, ()), _lang)
EXTRA_LANGUAGES = ("de", "es", "it", "nl", "pt")


_model_lock = threading.Lock()


def _load_restricted(languages: tuple[str, ...]) -> Any:
    """py3langid's model restricted to ``languages``, without its 142-language matrix.

    ``LanguageIdentifier.from_model_file`` keeps the full naive-Bayes matrix (28 MB) for
    ``set_languages`` and peaks at ~+105 MB while loading (numpy copies of the automaton);
    read the same file (npz inside xz) array by array instead, keeping only our columns:
    ~+45 MB resident, peak included."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    with tempfile.TemporaryFile(suffix=".npz") as tmp:
        with lzma.open(MODEL_DIR / MODEL_FILE) as src:
            shutil.copyfileobj(src, tmp, length=1 << 20)
        tmp.seek(0)
        with zipfile.ZipFile(tmp) as zf:
            classes = _small(zf, "classes.npy").tolist()
            cols = [i for i, c in enumerate(classes) if c in languages]
            pc = _small(zf, "pc.npy")[cols]
            ptc = _columns(zf, "ptc.npy", cols)
            nextmove = _as_array(zf, "nextmove.npy")
            row = _as_array(zf, "nextmove_row.npy")
            output = _as_array(zf, "out_feat.npy")
    ident = LanguageIdentifier(
        ptc, pc, [classes[i] for i in cols], nextmove, output, norm_probs=True, tk_row=row
    )
    # Per-state tables as compact arrays rather than lists of ints (-7 MB): py3langid only
    # indexes them.
    ident._rowbase = array("L", ident._rowbase)
    gc.collect()
    _trim_heap()
    return ident


def _trim_heap() -> None:
    """Give the loader's freed buffers back to the OS (glibc keeps ~13 MB of them)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _npy(zf: zipfile.ZipFile, name: str) -> tuple[Any, Any, tuple[int, ...]]:
    import numpy as np
    from numpy.lib import format as npy

    f = zf.open(name)
    version = npy.read_magic(f)
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if fortran:
        raise ValueError(f"{name}: unexpected Fortran order")
    return f, np.dtype(dtype), shape


def _small(zf: zipfile.ZipFile, name: str) -> Any:
    import numpy as np

    with zf.open(name) as f:
        return np.load(f, allow_pickle=False)


def _as_array(zf: zipfile.ZipFile, name: str) -> array[int]:
    """An integer .npy member as a stdlib array, read in 1 MB chunks (no second copy)."""
    f, dtype, _shape = _npy(zf, name)
    codes = {2: "h", 4: "i", 8: "q"} if dtype.kind == "i" else {2: "H", 4: "I", 8: "Q"}
    out: array[int] = array(codes[dtype.itemsize])
    with f:
        while chunk := f.read(1 << 20):
            out.frombytes(chunk)
    if dtype.byteorder == ">":
        out.byteswap()
    return out


def _columns(zf: zipfile.ZipFile, name: str, cols: list[int]) -> Any:
    """Some columns of a 2-D C-order .npy member, read a block of rows at a time."""
    import numpy as np

    f, dtype, shape = _npy(zf, name)
    n_rows, n_cols = shape
    out = np.empty((n_rows, len(cols)), dtype=dtype)
    block = max(1, (1 << 20) // (n_cols * dtype.itemsize))
    with f:
        for start in range(0, n_rows, block):
            k = min(block, n_rows - start)
            rows = np.frombuffer(f.read(k * n_cols * dtype.itemsize), dtype=dtype)
            out[start : start + k] = rows.reshape(k, n_cols)[:, cols]
    return out


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> Any:
    with _model_lock:  # one load even if two threads ask at once
        return _load_restricted(languages)


class LanguageGuesser:
    """Guesses among the charter's languages plus a few common European ones."""

    def __init__(self, languages: list[str]) -> None:
        langs = [lang for lang in languages if lang]
        self.languages = tuple(sorted(set(langs) | set(EXTRA_LANGUAGES)))
        self._voters = [lang for lang in self.languages if lang in _STOP]
        # The charter's own languages: their function words alone never call for the model.
        self._native = [lang for lang in self._voters if lang in langs]

    def guess(
        self, folded: str, words: list[str], *, min_letters: int = 40
    ) -> tuple[str | None, float]:
        """Return (language, confidence); below ``min_letters`` only the vote is used."""
        if len(words) < 3:
            return None, 0.0  # too short for any identifier to be meaningful
        counts = dict.fromkeys(self._voters, 0)
        get = _ALL_STOP.get
        for w in words:
            for lang in get(w, ()):
                if lang in counts:
                    counts[lang] += 1
        best = max(counts, key=counts.__getitem__)
        n = counts[best]
        total = sum(counts.values())
        other = total - n
        alpha = len(words) - sum(map(str.isdigit, words))  # numbers say nothing of language
        if n >= 2 and n >= 0.15 * alpha and other * 3 <= n:
            return best, 0.95 if n < 4 else 0.99
        native = sum(counts[lang] for lang in self._native)
        if total == native or sum(map(len, words)) < min_letters:
            # Short, or no sign of another language: the model would mostly guess (or confirm
            # French/English, which the language rule accepts); keep the vote, low confidence.
            return (best, 0.5) if n else (None, 0.0)
        lang, prob = _identifier(self.languages).classify(folded)
        return str(lang), float(prob)

    def warm_up(self) -> None:
        """Load the model now (it is otherwise loaded on the first unclear post)."""
        _identifier(self.languages)
