"""Language identification: a cheap stop-word vote first, py3langid when it is unsure.

py3langid costs ~60 µs a post; most advocacy posts are plainly French or English and a
vote on discriminative function words settles them in a few µs.
"""

from __future__ import annotations

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

EXTRA_LANGUAGES = ("de", "es", "it", "nl", "pt")


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]) -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(languages))
    return ident


class LanguageGuesser:
    """Guesses among the charter's languages plus a few common European ones."""

    def __init__(self, languages: list[str]) -> None:
        langs = [lang for lang in languages if lang]
        self.languages = tuple(sorted(set(langs) | set(EXTRA_LANGUAGES)))

    def guess(
        self, folded: str, words: list[str], *, min_letters: int = 40
    ) -> tuple[str | None, float]:
        """Return (language, confidence); below ``min_letters`` only the vote is used."""
        if len(words) < 3:
            return None, 0.0  # too short for any identifier to be meaningful
        counts = {lang: sum(map(stop.__contains__, words)) for lang, stop in _STOP.items()}
        best = max(counts, key=lambda k: counts[k])
        n = counts[best]
        other = sum(v for k, v in counts.items() if k != best)
        alpha = len(words) - sum(map(str.isdigit, words))  # numbers say nothing of language
        if best in self.languages and n >= 2 and n >= 0.15 * alpha and other * 3 <= n:
            return best, 0.95 if n < 4 else 0.99
        if sum(len(w) for w in words) < min_letters:
            # Short and unclear: the model would mostly guess; keep the vote, low confidence.
            return (best, 0.5) if n else (None, 0.0)
        lang, prob = _identifier(self.languages).classify(folded)
        return str(lang), float(prob)

    def warm_up(self) -> None:
        _identifier(self.languages)
