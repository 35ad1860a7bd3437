"""Baselines that Plan-and-Budget is measured against, as DSPy modules.

Both return the same prediction fields as `PlanAndBudget` where they apply (`answer`,
`solution`, `tokens`), so evaluation treats all methods alike.
"""

from __future__ import annotations

import dspy

from pnb_dspy.budget import MAX_TOTAL_TOKENS, LevelBudgetMap
from pnb_dspy.config import BudgetUnit
from pnb_dspy.modules import call_lenient, format_budget
from pnb_dspy.plan import DEFAULT_DIFFICULTY
from pnb_dspy.signatures import SolveStepByStep, SolveWithinBudget
from pnb_dspy.usage import stage, track_tokens


class Vanilla(dspy.Module):
    """Plain step-by-step reasoning with no budget and no plan."""

    def __init__(self) -> None:
        super().__init__()
        self.solve = dspy.Predict(SolveStepByStep)

    def forward(self, question: str, level: int | None = None) -> dspy.Prediction:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be non-empty text, but got {question!r}; pass the question to answer")
        with track_tokens() as ledger:
            with stage("solver"):
                reply, parse_failed = call_lenient(self.solve, question=question)
        return dspy.Prediction(
            answer=reply.answer, solution=reply.solution, parse_failed=parse_failed, tokens=ledger.as_dict()
        )


class GlobalBudget(dspy.Module):
    """Step-by-step reasoning with one budget for the whole question, stated in the prompt.

    Args:
        token_budget: a fixed budget in generated tokens; None takes it from `level_map` by the
            question's level (the data's level when given, else level 3).
        level_map: level-to-budget map used when `token_budget` is None.
        budget_unit: the unit the budget is stated in to the model.
    """

    def __init__(
        self,
        token_budget: int | None = None,
        level_map: LevelBudgetMap | None = None,
        budget_unit: BudgetUnit = "tokens",
    ) -> None:
        super().__init__()
        if token_budget is not None and (
            not isinstance(token_budget, int) or isinstance(token_budget, bool) or not 0 < token_budget <= MAX_TOTAL_TOKENS
        ):
            raise ValueError(
                f"token_budget must be a whole number of tokens from 1 to {MAX_TOTAL_TOKENS}, but got "
                f"token_budget={token_budget!r}; typical budgets are 100 to 1000"
            )
        self.token_budget = token_budget
        self.level_map = level_map or LevelBudgetMap()
        self.budget_unit = budget_unit
        self.solve = dspy.Predict(SolveWithinBudget)

    def budget_for(self, level: int | None) -> int:
        """Return the budget in generated tokens for a question of `level` (None for unknown)."""
        if self.token_budget is not None:
            return self.token_budget
        return self.level_map.total_tokens(level if level is not None else DEFAULT_DIFFICULTY)

    def forward(self, question: str, level: int | None = None) -> dspy.Prediction:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be non-empty text, but got {question!r}; pass the question to answer")
        budget = self.budget_for(level)
        with track_tokens() as ledger:
            with stage("solver"):
                reply, parse_failed = call_lenient(
                    self.solve, question=question, budget=format_budget(budget, self.budget_unit)
                )
        return dspy.Prediction(
            answer=reply.answer,
            solution=reply.solution,
            total_budget=budget,
            parse_failed=parse_failed,
            tokens=ledger.as_dict(),
        )
