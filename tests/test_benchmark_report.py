"""Tests for the benchmark scripts: targets, the page, the per-level table, rebuilding a page and option checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import report  # noqa: E402


def _summary(accuracy: float, tokens: float) -> dict[str, float]:
    return {
        "accuracy": accuracy,
        "avg_tokens": tokens,
        "avg_planner_tokens": 0.0,
        "avg_solver_tokens": tokens,
        "avg_aggregator_tokens": 0.0,
        "e3": accuracy**2 / tokens,
        "e3_solver": accuracy**2 / tokens,
        "errors": 0,
        "plan_fallbacks": 0,
    }


def _record(question_id: str, method: str, level: int | None, correct: bool, tokens: int, status: str = "ok") -> dict:
    return {"id": question_id, "method": method, "level": level, "status": status, "correct": correct, "tokens": {"total": tokens}}


def _report(summaries: dict, question_ids: list[str]) -> dict:
    return {
        "name": "run",
        "model": "m",
        "data": "d.jsonl",
        "data_fingerprint": "f",
        "questions": len(question_ids),
        "question_ids": question_ids,
        "selection": {"limit": None, "per_level": 1, "seed": 0},
        "date": "2026-12-05",
        "machine": "x86_64, 2 cores",
        "versions": {"pnb-dspy": "0.1.0"},
        "summaries": summaries,
        "overhead": {"wall_seconds": 10.0, "lm_seconds": 9.9, "lm_calls": 4, "share_outside_lm": 0.01},
        "speed": None,
        "command": "run_benchmark.py",
    }


def test_pareto_front_drops_dominated_points():
    points = [("a", 100.0, 50.0), ("b", 200.0, 40.0), ("c", 300.0, 60.0)]

    front = report.pareto_front(points)

    assert [name for name, _, _ in front] == ["a", "c"]


def test_targets_all_met():
    summaries = {"vanilla": _summary(50.0, 400.0), "global-budget": _summary(50.0, 250.0), "pnb": _summary(49.0, 200.0)}

    rows = {row["target"]: row for row in report.check_targets(_report(summaries, ["q1"])) if row["method"] == "pnb"}

    assert rows[report.TARGETS["e3_vs_vanilla"]]["met"] is True
    assert rows[report.TARGETS["e3_vs_global"]]["met"] is True
    assert rows[report.TARGETS["accuracy"]]["met"] is True
    assert rows[report.TARGETS["tokens"]]["met"] is True


def test_targets_accuracy_gap_missed():
    summaries = {"vanilla": _summary(50.0, 400.0), "pnb": _summary(45.0, 380.0)}

    rows = {row["target"]: row for row in report.check_targets(_report(summaries, ["q1"])) if row["method"] == "pnb"}

    assert rows[report.TARGETS["accuracy"]]["met"] is False
    assert "-5.0 points" in rows[report.TARGETS["accuracy"]]["measured"]
    assert rows[report.TARGETS["tokens"]]["met"] is False


def test_by_level_groups_scored_records():
    records = [
        _record("q1", "vanilla", 1, True, 100),
        _record("q2", "vanilla", 1, False, 300),
        _record("q3", "vanilla", 2, True, 500),
        _record("q4", "vanilla", 2, False, 900, status="error"),
        _record("q5", "vanilla", None, True, 50),
    ]

    table = report.by_level(records)

    assert table["vanilla"]["1"] == {"questions": 2, "accuracy": 50.0, "avg_tokens": 200.0}
    assert table["vanilla"]["2"] == {"questions": 1, "accuracy": 100.0, "avg_tokens": 500.0}
    assert set(table["vanilla"]) == {"1", "2"}


def test_read_records_keeps_last_per_pair(tmp_path):
    path = tmp_path / "run.jsonl"
    lines = [
        _record("q1", "vanilla", 1, False, 100),
        _record("q1", "vanilla", 1, True, 120),
        _record("q2", "vanilla", 1, True, 80),
        _record("q1", "other", 1, True, 10),
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")

    records = report.read_records(path, ["q1"], ["vanilla"])

    assert len(records) == 1
    assert records[0]["tokens"]["total"] == 120


def test_rebuild_page_adds_level_table(tmp_path):
    records = [_record("q1", "vanilla", 1, True, 100), _record("q2", "vanilla", 3, False, 700)]
    (tmp_path / "run.jsonl").write_text("\n".join(json.dumps(line) for line in records) + "\n", encoding="utf-8")
    summaries = {"vanilla": _summary(50.0, 400.0)}
    (tmp_path / "run.json").write_text(json.dumps(_report(summaries, ["q1", "q2"])), encoding="utf-8")

    assert report.main([str(tmp_path / "run.json")]) == 0

    page = (tmp_path / "run.md").read_text(encoding="utf-8")
    assert "## By level" in page
    assert "| 1 | 100%, 100 tok (n=1) |" in page
    assert "| 3 | 0%, 700 tok (n=1) |" in page
    assert (tmp_path / "run.png").stat().st_size > 0


def test_rebuild_page_without_records_file(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps(_report({}, [])), encoding="utf-8")

    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "run.json")])

    assert "records file not found" in capsys.readouterr().err


def test_targets_zero_vanilla_not_measured():
    summaries = {"vanilla": _summary(0.0, 400.0), "pnb": _summary(0.0, 600.0)}

    rows = {row["target"]: row for row in report.check_targets(_report(summaries, ["q1"])) if row["method"] == "pnb"}

    assert rows[report.TARGETS["e3_vs_vanilla"]]["met"] is None
    assert "vanilla's E³ is 0" in rows[report.TARGETS["e3_vs_vanilla"]]["measured"]
    assert rows[report.TARGETS["tokens"]]["measured"] == "600 vs 400 (50% more)"


def test_page_names_program_method():
    page_report = _report({"vanilla": _summary(50.0, 400.0)}, ["q1"])
    page_report["targets"] = report.check_targets(page_report)
    page_report["program"] = {"path": "programs/p.json", "method": "global-budget"}

    page = report.render_page(page_report)

    assert "`program` is the compiled program `programs/p.json`; its method is `global-budget`." in page


# Option checks of run_benchmark.py; none of them loads a model.


@pytest.fixture
def run_benchmark():
    import run_benchmark as module

    return module


@pytest.fixture
def word_problems(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"question": f"What is {n} + 1?", "answer": f"#### {n + 1}"} for n in range(3)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_per_level_without_levels_rejected(run_benchmark, word_problems):
    args = run_benchmark.parse_args(["--data", str(word_problems), "--per-level", "2", "--model", "m.gguf"])

    with pytest.raises(run_benchmark.BenchmarkError, match="--per-level 2: .* has no level field"):
        run_benchmark.select_questions(args)


def test_empty_selection_rejected(run_benchmark, word_problems, monkeypatch):
    monkeypatch.setattr(run_benchmark, "load_questions", lambda *args, **kwargs: [])
    args = run_benchmark.parse_args(["--data", str(word_problems), "--model", "m.gguf"])

    with pytest.raises(run_benchmark.BenchmarkError, match="no questions selected"):
        run_benchmark.select_questions(args)


@pytest.mark.parametrize("option", ["--limit", "--per-level"])
def test_count_below_one_rejected(run_benchmark, word_problems, capsys, option):
    with pytest.raises(SystemExit):
        run_benchmark.parse_args(["--data", str(word_problems), "--model", "m.gguf", option, "-5"])

    assert "must be a whole number of at least 1, but got '-5'" in capsys.readouterr().err


def test_unknown_method_rejected(run_benchmark, word_problems):
    args = run_benchmark.parse_args(["--data", str(word_problems), "--model", "m.gguf", "--methods", "pnb_stepwise"])

    with pytest.raises(run_benchmark.BenchmarkError, match="unknown method 'pnb_stepwise'"):
        run_benchmark.build_programs(args)


def test_scheduler_methods_built(run_benchmark, word_problems):
    argv = ["--data", str(word_problems), "--model", "m.gguf", "--schedulers", "cosine", "--methods", "vanilla", "pnb-cosine"]

    programs = run_benchmark.build_programs(run_benchmark.parse_args(argv))

    assert list(programs) == ["vanilla", "pnb-cosine"]
    assert programs["pnb-cosine"].config.scheduler == "cosine"


def test_planner_cap_follows_max_tokens(run_benchmark, word_problems):
    argv = ["--data", str(word_problems), "--model", "m.gguf", "--max-tokens", "96", "--methods", "pnb"]

    programs = run_benchmark.build_programs(run_benchmark.parse_args(argv))

    assert programs["pnb"].config.planner_max_tokens == 96


def test_missing_data_clean_error(run_benchmark, tmp_path, capsys):
    code = run_benchmark.main(["--data", str(tmp_path / "missing.jsonl"), "--model", "m.gguf"])

    assert code == 2
    assert capsys.readouterr().err.startswith("error: data file not found")


def test_analyze_plans_splits_fallbacks(tmp_path, capsys):
    import analyze_plans

    records = [
        _record("q1", "vanilla", None, True, 300),
        _record("q2", "vanilla", None, False, 300),
        {**_record("q1", "pnb", None, False, 200), "tokens": {"total": 200, "planner": 50}, "plan_fallback": None},
        {**_record("q2", "pnb", None, True, 400), "tokens": {"total": 400, "planner": 150}, "plan_fallback": "too many steps"},
    ]
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")

    assert analyze_plans.main([str(path)]) == 0

    output = capsys.readouterr().out
    assert "plan used:         0/1 correct (0%), 200 tokens on average; vanilla on these: 1/1 correct" in output
    assert "one-step fallback: 1/1 correct (100%), 400 tokens on average; vanilla on these: 0/1 correct" in output
    assert "planner share of all tokens: 33%" in output
    assert "right where vanilla was wrong 1, wrong where vanilla was right 1" in output


def test_plot_label_shared_and_separate_e3():
    summaries = {"a": _summary(50.0, 200.0), "b": _summary(50.0, 200.0), "c": _summary(50.0, 201.0)}

    assert report._plot_label(["a", "b"], summaries) == ["a = b", "E³=12.50"]
    assert report._plot_label(["a", "c"], summaries) == ["a E³=12.50", "c E³=12.44"]
