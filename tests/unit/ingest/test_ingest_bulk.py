from __future__ import annotations

from pathlib import Path

import pytest

from portevoix.contracts.ingest import Rejection, parse_ingest_event
from portevoix_ingest.domain.bulk import (
    count_lines,
    detect_format,
    iter_records,
    parse_bool,
    parse_handles,
    records_from_text,
)

JSONL = (
    '{"type":"like","event_id":"l1","network":"x","post_id":"1","actor":"bob",'
    '"occurred_at":"2026-11-21T08:00:00Z"}\n'
    "\n"
    "{not json\n"
    "[1, 2]\n"
    '{"type":"click","event_id":"c1","network":"x","post_id":"1","actor":"a",'
    '"occurred_at":"2026-11-21T08:00:00Z"}\n'
)

CSV = (
    "\ufefftype;ambassador_id;display_name;team;handles;consent;event_id\n"
    'ambassador;emp-1;Alice Martin;RH;"linkedin:urn:li:person:Abc;x:AliceM";oui;\n'
    'ambassador;emp-2;"Bob ""B"" Dupont";IT;"{""mastodon"": ""bob@piaille.fr""}";0;\n'
    "ambassador;emp-3;Carol;IT;x:carol;peut-être;\n"
    "ambassador;emp-4;Dan;IT;pas-de-deux-points;1;\n"
    ";;;;;;\n"
    "ambassador;emp-5;Eve;;x:eve;NON;amb-evt-5\n"
)


def test_jsonl_records_and_rejections(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(JSONL, encoding="utf-8")
    records = list(iter_records(path))
    assert [n for n, _ in records] == [1, 3, 4, 5]  # blank line 2 skipped
    assert isinstance(records[0][1], dict)
    assert parse_ingest_event(records[0][1]).type == "like"
    bad_json, not_object = records[1][1], records[2][1]
    assert isinstance(bad_json, Rejection) and bad_json.rule == "json_invalid"
    assert isinstance(not_object, Rejection) and not_object.rule == "json_object"
    # Resume after line 3: only lines 4 and 5.
    assert [n for n, _ in iter_records(path, start_line=3)] == [4, 5]
    assert count_lines(path) == 5


def test_csv_mapping(tmp_path: Path) -> None:
    path = tmp_path / "ambassadors.csv"
    path.write_text(CSV, encoding="utf-8")
    records = dict(iter_records(path))
    assert sorted(records) == [2, 3, 4, 5, 7]
    alice = records[2]
    assert alice == {
        "type": "ambassador",
        "ambassador_id": "emp-1",
        "display_name": "Alice Martin",
        "team": "RH",
        "handles": {"linkedin": "urn:li:person:Abc", "x": "AliceM"},
        "consent": True,
    }
    assert parse_ingest_event(alice).type == "ambassador"
    bob = records[3]
    assert isinstance(bob, dict)
    assert bob["display_name"] == 'Bob "B" Dupont'
    assert bob["handles"] == {"mastodon": "bob@piaille.fr"}
    assert bob["consent"] is False
    carol, dan = records[4], records[5]
    assert isinstance(carol, Rejection) and (carol.field, carol.rule) == ("consent", "bool_parsing")
    assert isinstance(dan, Rejection) and (dan.field, dan.rule) == ("handles", "handles_format")
    eve = records[7]
    assert isinstance(eve, dict)
    assert "team" not in eve  # empty cell -> missing -> the contract names the field
    assert eve["event_id"] == "amb-evt-5"
    assert [n for n, _ in iter_records(path, start_line=4)] == [5, 7]


def test_csv_multiline_cells_keep_line_numbers() -> None:
    text = (
        "type,event_id,network,post_id,author,text,kind,occurred_at,followers\n"
        'post,p1,linkedin,urn:li:share:1,alice,"Ligne 1\r\nLigne 2",original,'
        "2026-11-21T08:00:00Z,1 234\n"
        "post,p2,linkedin,urn:li:share:2,alice,Texte,original,2026-11-21T08:00:00Z,beaucoup\n"
        "post,p3,x,3,alice,a,original,2026-11-21T08:00:00Z,1,extra\n"
    )
    records = records_from_text(text, "csv")
    assert [n for n, _ in records] == [2, 4, 5]
    first = records[0][1]
    assert isinstance(first, dict)
    assert first["text"] == "Ligne 1\r\nLigne 2"
    assert first["followers"] == 1234
    assert parse_ingest_event(first).type == "post"
    second = records[1][1]
    assert isinstance(second, Rejection) and second.field == "followers"
    third = records[2][1]
    assert isinstance(third, Rejection) and third.rule == "too_many_cells"
    assert [n for n, _ in records_from_text(text, "csv", start_line=2)] == [4, 5]


def test_csv_duplicate_header() -> None:
    [(line, rej)] = records_from_text("type,type\npost,post\n", "csv")
    assert line == 1 and isinstance(rej, Rejection) and rej.rule == "duplicate_column"


def test_unknown_csv_column_is_left_to_the_contract() -> None:
    [(_, rec)] = records_from_text("type,colour\nlike,blue\n", "csv")
    assert rec == {"type": "like", "colour": "blue"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("Oui", True), ("FALSE", False), ("0", False), ("non", False)],
)
def test_parse_bool(value: str, expected: bool) -> None:
    assert parse_bool(value) is expected


def test_parse_bool_unknown() -> None:
    assert parse_bool("peut-être") is None


def test_parse_handles() -> None:
    assert parse_handles("linkedin:alice; x:alice2") == {"linkedin": "alice", "x": "alice2"}
    assert parse_handles('{"x": "a"}') == {"x": "a"}
    assert isinstance(parse_handles('{"x": 1}'), Rejection)
    assert isinstance(parse_handles("{oops"), Rejection)


def test_detect_format() -> None:
    assert detect_format("a.JSONL") == "jsonl"
    assert detect_format("a.csv") == "csv"
    with pytest.raises(ValueError):
        detect_format("a.xlsx")
