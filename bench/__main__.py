"""`make bench`: run every `bench/*_bench.py` in its own process, collect their JSON, write
`bench/results.json` and print a Markdown table (also written to `bench/results.md`).

Each bench prints one JSON object: {"<area>": {"results": {...}, "targets": {name: [op, n]},
"notes": "..."}} (a flat {"<area>": {metric: value}} is accepted too).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _run(script: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        timeout=900,
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        return {script.stem: {"error": proc.stderr[-2000:], "seconds": took}}
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not last:
        return {script.stem: {"error": "no JSON on stdout", "seconds": took}}
    data: dict[str, Any] = json.loads(last[-1])
    for value in data.values():
        if isinstance(value, dict):
            value.setdefault("seconds", round(took, 1))
    return data


def _check(value: float, target: list[Any]) -> str:
    op, bound = target
    ok = value >= bound if op == ">=" else value <= bound
    return f"{'✅' if ok else '❌'} {op} {bound:g}"


def table(results: dict[str, Any]) -> str:
    lines = ["| area | metric | value | target |", "|---|---|---|---|"]
    for area, body in sorted(results.items()):
        if area.startswith("_") or not isinstance(body, dict):
            continue
        if "error" in body:
            lines.append(f"| {area} | error | {body['error'].splitlines()[-1][:80]} | |")
            continue
        values = body.get("results", {k: v for k, v in body.items() if k != "seconds"})
        targets = body.get("targets", {})
        for name, value in values.items():
            if isinstance(value, int | float):
                shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
                target = _check(float(value), targets[name]) if name in targets else ""
                lines.append(f"| {area} | {name} | {shown} | {target} |")
    return "\n".join(lines)


def main() -> None:
    only = set(sys.argv[1:])
    scripts = sorted(HERE.glob("*_bench.py"))
    results: dict[str, Any] = {
        "_machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    }
    for script in scripts:
        if only and script.stem.removesuffix("_bench") not in only:
            continue
        print(f"running {script.name}…", file=sys.stderr, flush=True)
        results.update(_run(script))
    (HERE / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    md = table(results)
    (HERE / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
