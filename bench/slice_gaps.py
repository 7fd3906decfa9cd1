"""Where does one configuration gain over another? Per-group test metrics from the runs' own
``slices.csv`` (mean over each configuration's seeds), side by side, with the difference.

    python bench/slice_gaps.py "docs/results/runs/sasrec_text_s*" "docs/results/runs/sasrec_s*" \
        --dimension item_popularity --metric ndcg@10 > docs/results/next_item_text_slices.md

A glob in quotes is expanded here, so each side is one configuration's seeds. Nothing is
re-trained; the numbers are the slices the runs wrote when they tested.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import pandas as pd


def slices(pattern: str, dimension: str, metric: str) -> tuple[pd.DataFrame, list[str]]:
    """Each group's size and its metric in every run matching ``pattern`` (columns: run names)."""
    folders = sorted(Path(p) for p in glob.glob(pattern) if (Path(p) / "slices.csv").is_file())
    if not folders:
        sys.exit(f"no run folder with slices.csv matches {pattern!r}")
    tables = []
    for folder in folders:
        table = pd.read_csv(folder / "slices.csv", dtype={"group": str})
        table = table[table["dimension"] == dimension].set_index("group")
        if table.empty or metric not in table:
            sys.exit(f"{folder}/slices.csv has no {metric} by {dimension}")
        tables.append(table[["n", metric]].rename(columns={metric: folder.name}))
    sizes = {tuple(t["n"]) for t in tables}
    if len(sizes) != 1:
        sys.exit(f"the runs of {pattern!r} test different groups (another split?)")
    merged = pd.concat([tables[0][["n"]], *[t.drop(columns="n") for t in tables]], axis=1)
    return merged, [f.name for f in folders]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", help="run folders of one configuration (a quoted glob)")
    parser.add_argument("second", help="run folders of the configuration to compare with")
    parser.add_argument("--dimension", default="item_popularity", help="e.g. activity, gender")
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    first, first_runs = slices(args.first, args.dimension, args.metric)
    second, second_runs = slices(args.second, args.dimension, args.metric)
    if not first["n"].equals(second["n"]):
        sys.exit("the two configurations test different groups (another split?)")
    a, b = first[first_runs].mean(axis=1), second[second_runs].mean(axis=1)
    print(f"# {args.metric} by {args.dimension}\n")
    print(f"`python bench/slice_gaps.py \"{args.first}\" \"{args.second}\" --dimension "
          f"{args.dimension} --metric {args.metric}`: mean over {len(first_runs)} and "
          f"{len(second_runs)} seeds of each run's `slices.csv`.\n")  # fmt: skip
    print(f"| {args.dimension} | test users | first | second | first − second | relative |")
    print("|---|---|---|---|---|---|")
    for group in first.index:
        gap = a[group] - b[group]
        relative = f"{gap / b[group]:+.0%}" if b[group] else "–"
        print(f"| {group} | {int(first.loc[group, 'n'])} | {a[group]:.4f} | {b[group]:.4f} | "
              f"{gap:+.4f} | {relative} |")  # fmt: skip
    print(f"\nfirst: {', '.join(first_runs)}; second: {', '.join(second_runs)}")


if __name__ == "__main__":
    main()
