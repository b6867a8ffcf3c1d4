"""The README's route table, generated from the application (`python -m portevoix_api.routes_doc`);
a test checks the README lists every route."""

from __future__ import annotations

from portevoix.readme_blocks import main, replace_block
from portevoix_api.app import create_app
from portevoix_api.settings import ApiSettings

START, END = "<!-- route-table:start -->", "<!-- route-table:end -->"


def table() -> str:
    spec = create_app(ApiSettings(admin_token="doc")).openapi()
    lines = ["| method | route | tag | what |", "|---|---|---|---|"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            tag = (op.get("tags") or [""])[0]
            summary = str(op.get("summary", "")).replace("|", "\\|")
            lines.append(f"| {method.upper()} | `{path}` | {tag} | {summary} |")
    return "\n".join(lines)


def write_into(readme: str) -> str:
    return replace_block(readme, START, END, table())


if __name__ == "__main__":
    main(write_into, table)
