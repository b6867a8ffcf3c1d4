from collections.abc import Callable

from portevoix_moderation.charter import CharterEngine, Decision

from .helpers import mini_charter, post, rule, rules_fired


def test_registration_and_consent(check: Callable[..., Decision]) -> None:
    assert rules_fired(check("Bonne journée", author_registered=False)) == {
        "sincerite.unregistered-author"
    }
    assert check("Bonne journée", author_consenting=False).verdict == "review"
    assert check("Bonne journée").verdict == "allow"


def test_relays_need_a_disclosure_tag(check: Callable[..., Decision]) -> None:
    assert check("Découvrez notre gamme", kind="relay").verdict == "block"
    for tag in ("#employee", "#Collaborateur", "#collaboratrice", "#salarié", "#SALARIE", "#ad"):
        assert check(f"Découvrez notre gamme {tag}", kind="relay").verdict == "allow", tag
    assert check("Découvrez notre gamme", kind="original").verdict == "allow"
    assert check("Découvrez notre gamme #advert", kind="relay").verdict == "block"  # not #ad


def test_disclosure_tags_are_configurable() -> None:
    charter = mini_charter(
        rule(conditions="{detector: missing_disclosure}"),
        header="""\
version: "t"
name: t
languages: [fr]
organisation: {disclosure_tags: ["#jybosse"]}
""",
    )
    engine = CharterEngine(charter)
    assert engine.check(post("Notre gamme #jybosse")).verdict == "allow"
    assert engine.check(post("Notre gamme #employee")).verdict == "block"


def test_language_not_allowed(check: Callable[..., Decision]) -> None:
    d = check("Wir freuen uns sehr, unsere neue Niederlassung in München zu eröffnen.")
    assert rules_fired(d) == {"circonspection.language"} and d.lang == "de"
    assert "(de)" in d.findings[0].message["fr"]
    fr = check("Nous sommes ravis d'ouvrir notre nouvelle agence à Munich, on recrute !")
    assert fr.verdict == "allow" and fr.lang == "fr"
    en = check("We are thrilled to open our new office in Munich and we are hiring.")
    assert en.verdict == "allow" and en.lang == "en"
    assert check("Danke schön !").verdict == "allow"  # too short to judge


def test_declared_language_is_reported_but_still_checked(check: Callable[..., Decision]) -> None:
    d = check(
        "Estamos muy contentos de anunciar la apertura de nuestra oficina en Madrid.", lang="fr"
    )
    assert d.lang == "fr"
    assert "circonspection.language" in rules_fired(d)
