"""Targets, the Markdown result page and the accuracy-against-tokens plot of a benchmark run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pnb_dspy.evaluation import latest_records, read_results

PNB_METHODS = ("pnb", "pnb-stepwise", "program")

TARGETS = {
    "e3_vs_vanilla": "E³ (all tokens) at least 1.4 times vanilla's",
    "e3_vs_global": "E³ (all tokens) above the global budget's",
    "accuracy": "accuracy no more than 2 points below vanilla",
    "tokens": "at least 30% fewer tokens than vanilla",
    "overhead": "framework overhead under 3% of wall time",
    "speed": "embedded speed at least 0.95 of raw llama-cpp-python",
}


def _target_row(key: str, method: str, met: bool | None, measured: str) -> dict[str, Any]:
    return {"target": TARGETS[key], "method": method, "met": met, "measured": measured}


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Return one row per target and Plan-and-Budget method: met, missed or not measured."""
    summaries = report["summaries"]
    vanilla = summaries.get("vanilla")
    global_budget = summaries.get("global-budget")
    rows = []
    for method in PNB_METHODS:
        pnb = summaries.get(method)
        if pnb is None or vanilla is None:
            continue
        if vanilla["e3"]:
            ratio = pnb["e3"] / vanilla["e3"]
            rows.append(_target_row("e3_vs_vanilla", method, ratio >= 1.4, f"{pnb['e3']:.2f} vs {vanilla['e3']:.2f} ({ratio:.2f}x)"))
        else:
            rows.append(_target_row("e3_vs_vanilla", method, None, f"no ratio: vanilla's E³ is 0 ({pnb['e3']:.2f} vs 0.00)"))
        if global_budget is not None:
            rows.append(
                _target_row("e3_vs_global", method, pnb["e3"] > global_budget["e3"], f"{pnb['e3']:.2f} vs {global_budget['e3']:.2f}")
            )
        difference = pnb["accuracy"] - vanilla["accuracy"]
        rows.append(
            _target_row("accuracy", method, difference >= -2.0, f"{pnb['accuracy']:.1f}% vs {vanilla['accuracy']:.1f}% ({difference:+.1f} points)")
        )
        if vanilla["avg_tokens"]:
            saving = 1 - pnb["avg_tokens"] / vanilla["avg_tokens"]
            change = f"{saving:.0%} fewer" if saving >= 0 else f"{-saving:.0%} more"
            rows.append(_target_row("tokens", method, saving >= 0.30, f"{pnb['avg_tokens']:.0f} vs {vanilla['avg_tokens']:.0f} ({change})"))
        else:
            rows.append(_target_row("tokens", method, None, "no ratio: vanilla scored no questions"))

    share = report["overhead"].get("share_outside_lm")
    rows.append(_target_row("overhead", "all", None if share is None else share < 0.03, "not measured" if share is None else f"{share:.2%}"))
    speed = report.get("speed")
    if speed:
        rows.append(
            _target_row(
                "speed",
                "embedded",
                speed["ratio"] >= 0.95,
                f"{speed['pnb_tokens_per_second']:.1f} vs {speed['raw_tokens_per_second']:.1f} tokens/s ({speed['ratio']:.3f})",
            )
        )
    else:
        rows.append(_target_row("speed", "embedded", None, "not measured (--speed-prompts 0, or the model is not a .gguf file)"))
    return rows


def read_records(path: Path, question_ids: list[str], methods: list[str]) -> list[dict[str, Any]]:
    """Return the records of a results file for these questions and methods, the last one per pair."""
    id_filter = set(question_ids)
    method_filter = set(methods)
    latest = latest_records(read_results(path))
    return [record for (question_id, method), record in latest.items() if question_id in id_filter and method in method_filter]


