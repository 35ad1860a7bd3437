"""Accuracy, average generated tokens and E³ over per-question results.

E³ = A² / T, with A the accuracy in percent (0 to 100) and T the average generated tokens
per question. Higher is better: it rewards accuracy quadratically and tokens inversely.
It is reported twice: with every generated token (planner + solver + aggregator), the
headline figure, and with solver tokens only, the figure comparable with the Plan-and-Budget
paper's tables, which count the reasoning model's tokens.

Questions whose LM call failed are errors: they are counted apart and left out of accuracy
and token averages, so an outage never shows up as wrong answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


def e3_score(accuracy_percent: float, avg_tokens: float) -> float:
    """Return E³ = accuracy² / average tokens, or 0.0 when no tokens were generated.

    Args:
        accuracy_percent: accuracy from 0 to 100.
        avg_tokens: average generated tokens per question, >= 0.
    """
    if not 0 <= accuracy_percent <= 100:
        raise ValueError(f"accuracy_percent must be in [0, 100], but got {accuracy_percent=}")
    if avg_tokens < 0:
        raise ValueError(f"avg_tokens must be >= 0, but got {avg_tokens=}")
    if avg_tokens == 0:
        return 0.0
    return accuracy_percent**2 / avg_tokens


@dataclass(frozen=True)
class MethodSummary:
    """Scores of one method over one set of questions.

    Attributes:
        questions: results seen, errors included.
        scored: questions that produced an answer (not errors).
        accuracy: percent of scored questions answered correctly.
        avg_tokens: all generated tokens per scored question.
        avg_solver_tokens: solver tokens per scored question.
        e3: E³ with all tokens; e3_solver: E³ with solver tokens only.
    """

    method: str
    questions: int
    scored: int
    correct: int
    errors: int
    accuracy: float
    avg_tokens: float
    avg_planner_tokens: float
    avg_solver_tokens: float
    avg_aggregator_tokens: float
    e3: float
    e3_solver: float
    plan_fallbacks: int
    parse_failures: int
    estimated_token_counts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(method: str, results: Iterable[Mapping[str, Any]]) -> MethodSummary:
    """Summarise the per-question result records of one method (see `evaluation.run_question`)."""
    records = list(results)
    scored = [record for record in records if record["status"] == "ok"]
    correct = sum(1 for record in scored if record["correct"])
    count = len(scored)

    def average(stage: str) -> float:
        return sum(record["tokens"].get(stage, 0) for record in scored) / count if count else 0.0

    accuracy = 100.0 * correct / count if count else 0.0
    avg_tokens = average("total")
    avg_solver = average("solver")
    return MethodSummary(
        method=method,
        questions=len(records),
        scored=count,
        correct=correct,
        errors=len(records) - count,
        accuracy=accuracy,
        avg_tokens=avg_tokens,
        avg_planner_tokens=average("planner"),
        avg_solver_tokens=avg_solver,
        avg_aggregator_tokens=average("aggregator"),
        e3=e3_score(accuracy, avg_tokens),
        e3_solver=e3_score(accuracy, avg_solver),
        plan_fallbacks=sum(1 for record in scored if record.get("plan_fallback")),
        parse_failures=sum(1 for record in scored if record.get("parse_failed")),
        estimated_token_counts=sum(1 for record in scored if record.get("token_source") != "reported"),
    )
