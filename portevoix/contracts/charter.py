"""The charter's nine principles (seed 004): ids and labels are part of the public contract —
decisions, findings and analytics name them."""

from __future__ import annotations

PRINCIPLE_LABELS: dict[str, dict[str, str]] = {
    "sincerite": {"fr": "Sincérité", "en": "Sincerity"},
    "correction": {"fr": "Correction", "en": "Propriety"},
    "modestie": {"fr": "Modestie", "en": "Modesty"},
    "vraisemblance": {"fr": "Vraisemblance", "en": "Credibility"},
    "conversation": {"fr": "Conversation", "en": "Conversation"},
    "utilite": {"fr": "Utilité", "en": "Usefulness"},
    "responsabilite": {"fr": "Responsabilité", "en": "Responsibility"},
    "circonspection": {"fr": "Circonspection", "en": "Caution"},
    "humilite": {"fr": "Humilité", "en": "Humility"},
}
