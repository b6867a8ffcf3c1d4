import json
from pathlib import Path

from typer.testing import CliRunner

from portevoix_moderation.charter_cli import charter_app

from .helpers import MINI_HEADER, rule

runner = CliRunner()


def _write(tmp_path: Path, rules: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(MINI_HEADER + "rules:\n" + "\n".join("  " + x for x in rules.splitlines()))
    return p


def test_test_command_passes_on_the_default_charter() -> None:
    result = runner.invoke(charter_app, ["test"])
    assert result.exit_code == 0, result.output
    assert "examples passed" in result.output and "responsabilite.insult" in result.output


def test_test_command_fails_on_a_wrong_example(tmp_path: Path) -> None:
    p = _write(tmp_path, rule(extra="must_match: [bar]\nmust_not_match: [foo, baz]\n"))
    result = runner.invoke(charter_app, ["test", str(p)])
    assert result.exit_code == 1
    assert "did not fire on: 'bar'" in result.output and "fired on: 'foo'" in result.output


def test_test_command_exits_2_on_a_broken_charter(tmp_path: Path) -> None:
    p = _write(tmp_path, rule(conditions="{detector: nope}"))
    result = runner.invoke(charter_app, ["test", str(p)])
    assert result.exit_code == 2
    assert "unknown detector 'nope'" in result.output and "rule 'r1'" in result.output


def test_check_outputs_one_json_line_per_input(tmp_path: Path) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text(
        json.dumps({"id": "a", "text": "Quel connard"})
        + "\n"
        + json.dumps({"id": "b", "text": "Notre gamme", "kind": "relay", "network": "linkedin"})
        + "\n"
        + json.dumps({"id": "c", "text": "Bonjour à tous", "lang": "fr"})
        + "\n",
        encoding="utf-8",
    )
    result = runner.invoke(charter_app, ["check", "--jsonl", str(posts)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [(x["id"], x["verdict"]) for x in lines] == [
        ("a", "block"),
        ("b", "block"),
        ("c", "allow"),
    ]
    f = lines[0]["findings"][0]
    assert {"rule", "principle", "verdict", "message", "remediation", "span", "matched"} <= set(f)
    assert set(f["message"]) == {"fr", "en"}


def test_check_reports_malformed_lines_and_keeps_going() -> None:
    data = "\n".join(
        [
            json.dumps({"id": 1, "text": "Bonjour"}),
            "{not json",
            json.dumps({"id": 2}),
            json.dumps({"id": 3, "text": "x", "kind": "story"}),
            json.dumps(["a"]),
            json.dumps({"id": 4, "text": "Quel con"}),
        ]
    )
    result = runner.invoke(charter_app, ["check", "--jsonl", "-"], input=data)
    assert result.exit_code == 1
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x.get("id") for x in lines] == [1, None, 2, 3, None, 4]
    assert ["error" in x for x in lines] == [False, True, True, True, True, False]
    assert lines[-1]["verdict"] == "block"


def test_check_with_a_custom_and_a_broken_charter(tmp_path: Path) -> None:
    good = _write(tmp_path, rule())
    result = runner.invoke(
        charter_app,
        ["check", "--charter", str(good), "--jsonl", "-"],
        input='{"id": "x", "text": "foo"}\n',
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["verdict"] == "block"
    bad = _write(tmp_path, rule(verdict="ban"), "bad.yaml")
    result = runner.invoke(charter_app, ["check", "--charter", str(bad), "--jsonl", "-"], input="")
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "verdict" in result.output
