"""Rebuild the README's speed table from bench-results/*.json (what `make bench` writes).

The table sits between two markers in README.md, so rerunning this after `make bench` replaces only it.

usage: python -m tests.benchmarks.speed_table [--results DIR] [--readme README.md] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.benchmarks.results import REPO, RESULTS_DIR

BEGIN = "<!-- speed-table:begin (python -m tests.benchmarks.speed_table) -->"
END = "<!-- speed-table:end -->"
ORDER = ("ingest", "start", "server", "watch", "load_runs", "query", "tui", "scenes", "scale")


def _value(x: float, unit: str) -> str:
    return f"{x:,.0f} {unit}" if abs(x) >= 100 else f"{x:.3g} {unit}"


def render(results_dir: Path) -> str:
    """A markdown table, one line per figure, benchmarks in a fixed order then any others by name."""
    files = {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    lines = ["| benchmark | figure | align-track | baseline | ratio | repeats | corpus |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        for f in files[name]["figures"]:
            lines.append(f"| `bench_{name}` | {f['figure']} | {_value(f['align_track'], f['unit'])} | "
                         f"{f['baseline_name']}: {_value(f['baseline'], f['unit'])} | {f['ratio']:.2f}x | "
                         f"best of {f['repeats']} | {f['corpus']} |")
    scalars = {n: {k: v for k, v in files[n].get("notes", {}).items() if not isinstance(v, (dict, list))}
               for n in names}
    notes = [f"- `bench_{n}`: " + ", ".join(f"{k} {_note(v)}" for k, v in scalars[n].items())
             for n in names if scalars[n]]
    if notes:  # figures with no baseline to divide by (goals such as latency, idle CPU, memory)
        lines += ["", "Other figures of the same runs:", "", *notes]
    dates = sorted({files[n]["measured_at"][:10] for n in names})
    cpus = sorted({str(files[n]["machine"]["cpus"]) for n in names})
    lines.append("")
    lines.append(f"Measured {', '.join(dates) or 'never'} on {'/'.join(cpus) or '?'} CPUs; ratio = baseline / "
                 "align-track (above 1: align-track is faster).")
    return "\n".join(lines)


def _note(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``; a ValueError without markers."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README has no speed-table markers ({BEGIN} ... {END})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README's table is out of date")
    args = parser.parse_args()
    old = args.readme.read_text()
    new = replace_table(old, render(args.results))
    if args.check:
        sys.exit(0 if new == old else f"{args.readme}: speed table out of date; run python -m {__spec__.name}")
    args.readme.write_text(new)
    print(f"{args.readme}: speed table rebuilt from {args.results}")


if __name__ == "__main__":
    main()
