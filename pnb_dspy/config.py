"""The settings of a Plan-and-Budget program, as one frozen, serialisable dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pnb_dspy.budget import DEFAULT_LEVEL_BUDGETS, MAX_TOTAL_TOKENS, BudgetPriors, LevelBudgetMap
from pnb_dspy.schedulers import Scheduler, make_scheduler

SolveMode = Literal["single_pass", "stepwise"]
BudgetUnit = Literal["tokens", "words"]
PlanStyle = Literal["required", "hints"]

SOLVE_MODES = ("single_pass", "stepwise")
BUDGET_UNITS = ("tokens", "words")
PLAN_STYLES = ("required", "hints")
MAX_STEPS_LIMIT = 20


@dataclass(frozen=True)
class PnBConfig:
    """Everything that shapes a Plan-and-Budget run besides the LMs and the prompts' wording.

    Attributes:
        scheduler: name of the schedule that splits the total budget over the steps.
        scheduler_params: the schedule's own parameters (`power`, `rate` or `floor`).
        priors: hyperparameters of the budget model's priors on c and beta.
        level_budgets: total generated-token budget for difficulty levels 1 to 5.
        budget_scale: multiplies every entry of `level_budgets`.
        mode: `single_pass` states the budgets in one solve prompt; `stepwise` solves each
            sub-question in its own call capped at its budget plus `step_margin` tokens.
        max_steps: the maximum number of sub-questions in a plan. A longer plan falls back to one step.
        min_tokens_per_step: the smallest budget any step gets, in tokens.
        step_margin: extra tokens over a step's budget for its hard `max_tokens` cap (stepwise
            mode), so the output fields' markers fit.
        budget_unit: the unit budgets are stated in to the model; words are 0.75 of tokens.
        plan_style: `required` presents the plan as steps to follow, `hints` as optional help.
        planner_max_tokens: cap on the planner's own output, in tokens.
        skip_planner_at_or_below: questions whose cheap difficulty estimate (1 to 5) is at or
            below this skip the planner and are solved as one step; 0 never skips.
        planner_instructions: replaces the planner signature's instructions when set.
    """

    scheduler: str = "polynomial"
    scheduler_params: dict[str, float] = field(default_factory=dict)
    priors: BudgetPriors = field(default_factory=BudgetPriors)
    level_budgets: tuple[int, ...] = DEFAULT_LEVEL_BUDGETS
    budget_scale: float = 1.0
    mode: SolveMode = "single_pass"
    max_steps: int = 4
    min_tokens_per_step: int = 16
    step_margin: int = 32
    budget_unit: BudgetUnit = "tokens"
    plan_style: PlanStyle = "required"
    planner_max_tokens: int = 256
    skip_planner_at_or_below: int = 0
    planner_instructions: str | None = None

    def __post_init__(self) -> None:
        # Building these objects runs their own checks, which name the bad value.
        self.make_scheduler()
        self.level_map()
        _check_choice("mode", self.mode, SOLVE_MODES)
        _check_choice("budget_unit", self.budget_unit, BUDGET_UNITS)
        _check_choice("plan_style", self.plan_style, PLAN_STYLES)
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or not 1 <= self.max_steps <= MAX_STEPS_LIMIT:
            raise ValueError(
                f"max_steps must be an integer from 1 to {MAX_STEPS_LIMIT}, but got max_steps={self.max_steps!r}; "
                "plans of 2 to 5 steps are typical"
            )
        _check_tokens("min_tokens_per_step", self.min_tokens_per_step, minimum=0)
        _check_tokens("step_margin", self.step_margin, minimum=0)
        _check_tokens("planner_max_tokens", self.planner_max_tokens, minimum=16)
        if not isinstance(self.skip_planner_at_or_below, int) or not 0 <= self.skip_planner_at_or_below <= 5:
            raise ValueError(
                "skip_planner_at_or_below must be an integer from 0 (never skip) to 5, "
                f"but got skip_planner_at_or_below={self.skip_planner_at_or_below!r}"
            )
        if self.planner_instructions is not None and not self.planner_instructions.strip():
            raise ValueError("planner_instructions must be None or non-empty text, but got blank text")

    def make_scheduler(self) -> Scheduler:
        return make_scheduler(self.scheduler, **self.scheduler_params)

    def level_map(self) -> LevelBudgetMap:
        return LevelBudgetMap(tuple(self.level_budgets), self.budget_scale)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON-ready data."""
        data = dataclasses.asdict(self)
        data["level_budgets"] = list(self.level_budgets)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PnBConfig:
        """Build a configuration from `to_dict` output, rejecting unknown keys by name."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}; known keys are {', '.join(sorted(known))}")
        values = dict(data)
        if "priors" in values and isinstance(values["priors"], dict):
            prior_fields = {item.name for item in dataclasses.fields(BudgetPriors)}
            unknown_priors = sorted(set(values["priors"]) - prior_fields)
            if unknown_priors:
                raise ValueError(f"unknown prior keys: {', '.join(unknown_priors)}; known keys are {', '.join(sorted(prior_fields))}")
            values["priors"] = BudgetPriors(**values["priors"])
        if "level_budgets" in values:
            values["level_budgets"] = tuple(values["level_budgets"])
        if "scheduler_params" in values:
            values["scheduler_params"] = dict(values["scheduler_params"])
        return cls(**values)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _check_tokens(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_TOTAL_TOKENS:
        raise ValueError(
            f"{name} must be a whole number of tokens from {minimum} to {MAX_TOTAL_TOKENS}, but got {name}={value!r}"
        )

