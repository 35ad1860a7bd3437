"""Tests for the Plan-and-Budget modules, the baselines and the token ledger, run on scripted LMs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy
import pytest
from dspy import lm15
from dspy.utils import DummyLM

from pnb_dspy.baselines import GlobalBudget, Vanilla
from pnb_dspy.config import PnBConfig
from pnb_dspy.modules import BudgetedSolver, Planner, PlanAndBudget, format_budget
from pnb_dspy.plan import Plan, Step
from pnb_dspy.usage import track_tokens

QUESTION = "Janet has x = 10 eggs and buys y = 8 more. How many eggs does she have?"
PLAN_TEXT = "1. Find x (difficulty: 2)\n2. Add y (difficulty: 4)"
PLANNER_REPLY = {"plan": PLAN_TEXT, "level": "3"}
SOLVER_REPLY = {"solution": "x is 10 and y is 8, so x + y = 18.", "answer": "18"}

# In dictionary mode DummyLM returns the reply whose key is a substring of the prompt's last
# message, so the replies do not depend on call order. Only the planner's prompt contains a
# max_steps field, and only the single-pass solver's prompt contains the formatted plan's header.
PLANNER_KEY = "[[ ## max_steps ## ]]"
SOLVER_KEY = "Follow these steps:"


def _scripted_lm(*replies: dict[str, str]) -> DummyLM:
    lm = DummyLM(list(replies))
    dspy.configure(lm=lm)
    return lm


def _run_single_pass() -> dspy.Prediction:
    _scripted_lm(PLANNER_REPLY, SOLVER_REPLY)
    return PlanAndBudget(PnBConfig(mode="single_pass"))(question=QUESTION)


def _run_stepwise() -> tuple[dspy.Prediction, DummyLM]:
    lm = _scripted_lm(PLANNER_REPLY, {"sub_answer": "x = 10"}, {"sub_answer": "10 + 8 = 18"}, {"answer": "18"})
    prediction = PlanAndBudget(PnBConfig(mode="stepwise"))(question=QUESTION)
    return prediction, lm


def test_single_pass_answer_and_plan() -> None:
    prediction = _run_single_pass()

    assert prediction.answer == "18"
    assert prediction.plan.steps == (Step("Find x", 2), Step("Add y", 4))
    assert prediction.plan_fallback is None
    assert prediction.parse_failed is False


def test_single_pass_budgets_fill_level() -> None:
    prediction = _run_single_pass()

    assert prediction.level == 3
    assert prediction.total_budget == 350
    assert len(prediction.budgets) == 2
    assert sum(prediction.budgets) == 350
    assert min(prediction.budgets) >= PnBConfig().min_tokens_per_step


def test_single_pass_tokens_by_stage() -> None:
    tokens = _run_single_pass().tokens

    assert set(tokens["by_stage"]) == {"planner", "solver"}
    assert tokens["source"] == "estimated"
    assert tokens["by_stage"]["planner"]["tokens"] > 0
    assert tokens["by_stage"]["solver"]["tokens"] > 0
    assert tokens["by_stage"]["planner"]["calls"] == 1
    assert tokens["by_stage"]["solver"]["calls"] == 1
    assert tokens["total"] == tokens["by_stage"]["planner"]["tokens"] + tokens["by_stage"]["solver"]["tokens"]


def test_solver_prompt_states_budgets() -> None:
    lm = _scripted_lm(PLANNER_REPLY, SOLVER_REPLY)
    prediction = PlanAndBudget()(question=QUESTION)
    solver_prompt = lm.history[-1]["messages"][-1]["content"]

    assert f"1. Find x (about {prediction.budgets[0]} tokens)" in solver_prompt
    assert f"2. Add y (about {prediction.budgets[1]} tokens)" in solver_prompt


def test_stepwise_calls_per_step() -> None:
    prediction, lm = _run_stepwise()
    by_stage = prediction.tokens["by_stage"]

    assert len(lm.history) == 4
    assert by_stage["planner"]["calls"] == 1
    assert by_stage["solver"]["calls"] == 2
    assert by_stage["aggregator"]["calls"] == 1
    assert by_stage["aggregator"]["tokens"] > 0


def test_stepwise_answer_from_aggregator() -> None:
    prediction, _ = _run_stepwise()

    assert prediction.answer == "18"
    assert prediction.step_answers == ["x = 10", "10 + 8 = 18"]
    assert prediction.solution == "1. Find x\n   Answer: x = 10\n2. Add y\n   Answer: 10 + 8 = 18"
    assert prediction.parse_failed is False


def test_stepwise_caps_each_step() -> None:
    prediction, lm = _run_stepwise()
    margin = PnBConfig().step_margin
    step_caps = [entry["kwargs"].get("max_tokens") for entry in lm.history[1:3]]

    assert step_caps == [budget + margin for budget in prediction.budgets]


def test_malformed_planner_reply_falls_back() -> None:
    _scripted_lm({"plan": "no steps here", "level": "x"}, SOLVER_REPLY)

    prediction = PlanAndBudget()(question=QUESTION)

    assert prediction.plan_fallback == "the plan held no parseable step"
    assert prediction.plan.sub_questions == [QUESTION]
    assert prediction.budgets == [350]
    assert prediction.answer == "18"


def test_fifty_step_plan_falls_back() -> None:
    long_plan = "\n".join(f"{number}. Sub-question {number} (difficulty: 2)" for number in range(1, 51))
    _scripted_lm({"plan": long_plan, "level": "2"}, SOLVER_REPLY)

    prediction = PlanAndBudget()(question=QUESTION)

    assert prediction.plan_fallback == "the plan had 50 steps, more than max_steps=4"
    assert len(prediction.plan.steps) == 1
    assert prediction.total_budget == 250
    assert prediction.budgets == [250]


def test_unparseable_planner_reply_falls_back() -> None:
    lm = DummyLM({PLANNER_KEY: {"notes": "I will just solve it."}, SOLVER_KEY: SOLVER_REPLY})
    dspy.configure(lm=lm)

    prediction = PlanAndBudget()(question=QUESTION)

    assert prediction.plan_fallback == "the planner reply could not be parsed"
    assert prediction.plan.sub_questions == [QUESTION]
    assert prediction.answer == "18"


def test_unparseable_solver_reply_kept() -> None:
    lm = DummyLM({PLANNER_KEY: PLANNER_REPLY, SOLVER_KEY: {"notes": "The answer is 18"}})
    dspy.configure(lm=lm)

    prediction = PlanAndBudget()(question=QUESTION)

    assert prediction.parse_failed is True
    assert "18" in prediction.answer
    assert "[[ ##" not in prediction.answer
    assert prediction.tokens["by_stage"]["solver"]["calls"] >= 1


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
@pytest.mark.parametrize("program_type", [PlanAndBudget, Vanilla, GlobalBudget])
def test_blank_question_raises(program_type: type[dspy.Module], question: str) -> None:
    _scripted_lm(SOLVER_REPLY)

    with pytest.raises(ValueError, match="question must be non-empty text"):
        program_type()(question=question)


def test_data_level_overrides_planner() -> None:
    _scripted_lm(PLANNER_REPLY, SOLVER_REPLY)

    prediction = PlanAndBudget()(question=QUESTION, level=5)

    assert prediction.level == 5
    assert prediction.total_budget == 600
    assert sum(prediction.budgets) == 600


def test_invalid_data_level_raises() -> None:
    _scripted_lm(PLANNER_REPLY, SOLVER_REPLY)

    with pytest.raises(ValueError, match="level must be an integer from 1 to 5, but got level=9"):
        PlanAndBudget()(question=QUESTION, level=9)


def test_planner_lm_used_for_planning() -> None:
    planner_lm = DummyLM([{"plan": "1. Find x (difficulty: 2)", "level": "1"}])
    solver_lm = _scripted_lm(SOLVER_REPLY)

    prediction = PlanAndBudget(planner_lm=planner_lm)(question=QUESTION)

    assert len(planner_lm.history) == 1
    assert len(solver_lm.history) == 1
    assert prediction.total_budget == 200
    assert prediction.tokens["by_stage"]["planner"]["calls"] == 1


def test_easy_question_skips_planner() -> None:
    lm = _scripted_lm({"solution": "2 + 3 = 5", "answer": "5"})
    config = PnBConfig(skip_planner_at_or_below=1)

    prediction = PlanAndBudget(config)(question="What is 2 + 3?")

    assert len(lm.history) == 1
    assert prediction.plan.sub_questions == ["What is 2 + 3?"]
    assert prediction.plan_fallback is not None
    assert "planner" not in prediction.tokens["by_stage"]
    assert prediction.answer == "5"


def test_vanilla_answers_with_tokens() -> None:
    _scripted_lm(SOLVER_REPLY)

    prediction = Vanilla()(question=QUESTION)

    assert prediction.answer == "18"
    assert prediction.parse_failed is False
    assert prediction.tokens["by_stage"]["solver"]["calls"] == 1
    assert prediction.tokens["total"] > 0
    assert prediction.tokens["source"] == "estimated"


def test_global_budget_answers_with_tokens() -> None:
    lm = _scripted_lm(SOLVER_REPLY)

    prediction = GlobalBudget()(question=QUESTION, level=5)

    assert prediction.answer == "18"
    assert prediction.total_budget == 600
    assert "about 600 tokens" in lm.history[-1]["messages"][-1]["content"]
    assert prediction.tokens["by_stage"]["solver"]["calls"] == 1
    assert prediction.tokens["total"] > 0


def test_global_budget_fixed_words() -> None:
    lm = _scripted_lm(SOLVER_REPLY)

    prediction = GlobalBudget(token_budget=400, budget_unit="words")(question=QUESTION, level=1)

    assert prediction.total_budget == 400
    assert "about 300 words" in lm.history[-1]["messages"][-1]["content"]


@pytest.mark.parametrize("token_budget", [0, -10, 2.5, True, 10**9])
def test_global_budget_invalid_raises(token_budget: object) -> None:
    with pytest.raises(ValueError, match=r"token_budget must be .*whole number of tokens.*, but got token_budget="):
        GlobalBudget(token_budget=token_budget)  # type: ignore[arg-type]


def test_solver_budget_count_mismatch() -> None:
    plan = Plan(steps=(Step("Find x", 2), Step("Add y", 4)))

    with pytest.raises(ValueError, match="got 1 budgets for a plan of 2 steps"):
        BudgetedSolver()(question=QUESTION, plan=plan, budgets=[100])


@pytest.mark.parametrize("max_steps", [0, -3, 1.5])
def test_planner_invalid_max_steps(max_steps: object) -> None:
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        Planner(max_steps=max_steps)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens", "unit", "expected"),
    [(100, "tokens", "about 100 tokens"), (100, "words", "about 75 words"), (1, "words", "about 1 words")],
)
def test_format_budget_units(tokens: int, unit: str, expected: str) -> None:
    assert format_budget(tokens, unit) == expected  # type: ignore[arg-type]


def test_ledger_totals_across_threads() -> None:
    lm = DummyLM({PLANNER_KEY: PLANNER_REPLY, SOLVER_KEY: SOLVER_REPLY})
    dspy.configure(lm=lm)
    program = PlanAndBudget()
    expected = program(question=QUESTION).tokens
    start = threading.Barrier(4)

    def run_in_thread() -> tuple[dict[str, Any], int]:
        start.wait(timeout=30)
        with track_tokens() as outer_ledger:
            prediction = program(question=QUESTION)
        return prediction.tokens, outer_ledger.total_tokens

    with ThreadPoolExecutor(max_workers=4) as executor:
        results = [future.result(timeout=60) for future in [executor.submit(run_in_thread) for _ in range(4)]]

    for tokens, outer_total in results:
        assert tokens == expected
        assert outer_total == expected["total"]


def test_track_tokens_needs_history() -> None:
    dspy.configure(disable_history=True)

    with pytest.raises(RuntimeError, match="disable_history=False"):
        with track_tokens():
            pass


class _FixedUsageEngine:
    """An lm15 engine that returns `answer: 18` for every request and reports 7 output tokens."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: lm15.Request) -> lm15.Response:
        self.calls += 1
        return lm15.Response(
            id=None,
            model=request.model,
            message=lm15.Message.assistant([lm15.TextPart("[[ ## answer ## ]]\n18\n\n[[ ## completed ## ]]")]),
            finish_reason="stop",
            usage=lm15.Usage(input_tokens=30, output_tokens=7, total_tokens=37),
        )

    def stream(self, request: lm15.Request) -> Any:
        return lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def test_cache_hit_books_original_tokens() -> None:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    engine = _FixedUsageEngine()
    dspy.configure(lm=dspy.LM("llamacpp/fixed-usage", engine=engine, cache=True))
    predict = dspy.Predict("question -> answer")

    ledgers = []
    for _ in range(2):
        with track_tokens() as ledger:
            prediction = predict(question="What is 9 + 9?")
        ledgers.append(ledger.as_dict())

    assert prediction.answer == "18"
    assert engine.calls == 1
    assert [ledger["total"] for ledger in ledgers] == [7, 7]
    assert [ledger["source"] for ledger in ledgers] == ["reported", "reported"]
    assert ledgers[0]["by_stage"]["other"]["cached_calls"] == 0
    assert ledgers[1]["by_stage"]["other"]["cached_calls"] == 1
