"""Break a benchmark run's Plan-and-Budget results down by what the planner did.

For each method that plans, it prints the accuracy and tokens on questions whose plan was used
and on questions that fell back to one step (the whole question, as with a global budget). Beside
each group it prints vanilla's accuracy on the same questions, so a hard group shows as hard for
both. It also prints the planner's share of all tokens and the questions where the method and
vanilla disagree.
It reads only a run's `results/NAME.jsonl`; nothing is generated.

Usage:
    python benchmarks/analyze_plans.py benchmarks/results/gsm8k-qwen2.5-coder-1.5b-instruct-q4_k_m.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pnb_dspy.evaluation import latest_records, read_results


def read_latest(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Return the scored records of a results file by method and question id, the last one per pair."""
    by_method: dict[str, dict[str, dict[str, Any]]] = {}
    for (question_id, method), record in latest_records(read_results(path)).items():
        if record.get("status") == "ok":
            by_method.setdefault(method, {})[question_id] = record
    return by_method


def describe(records: list[dict[str, Any]]) -> str:
    if not records:
        return "no questions"
    correct = sum(1 for record in records if record["correct"])
    tokens = sum(record["tokens"].get("total", 0) for record in records) / len(records)
    return f"{correct}/{len(records)} correct ({100.0 * correct / len(records):.0f}%), {tokens:.0f} tokens on average"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="a run's results/NAME.jsonl")
    args = parser.parse_args(argv)
    if not args.records.is_file():
        parser.error(f"records file not found: {str(args.records)!r}; pass a results/NAME.jsonl written by run_benchmark.py")

    by_method = read_latest(args.records)
    vanilla = by_method.get("vanilla", {})
    for method, records in by_method.items():
        if not any("planner" in record["tokens"] for record in records.values()):
            continue
        planned = [record for record in records.values() if not record.get("plan_fallback")]
        fell_back = [record for record in records.values() if record.get("plan_fallback")]
        planner = sum(record["tokens"].get("planner", 0) for record in records.values())
        total = sum(record["tokens"].get("total", 0) for record in records.values())
        print(f"{method}: {len(records)} scored questions")
        for label, group in (("plan used", planned), ("one-step fallback", fell_back)):
            same_vanilla = [vanilla[record["id"]] for record in group if record["id"] in vanilla]
            line = f"  {label + ':':<19}{describe(group)}"
            if same_vanilla:
                line += f"; vanilla on these: {describe(same_vanilla)}"
            print(line)
        print(f"  planner share of all tokens: {planner / total:.0%}" if total else "  no tokens counted")
        shared = [question_id for question_id in records if question_id in vanilla]
        if shared:
            gained = sum(1 for question_id in shared if records[question_id]["correct"] and not vanilla[question_id]["correct"])
            lost = sum(1 for question_id in shared if vanilla[question_id]["correct"] and not records[question_id]["correct"])
            print(f"  against vanilla on {len(shared)} shared questions: right where vanilla was wrong {gained}, wrong where vanilla was right {lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
