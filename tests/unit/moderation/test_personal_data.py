from collections.abc import Callable

import pytest

from portevoix_moderation.charter import Decision
from portevoix_moderation.charter.detectors.personal_data import redact

from .helpers import rules_fired

FIN = "correction.financial-data"
NIR = "correction.nir"
CONTACT = "correction.contact-data"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Virement sur FR76 3000 6000 0112 3456 7890 189 svp", FIN),
        ("RIB : FR7630006000011234567890189", FIN),
        ("Wire to GB82 WEST 1234 5698 7654 32 please", FIN),
        ("Carte 4111 1111 1111 1111 testée", FIN),
        ("Carte 5555-5555-5555-4444", FIN),
        ("Mon numéro de sécu : 1 80 01 75 123 456 60", NIR),
        ("NIR 295109912611193", NIR),
        ("Appelez Marc au 06 12 34 56 78", CONTACT),
        ("Appelez Marc au +33 6 12 34 56 78", CONTACT),
        ("Écrivez à jean.dupont@gmail.com", CONTACT),
        ("Contact : sophie.martin@acme.fr", CONTACT),  # a person at the company domain
    ],
)
def test_valid_personal_data_is_flagged(
    check: Callable[..., Decision], text: str, rule: str
) -> None:
    assert rule in rules_fired(check(text))


@pytest.mark.parametrize(
    "text",
    [
        "IBAN faux : FR76 3000 6000 0112 3456 7890 188",  # mod-97 fails
        "Référence 4111 1111 1111 1112",  # Luhn fails
        "Dossier 1 80 01 75 123 456 61",  # NIR key fails
        "Notre SIRET : 732 829 320 00074",  # public business identifier (Luhn-valid!)
        "SIREN 732 829 320",
        "Candidatures à recrutement@acme.fr",  # listed public mailbox
        "Send your CV to jobs@acme.com",  # role mailbox on a company domain
        "Hotline +33 1 86 95 00 00",  # listed hotline
        "Numéro vert 0 800 123 456",
        "Rendez-vous le 06/12 à 14h",
        "Numéro de lot 2024 0612 3456 78",  # a phone-looking slice of a longer number
        "Montant : 1 234 567 890 euros",
        "Meeting ID 812 3456 7890",
    ],
)
def test_look_alikes_and_public_business_data_are_not_flagged(
    check: Callable[..., Decision], text: str
) -> None:
    assert check(text).verdict == "allow", check(text).findings


def test_siret_that_looks_like_a_card_is_not_a_card(check: Callable[..., Decision]) -> None:
    # 14 digits, Luhn-valid and Diners-like prefix, but a valid SIRET: public.
    from stdnum import luhn
    from stdnum.fr import siret

    siren = "36252187" + luhn.calc_check_digit("36252187")
    nic = "0001" + luhn.calc_check_digit(siren + "0001")
    number = siren + nic
    assert siret.is_valid(number) and luhn.is_valid(number)
    assert check(f"Facture émise par le SIRET {number}").verdict == "allow"


def test_matched_text_is_redacted(check: Callable[..., Decision]) -> None:
    d = check(
        "IBAN FR76 3000 6000 0112 3456 7890 189, carte 4111 1111 1111 1111, "
        "tel 06 12 34 56 78, mail jean.dupont@gmail.com"
    )
    matched = {f.matched for f in d.findings}
    assert "FR76 **** **** **** **** ***0 189" in matched
    assert "**** **** **** 1111" in matched
    assert "06 1* ** ** 78" in matched
    assert "j***@gmail.com" in matched
    for f in d.findings:
        assert "3456" not in f.message["fr"] and "dupont" not in f.message["en"]


def test_redact_keeps_layout() -> None:
    assert redact("FR76 3000 6000 0112", 4, 4) == "FR76 **** **** 0112"
