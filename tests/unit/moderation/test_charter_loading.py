from pathlib import Path

import pytest

from portevoix_moderation.charter import Charter, CharterError, charter_json_schema, load_charter
from portevoix_moderation.charter.model import Principle

from .helpers import MINI_HEADER, mini_charter, rule


def test_default_charter_covers_the_nine_principles_in_fr_and_en(charter: Charter) -> None:
    assert charter.version and set(charter.languages) == {"fr", "en"}
    assert {r.principle for r in charter.rules} == set(Principle)
    for r in charter.rules:
        assert r.message.fr and r.message.en and r.remediation.fr and r.remediation.en
        assert r.must_match, f"{r.id} has no must_match example"
        assert r.family
    assert any(r.shadow for r in charter.rules)


def test_json_schema_is_exported() -> None:
    schema = charter_json_schema()
    assert schema["type"] == "object"
    assert {"version", "rules", "languages"} <= set(schema["properties"])


def test_load_from_path_and_from_text(tmp_path: Path) -> None:
    text = MINI_HEADER + "rules:\n" + "\n".join("  " + line for line in rule().splitlines())
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    assert load_charter(p).version == "t-1"
    assert load_charter(str(p)).version == "t-1"
    assert load_charter(text).version == "t-1"


def test_numeric_version_is_read_as_a_string() -> None:
    c = mini_charter(rule(), header="version: 1.2\nname: t\nlanguages: [fr]\n")
    assert c.version == "1.2"


def test_principles_may_be_written_with_accents() -> None:
    assert mini_charter(rule(principle="utilité")).rules[0].principle == "utilite"


@pytest.mark.parametrize(
    ("rules_yaml", "expected"),
    [
        (
            rule(conditions="{detector: nope}"),
            r"rule 'r1'.*conditions\.detector: unknown detector 'nope'",
        ),
        (rule(conditions="{detector: regex, params: {pattern: '(('}}"), r"rule 'r1'.*bad regex"),
        (rule(principle="bonheur"), r"rule 'r1'.*principle.*unknown principle 'bonheur'"),
        (rule(verdict="ban"), r"rule 'r1'.*verdict"),
        (
            rule(conditions="{all: [{detector: regex, params: {pattern: a, colour: red}}]}"),
            r"rule 'r1'.*conditions\.all\[0\]\.params\.colour",
        ),
        (
            rule(conditions="{detector: lexicon, params: {lexicons: [ghost]}}"),
            r"unknown lexicon 'ghost'",
        ),
        (rule() + rule(), r"rule 'r1'.*duplicate"),
        (rule(conditions="{any: []}"), r"rule 'r1'"),
        (rule(conditions="{detector: regex, all: []}"), r"exactly one of"),
        (
            rule(extra="valid_from: 2027-01-01\nvalid_until: 2026-01-01\n"),
            r"rule 'r1'.*valid_until must be after valid_from",
        ),
        (
            rule().replace('"m {match}"', '"m {matc}"', 1),
            r"rule 'r1'.*message\.fr: unknown placeholder \{matc\}",
        ),
        (rule(extra="colour: red\n"), r"rule 'r1'.*colour"),
    ],
)
def test_broken_charters_raise_precise_errors(rules_yaml: str, expected: str) -> None:
    with pytest.raises(CharterError, match=expected):
        mini_charter(rules_yaml)


def test_broken_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nname: x\nlanguages: [fr]\nrules: [\n", encoding="utf-8")
    with pytest.raises(CharterError, match=r"bad\.yaml: invalid YAML at line"):
        load_charter(bad)
    with pytest.raises(CharterError, match=r"missing\.yaml: cannot read"):
        load_charter(tmp_path / "missing.yaml")
    with pytest.raises(CharterError, match="mapping"):
        load_charter("- just\n- a list\n")
    with pytest.raises(CharterError, match="rules"):
        load_charter("version: '1'\nname: x\nlanguages: [fr]\n")


def test_missing_lexicon_file_is_reported() -> None:
    header = MINI_HEADER + "lexicons:\n  w: {files: [nowhere.txt]}\n"
    with pytest.raises(CharterError, match=r"rule 'r1'.*nowhere\.txt"):
        mini_charter(rule(conditions="{detector: lexicon, params: {lexicons: [w]}}"), header)


def test_bad_hotline_is_reported() -> None:
    header = MINI_HEADER + "organisation: {hotlines: ['not a number']}\n"
    with pytest.raises(CharterError, match="hotlines"):
        mini_charter(rule(conditions="{detector: personal_data, params: {kinds: [phone]}}"), header)
