"""Reliability under interruption: finished results survive Ctrl-C and SIGKILL, and a rerun resumes.

The subprocess tests run `python -m pnb_dspy.cli eval` against `OpenAIStubServer` on
127.0.0.1, which waits 0.5 s before each reply so the run can be stopped part-way.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pnb_dspy.data import Question
from pnb_dspy.evaluation import build_method, evaluate, read_results
from pnb_dspy.testing import OpenAIStubServer, Reply, answer_everything_reply, scripted_lm

METHODS = ("vanilla", "global-budget")
QUESTION_COUNT = 4
REPLY_DELAY_S = 0.5
WAIT_LIMIT_S = 90.0


def write_questions(path: Path) -> Path:
    lines = [json.dumps({"question": f"What is {index} + 4 - {index}?", "answer": "4"}) for index in range(QUESTION_COUNT)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def eval_command(data: Path, out: Path, api_base: str) -> list[str]:
    return [
        sys.executable, "-m", "pnb_dspy.cli", "eval",
        "--data", str(data), "--model", "openai/test-model", "--api-base", api_base,
        "--method", ",".join(METHODS), "--out", str(out),
        "--no-cache", "--num-retries", "0", "--timeout", "30",
    ]  # fmt: skip


def eval_environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PNB_API_KEY": "sk-test-interrupt-key",
        "LITELLM_LOCAL_MODEL_COST_MAP": "true",
        "DSPY_CACHEDIR": str(tmp_path / "dspy-cache"),
    }


def complete_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def interrupt_after_two_results(command: list[str], environment: dict[str, str], out: Path, stop_signal: int) -> subprocess.CompletedProcess:
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while complete_lines(out) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(stop_signal)
    stdout, stderr = process.communicate(timeout=WAIT_LIMIT_S)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def pair_counts(path: Path) -> collections.Counter:
    return collections.Counter((record["id"], record["method"]) for record in read_results(path))


ALL_PAIRS = {(f"row-{index}", method) for index in range(QUESTION_COUNT) for method in METHODS}


def interrupt_and_rerun(tmp_path: Path, stop_signal: int) -> tuple[subprocess.CompletedProcess, collections.Counter, subprocess.CompletedProcess, Path]:
    """Stop `pnb eval` with `stop_signal` after two results, rerun it to the end, and return both runs."""
    data = write_questions(tmp_path / "questions.jsonl")
    out = tmp_path / "results.jsonl"
    environment = eval_environment(tmp_path)

    with OpenAIStubServer(default=Reply(answer_everything_reply("4"), delay_s=REPLY_DELAY_S)) as server:
        command = eval_command(data, out, server.api_base)
        stopped = interrupt_after_two_results(command, environment, out, stop_signal)
        finished_before = pair_counts(out)
        rerun = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=WAIT_LIMIT_S)
    return stopped, finished_before, rerun, out


def test_sigint_eval_resumes(tmp_path: Path) -> None:
    stopped, finished_before, rerun, out = interrupt_and_rerun(tmp_path, signal.SIGINT)
    finished_after = pair_counts(out)

    assert stopped.returncode == 130
    assert "interrupted; finished results are kept" in stopped.stderr
    assert 2 <= sum(finished_before.values()) < len(ALL_PAIRS)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert set(finished_after) == ALL_PAIRS
    assert all(count == 1 for count in finished_after.values()), finished_after
    assert all(record["status"] == "ok" for record in read_results(out))


def test_sigkill_eval_resumes(tmp_path: Path) -> None:
    stopped, finished_before, rerun, out = interrupt_and_rerun(tmp_path, signal.SIGKILL)
    finished_after = pair_counts(out)

    assert stopped.returncode == -signal.SIGKILL
    assert 2 <= sum(finished_before.values()) < len(ALL_PAIRS)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert set(finished_after) == ALL_PAIRS
    assert all(count == 1 for count in finished_after.values()), finished_after
    assert all(record["status"] == "ok" for record in read_results(out))


QUESTIONS = [Question(id=f"q{index}", question=f"What is {index} + 4 - {index}?", gold="4") for index in range(4)]


def test_keyboard_interrupt_keeps_results(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    reply = answer_everything_reply("4")
    interrupted_lm = scripted_lm([reply, reply, KeyboardInterrupt()])

    with pytest.raises(KeyboardInterrupt):
        evaluate({"vanilla": build_method("vanilla")}, QUESTIONS, lm=interrupted_lm, results_path=results_path)
    resumed_lm = scripted_lm([], default=reply)
    summaries = evaluate({"vanilla": build_method("vanilla")}, QUESTIONS, lm=resumed_lm, results_path=results_path)

    assert [record["id"] for record in read_results(results_path)] == ["q0", "q1", "q2", "q3"]
    assert resumed_lm.engine.calls == 2
    assert summaries["vanilla"].questions == 4


def test_cut_off_last_line_skipped(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    finished = {"id": "q0", "method": "vanilla", "status": "ok", "correct": True, "tokens": {"total": 10}}
    results_path.write_text(json.dumps(finished) + "\n" + '{"id": "q1", "method": "vani', encoding="utf-8")

    records = read_results(results_path)

    assert records == [finished]


def test_cut_off_line_rerun_and_removed(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    program = {"vanilla": build_method("vanilla")}
    evaluate(program, QUESTIONS[:1], lm=scripted_lm([], default=answer_everything_reply("4")), results_path=results_path)
    with results_path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "q1", "method": "vani')

    resumed_lm = scripted_lm([], default=answer_everything_reply("4"))
    evaluate(program, QUESTIONS[:2], lm=resumed_lm, results_path=results_path)
    third_lm = scripted_lm([], default=answer_everything_reply("4"))
    evaluate(program, QUESTIONS[:3], lm=third_lm, results_path=results_path)

    assert resumed_lm.engine.calls == 1
    assert third_lm.engine.calls == 1
    assert "vani\n" not in results_path.read_text(encoding="utf-8")
    assert [record["id"] for record in read_results(results_path)] == ["q0", "q1", "q2"]


def test_complete_last_line_kept(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    finished = {"id": "q0", "method": "vanilla", "status": "ok", "correct": True, "tokens": {"total": 10}}
    results_path.write_text(json.dumps(finished), encoding="utf-8")

    resumed_lm = scripted_lm([], default=answer_everything_reply("4"))
    evaluate({"vanilla": build_method("vanilla")}, QUESTIONS[:2], lm=resumed_lm, results_path=results_path)

    assert resumed_lm.engine.calls == 1
    assert [record["id"] for record in read_results(results_path)] == ["q0", "q1"]


def test_corrupt_middle_line_rejected(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    results_path.write_text('{"id": "q0", "method": "vani\n{"id": "q1", "method": "vanilla", "status": "ok"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"results\.jsonl' line 1 is not valid JSON"):
        read_results(results_path)
