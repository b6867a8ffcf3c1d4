"""Post texts of a simulated organisation: ordinary FR/EN posts, relays of campaign content, and
the charter problems a community manager meets (insults, personal data whose checksums validate,
confidential markers, hashtag stuffing, engagement bait, shouting, relays without disclosure).

Pure: every choice comes from the `random.Random` passed in, so a seed gives the same texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from stdnum import iban, luhn
from stdnum.fr import nir

Lang = Literal["fr", "en"]
PROBLEMS = (
    "insult",
    "iban",
    "card",
    "nir",
    "confidential",
    "hashtag_stuffing",
    "engagement_bait",
    "shouting",
    "missing_disclosure",
)
Problem = Literal[
    "insult",
    "iban",
    "card",
    "nir",
    "confidential",
    "hashtag_stuffing",
    "engagement_bait",
    "shouting",
    "missing_disclosure",
]
# The default charter's rule each problem must trigger (the simulator's ground truth).
PROBLEM_RULES: dict[str, str] = {
    "insult": "responsabilite.insult",
    "iban": "correction.financial-data",
    "card": "correction.financial-data",
    "nir": "correction.nir",
    "confidential": "correction.confidential-marker",
    "hashtag_stuffing": "utilite.hashtag-stuffing",
    "engagement_bait": "utilite.engagement-bait",
    "shouting": "utilite.shouting",
    "missing_disclosure": "sincerite.disclosure",
}

DISCLOSURE = {"fr": ("#collaborateur", "#collaboratrice", "#salarié"), "en": ("#employee",)}

# Ordinary posts are assembled from independent slots: thousands of combinations plus numbers,
# so distinct authors rarely write near-identical texts (which the charter flags as a flood).
_OPEN = {
    "fr": (
        "Retour sur", "Très heureux de partager", "Quelle belle journée pour",
        "Petit bilan de", "Fière de vous présenter", "Encore merci pour", "Souvenirs de",
        "Premier jour pour", "On parle beaucoup de", "Je reviens tout juste de",
    ),
    "en": (
        "Looking back on", "Happy to share", "What a great day for", "A quick recap of",
        "Proud to present", "Thanks again for", "Memories from", "First day of",
        "Everyone is talking about", "Just back from",
    ),
}  # fmt: skip
_WHAT = {
    "fr": (
        "notre journée portes ouvertes", "l'atelier innovation", "la formation sécurité",
        "notre séminaire d'équipe", "le hackathon interne", "la visite de l'usine",
        "notre nouveau showroom", "la conférence clients", "le forum de l'alternance",
        "la semaine du développement durable", "notre salon professionnel",
        "la remise des trophées", "l'inauguration de l'agence", "la journée solidaire",
    ),
    "en": (
        "our open house", "the innovation workshop", "the safety training",
        "our team offsite", "the internal hackathon", "the plant tour",
        "our new showroom", "the customer conference", "the apprenticeship fair",
        "sustainability week", "our trade show", "the awards night",
        "the new branch opening", "our volunteering day",
    ),
}  # fmt: skip
_WHERE = {
    "fr": (
        "à Lyon", "à Nantes", "à Lille", "à Rennes", "à Bordeaux", "à Toulouse", "à Strasbourg",
        "à Grenoble", "à Marseille", "à Montpellier", "à Dijon", "à Brest",
    ),
    "en": (
        "in Lyon", "in Lisbon", "in Dublin", "in Montreal", "in Brussels", "in Geneva",
        "in Manchester", "in Boston", "in Barcelona", "in Munich", "in Milan", "in Oslo",
    ),
}  # fmt: skip
_DETAIL = {
    "fr": (
        "avec {n} participants", "et {n} questions passionnantes", "après {n} mois de préparation",
        "devant {n} visiteurs", "avec {n} collègues motivés", "et {n} idées à creuser",
    ),
    "en": (
        "with {n} attendees", "and {n} great questions", "after {n} months of preparation",
        "in front of {n} visitors", "with {n} motivated colleagues", "and {n} ideas to explore",
    ),
}  # fmt: skip
_CLOSE = {
    "fr": (
        "Merci à toute l'équipe !", "Bravo à tous les participants.", "Vivement la prochaine !",
        "Une vraie fierté de travailler ici.", "On continue sur cette lancée.",
        "Merci à nos partenaires pour leur confiance.", "Rendez-vous l'an prochain.",
    ),
    "en": (
        "Thanks to the whole team!", "Well done everyone.", "Looking forward to the next one!",
        "Proud to work here.", "Let's keep going.", "Thanks to our partners for their trust.",
        "See you next year.",
    ),
}  # fmt: skip
_TAGS = (
    "#innovation", "#rse", "#industrie", "#recrutement", "#équipe", "#teamwork", "#careers",
    "#sustainability", "#formation", "#tech",
)  # fmt: skip
_FIRST = (
    "Camille", "Léa", "Hugo", "Lucas", "Chloé", "Nora", "Yanis", "Inès", "Jules", "Manon",
    "Sofia", "Adam", "Emma", "Noah", "Olivia", "Liam", "Zoé", "Ethan", "Maya", "Louis",
)  # fmt: skip
_LAST = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Smith", "Brown", "Taylor",
    "Nguyen", "Diallo", "Rossi", "Müller", "Kowalski", "Haddad",
)  # fmt: skip

# Campaign content the company asks ambassadors to relay, keyed by campaign id. The first one
# is the default charter's own template, so relays of it are recognised as campaign content.
CAMPAIGNS: dict[str, dict[str, str]] = {
    "cmp-vivatech": {
        "fr": "Retrouvez Acme au salon VivaTech du 17 au 20 juin, stand B42 : venez découvrir nos "
        "solutions pour une industrie plus responsable ! #VivaTech #Acme",
        "en": "Meet Acme at VivaTech, June 17-20, booth B42: come and see our solutions for a "
        "more responsible industry! #VivaTech #Acme",
    },
    "cmp-recrutement": {
        "fr": "Acme recrute {n} alternants et stagiaires {where} : découvrez nos métiers et "
        "postulez sur notre site carrières.",
        "en": "Acme is hiring {n} apprentices and interns {where}: discover our jobs and apply "
        "on our careers site.",
    },
    "cmp-rapport-rse": {
        "fr": "Notre rapport RSE est en ligne : {n} engagements concrets pour le climat, "
        "l'inclusion et nos territoires, dont un projet {where}.",
        "en": "Our CSR report is out: {n} concrete commitments for the climate, inclusion and "
        "our communities, including a project {where}.",
    },
}

_INSULTS = {"fr": ("connard", "abruti", "crétin"), "en": ("idiot", "moron")}
_CONFIDENTIAL = {
    "fr": ("Strictement confidentiel, ne pas diffuser :", "Document confidentiel :"),
    "en": ("Confidential - internal only:", "Internal only, do not share:"),
}
_BAIT = {
    "fr": ("Likez si vous êtes d'accord !", "Commentez « oui » si vous voulez la suite !",
           "Partagez si vous aussi vous êtes fiers !"),
    "en": ("Like if you agree!", "Comment YES below if you want more!",
           "Share if you are proud too!"),
}  # fmt: skip
_STUFFING = (
    "#acme", "#job", "#jobs", "#hiring", "#work", "#career", "#success", "#motivation",
    "#business", "#leadership", "#growth", "#marketing", "#love", "#life", "#goals", "#team",
)  # fmt: skip


@dataclass(frozen=True)
class PostText:
    text: str
    lang: Lang
    problem: Problem | None = None
    campaign: str | None = None


def person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def ordinary(rng: random.Random, lang: Lang) -> str:
    detail = rng.choice(_DETAIL[lang]).format(n=rng.randint(3, 480))
    parts = [
        rng.choice(_OPEN[lang]),
        rng.choice(_WHAT[lang]),
        rng.choice(_WHERE[lang]),
        detail + ".",
        rng.choice(_CLOSE[lang]),
    ]
    if rng.random() < 0.5:
        parts.append(rng.choice(_TAGS))
    return " ".join(parts)


def campaign_text(rng: random.Random, campaign: str, lang: Lang) -> str:
    where = rng.choice(_WHERE[lang])
    return CAMPAIGNS[campaign][lang].format(n=rng.randint(5, 90), where=where)


# -- personal data with checksums that validate ---------------------------------------------


def french_iban(rng: random.Random) -> str:
    bban = (
        f"{rng.randint(10000, 99999)}{rng.randint(10000, 99999)}{rng.randint(0, 10**11 - 1):011d}"
    )
    bban += f"{rng.randint(0, 99):02d}"
    check = iban.calc_check_digits(f"FR00{bban}")
    number = f"FR{check}{bban}"
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def card_number(rng: random.Random) -> str:
    body = "4970" + "".join(str(rng.randint(0, 9)) for _ in range(11))
    number = body + luhn.calc_check_digit(body)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def nir_number(rng: random.Random) -> str:
    # sex, year, month, department, commune, order: a plausible French social security number.
    body = (
        f"{rng.choice('12')}{rng.randint(60, 99):02d}{rng.randint(1, 12):02d}"
        f"{rng.randint(1, 95):02d}{rng.randint(1, 899):03d}{rng.randint(1, 999):03d}"
    )
    key = nir.calc_check_digits(body)
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key}"


def with_problem(rng: random.Random, problem: Problem, lang: Lang, base: str) -> str:
    """`base` rewritten so that it breaks the charter in the way `problem` names."""
    if problem == "insult":
        word = rng.choice(_INSULTS[lang])
        extra = (
            f"Et franchement, ce fournisseur est un {word}."
            if lang == "fr"
            else f"Honestly, that supplier is an {word}."
        )
        return f"{base} {extra}"
    if problem == "iban":
        return (
            f"{base} Pour la cagnotte de {person(rng)}, virez sur {french_iban(rng)}"
            if lang == "fr"
            else f"{base} For {person(rng)}'s leaving gift, transfer to {french_iban(rng)}"
        )
    if problem == "card":
        return (
            f"{base} Utilisez ma carte {card_number(rng)} pour réserver."
            if lang == "fr"
            else f"{base} Use my card {card_number(rng)} to book."
        )
    if problem == "nir":
        return (
            f"{base} Le numéro de sécu de {person(rng)} est {nir_number(rng)}."
            if lang == "fr"
            else f"{base} The social security number of {person(rng)} is {nir_number(rng)}."
        )
    if problem == "confidential":
        return f"{rng.choice(_CONFIDENTIAL[lang])} {base}"
    if problem == "hashtag_stuffing":
        tags = rng.sample(_STUFFING, rng.randint(8, 12))
        return f"{base} {' '.join(tags)}"
    if problem == "engagement_bait":
        return f"{base} {rng.choice(_BAIT[lang])}"
    if problem == "shouting":
        return base.upper() + " !!!"
    return base  # missing_disclosure: the relay simply omits the tag (see `relay_text`)


def relay_text(rng: random.Random, campaign: str, lang: Lang, disclose: bool) -> str:
    text = campaign_text(rng, campaign, lang)
    if disclose:
        text += " " + rng.choice(DISCLOSURE[lang])
    return text
