"""Two or more builds of the server, measured in one interleaved run on this machine.

Each *side* is a checkout with its own ``.venv`` (and optional ``bench/run.py`` flags, such
as ``--server-env KEY=VALUE``). Every round runs every preset once on every side, the
sides' order rotating from round to round, so a machine that gets busier or quieter
during the run weighs on all sides alike. The table gives each figure's median over the
rounds and its change against the first side; a change for the worse beyond
``--tolerance`` percent is marked.

    .venv/bin/python bench/before_after.py --rounds 3 \\
        --side before=/tmp/pichat-old --side after=. \\
        --side "after, public sink=.:--sink public"

A side is ``NAME=DIR`` or ``NAME=DIR:FLAGS`` (FLAGS split like a shell line). The build
in DIR must have ``.venv`` with the project installed (``make .venv/.installed``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (preset, result key, label, True when higher is better)
FIGURES: list[tuple[str, str, str, bool]] = [
    ("stream200", "delivered_pct", "stream200 delivered %", True),
    ("stream200", "ttft_p99_ms", "stream200 TTFT p99 ms", False),
    ("stream200", "gap_p99_ms", "stream200 gap p99 ms", False),
    ("rate0", "tokens_s", "rate 0 tokens/s", True),
    ("idle10k", "kib_per_connection", "idle KiB per connection", False),
    ("ttft", "added_ttft_p50_ms", "one user added TTFT p50 ms", False),
    ("ttft", "added_ttft_p99_ms", "one user added TTFT p99 ms", False),
]


@dataclass
class Side:
    name: str
    directory: Path
    flags: list[str]

    @classmethod
    def parse(cls, text: str) -> Side:
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest:
            raise argparse.ArgumentTypeError(f"a side is NAME=DIR[:FLAGS], not {text!r}")
        directory, _, flags = rest.partition(":")
        path = Path(directory).resolve()
        if not (path / ".venv" / "bin" / "python").exists():
            raise argparse.ArgumentTypeError(f"{path} has no .venv/bin/python")
        return cls(name, path, shlex.split(flags))


def run_once(side: Side, preset: str) -> dict[str, Any]:
    """One run of ``preset`` on ``side``: its result row, from the driver's JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [
            str(side.directory / ".venv" / "bin" / "python"),
            str(side.directory / "bench" / "run.py"),
            "--preset",
            preset,
            "--repeat",
            "1",
            "--json",
            out.name,
            *side.flags,
        ]
        print(f"# {side.name}: {preset}", file=sys.stderr, flush=True)
        subprocess.run(argv, cwd=side.directory, check=True, stdout=subprocess.DEVNULL)
        rows: list[dict[str, Any]] = json.loads(Path(out.name).read_text())
    return rows[0]


def table(
    sides: list[Side], results: dict[tuple[str, str], list[dict[str, Any]]], tol: float
) -> str:
    head = ["figure", *(side.name for side in sides)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for preset, key, label, higher in FIGURES:
        medians = []
        for side in sides:
            values = [row[key] for row in results.get((side.name, preset), []) if row.get(key)]
            medians.append(statistics.median(values) if values else None)
        cells = [label]
        base = medians[0]
        for index, value in enumerate(medians):
            if value is None:
                cells.append("-")
                continue
            cell = f"{value:,.1f}"
            if index and base:
                change = (value - base) / base * 100
                worse = -change if higher else change
                mark = " **worse**" if worse > tol else ""
                cell += f" ({change:+.1f}%{mark})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--side", type=Side.parse, action="append", required=True, help="NAME=DIR[:FLAGS]"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each preset per side")
    parser.add_argument("--tolerance", type=float, default=5.0, help="percent, to mark worse")
    parser.add_argument("--only", help="a comma-separated subset of the presets")
    parser.add_argument("--json", help="write every run's rows here")
    args = parser.parse_args(argv)
    sides: list[Side] = args.side
    presets = list(dict.fromkeys(preset for preset, *_ in FIGURES))
    if args.only:
        presets = [preset for preset in presets if preset in args.only.split(",")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        order = sides[round_ % len(sides) :] + sides[: round_ % len(sides)]
        for preset in presets:
            for side in order:
                results.setdefault((side.name, preset), []).append(run_once(side, preset))
    if args.json:
        rows = [{"side": s, "preset": p, "runs": r} for (s, p), r in results.items()]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(sides, results, args.tolerance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
