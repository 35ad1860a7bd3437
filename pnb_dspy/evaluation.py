"""Evaluation: run methods over questions, one JSON line per question and method, resumable.

Each finished question is appended to the results file at once and flushed, so a run that
is interrupted (Ctrl-C, a crash, SIGKILL) keeps everything it finished. Running again with
the same file skips the (question id, method) pairs already recorded, except errors, which
are retried unless `retry_errors=False`; the latest record of a pair is the one that counts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.exceptions import LMError

from pnb_dspy.answers import gold_answer, is_correct
from pnb_dspy.baselines import GlobalBudget, Vanilla
from pnb_dspy.config import PnBConfig
from pnb_dspy.data import Question
from pnb_dspy.metrics import MethodSummary, summarize
from pnb_dspy.modules import PlanAndBudget

logger = logging.getLogger(__name__)

METHODS = ("pnb", "pnb-stepwise", "vanilla", "global-budget")
ALL_METHODS = ("pnb", "vanilla", "global-budget")

# Failures of the LM call itself. They are recorded as errors, never as wrong answers.
LM_FAILURES: tuple[type[BaseException], ...] = (LMError, ConnectionError, TimeoutError)

MIN_SECRET_LENGTH = 8


def build_method(name: str, config: PnBConfig | None = None, planner_lm: dspy.BaseLM | None = None) -> dspy.Module:
    """Build the module for a method name: `pnb`, `pnb-stepwise`, `vanilla` or `global-budget`.

    Raises:
        ValueError: for an unknown method name.
    """
    config = config or PnBConfig()
    if name == "pnb":
        return PlanAndBudget(config, planner_lm=planner_lm)
    if name == "pnb-stepwise":
        return PlanAndBudget(_with_mode(config, "stepwise"), planner_lm=planner_lm)
    if name == "vanilla":
        return Vanilla()
    if name == "global-budget":
        return GlobalBudget(level_map=config.level_map(), budget_unit=config.budget_unit)
    raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}, all")


def _with_mode(config: PnBConfig, mode: str) -> PnBConfig:
    return PnBConfig.from_dict({**config.to_dict(), "mode": mode})


def run_question(program: dspy.Module, method: str, question: Question) -> dict[str, Any]:
    """Run one question through one program and return its result record.

    A failed LM call gives a record with `status` `error`; the exception type and message
    are kept. Any other exception propagates, because it is a bug or bad input, not a fault
    of the model.
    """
    started = time.perf_counter()
    record: dict[str, Any] = {
        "id": question.id,
        "method": method,
        "level": question.level,
        "gold": gold_answer(question.gold),
    }
    try:
        prediction = program(question=question.question, level=question.level)
    except LM_FAILURES as error:
        # Providers echo the API key in some authentication errors, so known keys are masked.
        message = redact_secrets(str(error), _api_keys(program))
        logger.warning("question %s, method %s: LM call failed: %s: %s", question.id, method, type(error).__name__, message)
        record.update(status="error", error_type=type(error).__name__, error=message[:500], correct=None)
        record["tokens"] = {"total": 0}
        record["seconds"] = round(time.perf_counter() - started, 3)
        return record

    tokens = prediction.tokens
    record.update(
        status="ok",
        answer=str(prediction.answer),
        correct=is_correct(str(prediction.answer), question.gold, question.answer_kind),
        tokens={"total": tokens["total"], **{name: stage["tokens"] for name, stage in tokens["by_stage"].items()}},
        token_source=tokens["source"],
        parse_failed=bool(prediction.get("parse_failed")),
        seconds=round(time.perf_counter() - started, 3),
    )
    plan = prediction.get("plan")
    if plan is not None:
        record.update(
            sub_questions=plan.sub_questions,
            difficulties=plan.difficulties,
            budgets=list(prediction.budgets),
            total_budget=prediction.total_budget,
            plan_fallback=plan.fallback_reason,
        )
    elif prediction.get("total_budget") is not None:
        record["total_budget"] = prediction.total_budget
    return record


def redact_secrets(text: str, secrets: Sequence[str]) -> str:
    """Return `text` with every occurrence of each secret replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _api_keys(program: dspy.Module) -> list[str]:
    """Return the API keys of the LMs a program may call, and those of `*_API_KEY` variables.

    Keys shorter than 8 characters are left out, because masking them would mangle ordinary text.
    """
    lms = [dspy.settings.lm, getattr(program, "planner_lm", None)]
    keys = [str((getattr(lm, "kwargs", None) or {}).get("api_key") or "") for lm in lms]
    keys += [value for name, value in os.environ.items() if name.endswith("_API_KEY")]
    return sorted({key for key in keys if len(key) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a results file, skipping a last line cut off by an interrupted write."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                logger.warning("%s: ignoring a cut-off last line (the previous run was interrupted while writing)", path)
                continue
            raise ValueError(f"{str(path)!r} line {number} is not valid JSON; it is not a results file of pnb eval") from None
    return records


def latest_records(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Return the last record of each (question id, method) pair."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        latest[(str(record["id"]), str(record["method"]))] = dict(record)
    return latest


class _ResultsWriter:
    """Appends records as JSON lines, one flush per record, safe across threads."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_last_line(path)
            self._handle = path.open("a", encoding="utf-8")

    @staticmethod
    def _repair_last_line(path: Path) -> None:
        # A run killed mid-write leaves a last line without its newline. A cut-off record is
        # removed, because once later records follow it, it would be a broken middle line
        # that read_results rejects. A complete record only gets its missing newline.
        if not path.exists() or path.stat().st_size == 0:
            return
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return
        line_start = data.rfind(b"\n") + 1
        try:
            json.loads(data[line_start:])
        except ValueError:
            logger.warning("%s: removing a cut-off last line (%d bytes) left by an interrupted run", path, len(data) - line_start)
            with path.open("r+b") as handle:
                handle.truncate(line_start)
            return
        with path.open("ab") as handle:
            handle.write(b"\n")

    def write(self, record: Mapping[str, Any]) -> None:
        if self._handle is None:
            return
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def evaluate(
    programs: Mapping[str, dspy.Module],
    questions: Sequence[Question],
    *,
    lm: dspy.BaseLM | None = None,
    results_path: str | Path | None = None,
    num_threads: int = 1,
    retry_errors: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, MethodSummary]:
    """Run every program on every question and summarise each method.

    Args:
        programs: method name to module; each is called as `program(question=..., level=...)`.
        questions: the questions, with gold answers.
        lm: the LM to use; None uses the one configured with `dspy.configure`.
        results_path: JSON Lines file to append results to and resume from; None keeps
            results in memory only.
        num_threads: questions run in parallel. llama.cpp models serialise their calls, so
            more than 1 helps only with served models.
        retry_errors: rerun pairs whose recorded result is an error.
        on_result: called with each new record, for progress bars.

    Returns:
        The summary of each method over all its latest records for these questions.
    """
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, but got {num_threads=}")
    path = Path(results_path) if results_path is not None else None
    done = latest_records(read_results(path)) if path else {}
    wanted_ids = {question.id for question in questions}

    def is_finished(question: Question, method: str) -> bool:
        record = done.get((question.id, method))
        return record is not None and (record["status"] == "ok" or not retry_errors)

    work = [(method, question) for method in programs for question in questions if not is_finished(question, method)]
    skipped = len(programs) * len(questions) - len(work)
    if skipped:
        logger.info("resuming: %d of %d results already in %s", skipped, len(programs) * len(questions), path)

    writer = _ResultsWriter(path)
    results_lock = threading.Lock()

    def run(method: str, question: Question) -> dict[str, Any]:
        with dspy.context(lm=lm) if lm is not None else contextlib.nullcontext():
            record = run_question(programs[method], method, question)
        writer.write(record)
        with results_lock:
            done[(question.id, method)] = record
        if on_result is not None:
            on_result(record)
        return record

    try:
        _run_all(run, work, num_threads)
    finally:
        writer.close()

    summaries = {}
    for method in programs:
        records = [record for (row_id, name), record in done.items() if name == method and row_id in wanted_ids]
        summaries[method] = summarize(method, records)
    return summaries


def _run_all(run: Callable[[str, Question], dict[str, Any]], work: list[tuple[str, Question]], num_threads: int) -> None:
    if num_threads == 1:
        for method, question in work:
            run(method, question)
        return
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="pnb-eval")
    try:
        futures = [pool.submit(run, method, question) for method, question in work]
        for future in concurrent.futures.as_completed(futures):
            future.result()
    finally:
        # On Ctrl-C or an error, drop the questions not started; finished ones are on disk.
        pool.shutdown(wait=True, cancel_futures=True)