def by_level(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Return accuracy and average tokens per method and difficulty level, for scored records with a level."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        if record.get("level") is None or record.get("status") != "ok":
            continue
        groups.setdefault(record["method"], {}).setdefault(str(record["level"]), []).append(record)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method, levels in groups.items():
        table[method] = {}
        for level, rows in sorted(levels.items()):
            table[method][level] = {
                "questions": len(rows),
                "accuracy": 100.0 * sum(1 for row in rows if row["correct"]) / len(rows),
                "avg_tokens": sum(row["tokens"].get("total", 0) for row in rows) / len(rows),
            }
    return table


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Return the (name, tokens, accuracy) points no other point beats on both axes, by tokens."""
    front = []
    for name, tokens, accuracy in points:
        dominated = any(
            other_tokens <= tokens and other_accuracy >= accuracy and (other_tokens, other_accuracy) != (tokens, accuracy)
            for _, other_tokens, other_accuracy in points
        )
        if not dominated:
            front.append((name, tokens, accuracy))
    return sorted(front, key=lambda point: point[1])


def save_plot(report: dict[str, Any], path: Path) -> None:
    """Draw accuracy against average tokens per method, E³ at each point, and the Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(method, summary["avg_tokens"], summary["accuracy"]) for method, summary in report["summaries"].items()]
    all_tokens = [tokens for _, tokens, _ in points] or [0.0]
    all_accuracy = [accuracy for _, _, accuracy in points] or [0.0]
    x_span = max(max(all_tokens) - min(all_tokens), 1.0)
    # Methods at the same accuracy within 1% of the token range would draw one point over
    # another, so they share one point and one label, each with its own E³.
    groups: list[tuple[float, float, list[str]]] = []
    for method, tokens, accuracy in sorted(points, key=lambda point: (point[1], point[2])):
        for group in groups:
            if group[1] == accuracy and abs(group[0] - tokens) <= 0.01 * x_span:
                group[2].append(method)
                break
        else:
            groups.append((tokens, accuracy, [method]))

    figure, axes = plt.subplots(figsize=(7, 4.5))
    # Room on the right for the last point's label, and an accuracy axis that starts at 0 or above.
    axes.set_xlim(min(all_tokens) - 0.08 * x_span, max(all_tokens) + 0.35 * x_span)
    axes.set_ylim(max(0.0, min(all_accuracy) - 10.0), min(100.0, max(all_accuracy) + 10.0) if max(all_accuracy) > 0 else 10.0)
    figure.tight_layout()
    placed: list[tuple[float, float, float, float]] = []
    for tokens, accuracy, methods in groups:
        axes.scatter(tokens, accuracy, s=40)
        text = "\n".join(_plot_label(methods, report["summaries"]))
        # Positions and label sizes in points (8-point text: about 5 points a character, 10 a line).
        width = 5.0 * max(len(line) for line in text.split("\n"))
        height = 10.0 * (text.count("\n") + 1)
        x, y = axes.transData.transform((tokens, accuracy)) * 72.0 / figure.dpi
        # Try above, below, then further out, and take the first spot no earlier label covers.
        for dx, dy in ((6, 4), (6, -4 - height), (6, 8 + height), (6, -10 - 2 * height), (-6 - width, 4), (-6 - width, -4 - height)):
            box = (x + dx, y + dy, x + dx + width, y + dy + height)
            if not any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3] for other in placed):
                break
        placed.append(box)
        axes.annotate(text, (tokens, accuracy), textcoords="offset points", xytext=(dx, dy), fontsize=8)
    front = pareto_front(points)
    axes.plot([point[1] for point in front], [point[2] for point in front], linestyle="--", color="grey", label="Pareto front")
    axes.set_xlabel("average generated tokens per question (all stages)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"{report['name']}: {report['questions']} questions")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_label(methods: list[str], summaries: dict[str, Any]) -> list[str]:
    """Return the label lines of one plotted point: method names and E³, shared when the E³ is equal."""
    values = {round(summaries[method]["e3"], 2) for method in methods}
    if len(values) == 1:
        return [" = ".join(methods), f"E³={summaries[methods[0]]['e3']:.2f}"]
    return [f"{method} E³={summaries[method]['e3']:.2f}" for method in methods]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _status(met: bool | None) -> str:
    if met is None:
        return "not measured"
    return "met" if met else "missed"


def render_page(report: dict[str, Any]) -> str:
    """Return the Markdown result page of one run."""
    lines = [
        f"# {report['name']}",
        "",
        f"- model: `{report['model']}`",
        f"- data: `{report['data']}` ({_count(report['questions'], 'question')}, fingerprint `{report['data_fingerprint']}`, "
        f"selection {report['selection']})",
        f"- date: {report['date']}; machine: {report['machine']}",
        f"- versions: {', '.join(f'{name} {version}' for name, version in report['versions'].items())}",
        f"- command: `{report['command']}`",
        "",
        "| method | accuracy | avg tokens (all) | planner | solver | aggregator | E³ (all) | E³ (solver only) | errors | plan fallbacks | parse failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, summary in report["summaries"].items():
        lines.append(
            f"| {method} | {summary['accuracy']:.1f}% | {summary['avg_tokens']:.1f} | {summary['avg_planner_tokens']:.1f} "
            f"| {summary['avg_solver_tokens']:.1f} | {summary['avg_aggregator_tokens']:.1f} | {summary['e3']:.2f} "
            f"| {summary['e3_solver']:.2f} | {summary['errors']} | {summary['plan_fallbacks']} | {summary.get('parse_failures', 0)} |"
        )
    program = report.get("program")
    if program:
        lines += ["", f"`program` is the compiled program `{program['path']}`; its method is `{program['method']}`."]
    overhead = report["overhead"]
    lines += ["", f"![accuracy against tokens]({report['name']}.png)", "", "## Targets", "", "| target | method | status | measured |", "|---|---|---|---|"]
    for row in report["targets"]:
        lines.append(f"| {row['target']} | {row['method']} | {_status(row['met'])} | {row['measured']} |")
    levels = report.get("by_level") or {}
    if levels:
        methods = [method for method in report["summaries"] if method in levels]
        level_names = sorted({level for method in methods for level in levels[method]}, key=float)
        lines += [
            "",
            "## By level",
            "",
            "Accuracy and average tokens (all stages) per difficulty level; errors are left out.",
            "",
            "| level | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        for level in level_names:
            cells = []
            for method in methods:
                cell = levels[method].get(level)
                cells.append(f"{cell['accuracy']:.0f}%, {cell['avg_tokens']:.0f} tok (n={cell['questions']})" if cell else "-")
            lines.append(f"| {level} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Runtime cost",
        "",
        f"Wall time {overhead['wall_seconds']:.0f} s for the questions run in this invocation, of which "
        f"{overhead['lm_seconds']:.0f} s inside {overhead['lm_calls']} LM calls. Questions resumed from an earlier "
        "invocation are not timed here.",
    ]
    if report.get("speed"):
        speed = report["speed"]
        lines.append(
            f"Generation speed on {_count(speed['prompts'], 'prompt')} of up to {speed['max_tokens']} tokens: raw llama-cpp-python "
            f"{speed['raw_tokens_per_second']:.1f} tokens/s, through pnb_dspy {speed['pnb_tokens_per_second']:.1f} tokens/s "
            "(one run each, same process)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rebuild a run's page, targets and plot from its saved `.json` and `.jsonl`, without running anything."""
    parser = argparse.ArgumentParser(
        description="Rebuild a benchmark run's Markdown page, targets and plot from its saved results."
    )
    parser.add_argument("report", type=Path, help="a run's results/NAME.json; results/NAME.jsonl must be next to it")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        parser.error(f"report file not found: {str(args.report)!r}; pass a results/NAME.json written by run_benchmark.py")
    records_path = args.report.with_suffix(".jsonl")
    if not records_path.is_file():
        parser.error(f"records file not found: {str(records_path)!r}; it must be next to the report, as run_benchmark.py writes it")

    report = json.loads(args.report.read_text(encoding="utf-8"))
    records = read_records(records_path, report["question_ids"], list(report["summaries"]))
    report["by_level"] = by_level(records)
    report["targets"] = check_targets(report)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    save_plot(report, args.report.with_suffix(".png"))
    args.report.with_suffix(".md").write_text(render_page(report), encoding="utf-8")
    print(f"wrote {args.report.with_suffix('.md')} and {args.report.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
