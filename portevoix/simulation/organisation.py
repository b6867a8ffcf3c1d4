"""A simulated organisation: teams, ambassadors with handles on several networks and follower
counts, their activity (a few very active, most occasional: a power law), and a few colleague
like-rings. Pure: built from a `random.Random`."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field

from portevoix.simulation.texts import Lang

TEAMS = (
    "Ventes", "Tech", "RH", "Marketing", "Finance", "Support", "Logistique", "Juridique", "R&D",
    "Communication", "Achats", "Production", "Qualité", "Data", "Export",
)  # fmt: skip
_FIRST = (
    "Alice", "Bruno", "Chloé", "David", "Élodie", "Fatou", "Gaël", "Hélène", "Ismaël", "Julie",
    "Karim", "Laura", "Mehdi", "Nina", "Olivier", "Pauline", "Quentin", "Rose", "Samir", "Téa",
    "Ugo", "Valérie", "William", "Xavier", "Yasmine", "Zacharie", "Amélie", "Benoît", "Céline",
    "Dorian", "Estelle", "Florian", "Grace", "Hugo", "Iris", "Jonas", "Kenza", "Léo", "Maëlle",
)  # fmt: skip
_LAST = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
    "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet",
    "François", "Martinez", "Nguyen", "Diallo", "Haddad", "O'Brien", "Smith", "Kowalski",
)  # fmt: skip
# Where ambassadors have a handle, and how likely (LinkedIn is the employee-advocacy network).
NETWORK_SHARE = (("linkedin", 0.95), ("x", 0.45), ("mastodon", 0.15), ("bluesky", 0.2),
                 ("instagram", 0.25), ("facebook", 0.2))  # fmt: skip


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum() or c == "-")


@dataclass
class Ambassador:
    ambassador_id: str
    display_name: str
    team: str
    lang: Lang
    handles: dict[str, str]
    followers: dict[str, int]
    consent: bool
    activity: float  # relative propensity to post (power law)

    def registration(self) -> dict[str, object]:
        return {
            "type": "ambassador",
            "ambassador_id": self.ambassador_id,
            "display_name": self.display_name,
            "team": self.team,
            "handles": dict(self.handles),
            "consent": self.consent,
        }


@dataclass
class Organisation:
    ambassadors: list[Ambassador]
    teams: list[str]
    # Groups of colleagues who systematically like each other's posts (fair-play target).
    rings: list[list[Ambassador]] = field(default_factory=list)

    def by_network(self, network: str) -> list[Ambassador]:
        return [a for a in self.ambassadors if network in a.handles]


def build_organisation(
    rng: random.Random,
    n_ambassadors: int,
    *,
    n_teams: int | None = None,
    consent_share: float = 0.97,
    n_rings: int = 3,
) -> Organisation:
    n_teams = n_teams or max(1, min(len(TEAMS), n_ambassadors // 12 or 1))
    teams = list(TEAMS[:n_teams])
    ambassadors: list[Ambassador] = []
    used: set[str] = set()
    for i in range(n_ambassadors):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        base = _ascii(name.replace(" ", "-"))
        slug = base if base not in used else f"{base}-{i}"
        used.add(slug)
        handles: dict[str, str] = {}
        followers: dict[str, int] = {}
        for network, share in NETWORK_SHARE:
            if rng.random() < share or (network == "linkedin" and not handles):
                handles[network] = slug if network != "x" else slug.replace("-", "_")[:15] + str(i)
                # Follower counts are heavy-tailed: most have a few hundred, a few have many.
                followers[network] = int(min(2_000_000, 80 * rng.paretovariate(1.2)))
        if not handles:
            handles["linkedin"] = slug
            followers["linkedin"] = 200
        ambassadors.append(
            Ambassador(
                ambassador_id=f"amb-{i:05d}",
                display_name=name,
                team=teams[rng.randrange(len(teams))],
                lang="fr" if rng.random() < 0.7 else "en",
                handles=handles,
                followers=followers,
                consent=rng.random() < consent_share,
                # Pareto(1.16) gives the "20 % write 80 %" shape the seeds describe.
                activity=rng.paretovariate(1.16),
            )
        )
    rings: list[list[Ambassador]] = []
    linked = [a for a in ambassadors if "linkedin" in a.handles and a.consent]
    for _ in range(min(n_rings, len(linked) // 3)):
        rings.append(rng.sample(linked, rng.choice((2, 3))))
    return Organisation(ambassadors, teams, rings)
