"""Generated blocks of the README (configuration table, route table), between HTML comments."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def replace_block(readme: str, start: str, end: str, content: str) -> str:
    a, b = readme.index(start) + len(start), readme.index(end)
    return readme[:a] + "\n" + content + "\n" + readme[b:]


def main(write_into: Callable[[str], str], table: Callable[[], str]) -> None:
    """`--write README.md` refreshes the block in place; no argument prints the table."""
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(write_into(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(table())
