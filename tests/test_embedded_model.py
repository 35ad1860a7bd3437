"""Wiring test: the real embedded llama.cpp model runs Plan-and-Budget end to end.

The embedded Gemma 3 270M is a base model, so these tests check the pipeline (calls made,
tokens reported by llama.cpp and booked per stage, a plan and budgets produced), never the
answers' correctness.
"""

from __future__ import annotations

import dspy
import pytest

from pnb_dspy.config import PnBConfig
from pnb_dspy.lm import embedded_model_path, make_lm
from pnb_dspy.modules import PlanAndBudget

pytestmark = pytest.mark.embedded

QUESTIONS = (
    "A baker makes 24 muffins and sells 18. How many muffins are left?",
    "Lena reads 15 pages a day. How many pages does she read in 14 days?",
)


@pytest.fixture(scope="module")
def embedded_lm() -> dspy.LM:
    try:
        embedded_model_path()
    except ImportError as error:
        pytest.skip(f"embedded model package not installed: {error}")
    return make_lm(None, max_tokens=48, cache=False)


@pytest.mark.parametrize("mode", ["single_pass", "stepwise"])
def test_embedded_model_runs_pipeline(embedded_lm: dspy.LM, mode: str) -> None:
    program = PlanAndBudget(PnBConfig(mode=mode, max_steps=3, planner_max_tokens=48))

    with dspy.context(lm=embedded_lm):
        predictions = [program(question=question) for question in QUESTIONS]

    for prediction in predictions:
        by_stage = prediction.tokens["by_stage"]
        # llama.cpp reports usage for every call, so nothing is estimated.
        assert prediction.tokens["source"] == "reported"
        assert by_stage["planner"]["tokens"] > 0
        assert by_stage["solver"]["tokens"] > 0
        assert sum(prediction.budgets) == prediction.total_budget
        assert len(prediction.budgets) == len(prediction.plan.steps)
        assert isinstance(prediction.answer, str)
    if mode == "stepwise":
        assert all(p.tokens["by_stage"]["aggregator"]["calls"] >= 1 for p in predictions)


def test_embedded_model_stepwise_cap(embedded_lm: dspy.LM) -> None:
    config = PnBConfig(mode="stepwise", max_steps=2, level_budgets=(40, 40, 40, 40, 40), min_tokens_per_step=8, step_margin=16)
    program = PlanAndBudget(config)

    with dspy.context(lm=embedded_lm):
        prediction = program(question=QUESTIONS[0])

    solver = prediction.tokens["by_stage"]["solver"]
    # Each stepwise call is capped at its budget plus the margin; a parse failure may add
    # DSPy's JSON-adapter retry, so allow two calls per step.
    cap_per_call = max(prediction.budgets) + config.step_margin
    assert solver["tokens"] <= cap_per_call * solver["calls"]
    assert solver["calls"] <= 2 * len(prediction.plan.steps)
