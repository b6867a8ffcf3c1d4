from hypothesis import given
from hypothesis import strategies as st

from portevoix_moderation.charter.text import content_hash, fold, skeleton, skeleton_of_entry


def test_fold_lowercases_and_strips_accents_keeping_length() -> None:
    assert fold("Équipe À Noël Œuvre") == "equipe a noel ouvre"
    assert fold("l’équipe") == "l'equipe"


@given(st.text())
def test_fold_preserves_length(text: str) -> None:
    assert len(fold(text)) == len(text)


def test_skeleton_undoes_obfuscation() -> None:
    assert skeleton(fold("c.o.n")).text == "con"
    assert skeleton(fold("C-O-N-N-A-R-D")).text == "conard"
    assert skeleton(fold("c0nnnn4rd")).text == "conard"
    assert skeleton(fold("i d i o t")).text == "idiot"
    assert skeleton(fold("con\u00adcours")).text == "concours"  # soft hyphen removed


def test_skeleton_maps_back_to_original_offsets() -> None:
    text = "Quel CONNNNARD de fournisseur"
    sk = skeleton(fold(text))
    start = sk.text.index("conard")
    s, e = sk.to_source(start, start + len("conard"))
    assert text[s:e] == "CONNNNARD"


@given(st.text(alphabet="ab .-0@ \u00ad", max_size=40))
def test_skeleton_spans_stay_inside_the_text(text: str) -> None:
    sk = skeleton(fold(text))
    for i in range(len(sk.text)):
        s, e = sk.to_source(i, i + 1)
        assert 0 <= s < e <= len(text)


def test_entry_normalisation_matches_post_normalisation() -> None:
    assert skeleton_of_entry("Nique ta sœur") == "nique ta sour"
    assert skeleton_of_entry("  ferme   ta gueule ") == "ferme ta gueule"


def test_content_hash_ignores_whitespace_and_unicode_form() -> None:
    assert content_hash("Bonjour  à tous\n") == content_hash("Bonjour a\u0300 tous")
    assert content_hash("a") != content_hash("b")
