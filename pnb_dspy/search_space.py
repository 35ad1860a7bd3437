"""The Optuna search space of `pnb compile` and the planner-instruction candidates it chooses from.

The paper-default baseline is the default configuration of the Plan-and-Budget paper
(arXiv 2505.16122), which `PnBConfig()` reproduces: polynomial decay and the default level map.

Trial parameter names follow the keys of `PnBConfig.to_dict()`, with a dot for nested keys
(`scheduler_params.power`, `priors.c_scale`), so a trial's parameters read like the exported
configuration. Three parameters are not configuration keys:

- `method`: `pnb`, `vanilla` or `global-budget`. Only the enqueued baseline trials set it; every
  sampled trial is a Plan-and-Budget trial, so the sampler never spends a trial on a baseline.
- `planner_instructions`: an index into the study's fixed list of instruction candidates
  (study user attribute `planner_instruction_candidates`); index 0 keeps the signature's own
  instructions.
- `planner_model`: the planner's model, suggested only when several are given.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
import optuna
from dspy.utils.exceptions import AdapterParseError, LMError

from pnb_dspy.budget import BudgetPriors
from pnb_dspy.config import BUDGET_UNITS, PLAN_STYLES, SOLVE_MODES, PnBConfig
from pnb_dspy.data import Question
from pnb_dspy.schedulers import SCHEDULER_PARAMS, SCHEDULERS
from pnb_dspy.signatures import PlanQuestion

logger = logging.getLogger(__name__)

METHOD_CHOICES = ("pnb", "vanilla", "global-budget")
# Baseline trials, enqueued in this order when a study is created. `paper-default` is a
# Plan-and-Budget trial with PnBConfig() defaults: polynomial decay and the default level map.
BASELINES = ("vanilla", "global-budget", "paper-default")

# Ranges of the numeric parameters; each contains the PnBConfig() default.
SCHEDULER_PARAM_RANGES: dict[str, tuple[float, float]] = {"power": (0.5, 4.0), "rate": (0.5, 1.0), "floor": (0.0, 0.5)}
PRIOR_RANGES: dict[str, tuple[float, float, bool]] = {
    # name: (low, high, log scale)
    "c_scale": (0.25, 4.0, True),
    "c_exponent": (0.0, 3.0, False),
    "beta_base": (0.25, 4.0, True),
    "beta_slope": (0.0, 1.0, False),
}

WRITTEN_INSTRUCTIONS = (
    "List the few intermediate quantities needed to answer the question, one sub-question per line "
    "as `1. <sub-question> (difficulty: D)` with D from 1 (trivial) to 5 (hard). Use as few steps as "
    "the question allows. Then rate the whole question's difficulty level from 1 to 5.",
    "Plan before solving. Write the sub-questions whose answers, taken in order, give the final "
    "answer; put the hardest reasoning in its own step. Format each line as "
    "`1. <sub-question> (difficulty: D)`, D from 1 to 5, then give the question's overall level from 1 to 5.",
    "Decompose the problem into at most the allowed number of short, concrete sub-questions. "
    "Each line reads `1. <sub-question> (difficulty: D)` with D from 1 to 5; a one-line problem may "
    "need a single step. Finally rate the overall difficulty level from 1 to 5.",
)
MIN_PROPOSAL_CHARS = 40
MAX_PROPOSAL_CHARS = 800


@dataclass(frozen=True)
class SearchSpace:
    """Restrictions on what `pnb compile` searches; the defaults search everything.

    Every restriction must keep the `PnBConfig()` default, because the paper-default
    baseline trial always runs with it.

    Attributes:
        schedulers: scheduler names to try.
        modes: solve modes to try.
        budget_units: units to state budgets in (`tokens` or `words`).
        plan_styles: plan styles to try (`required` or `hints`).
        budget_scale: (low, high) of the multiplier on the level budgets, searched on a log scale.
        max_steps: (low, high) of the maximum number of sub-questions.
        skip_planner_at_or_below: the highest skip threshold to try; 0 never skips the planner.
        planner_max_tokens: caps on the planner's output to try, in tokens.
    """

    schedulers: tuple[str, ...] = tuple(SCHEDULERS)
    modes: tuple[str, ...] = SOLVE_MODES
    budget_units: tuple[str, ...] = BUDGET_UNITS
    plan_styles: tuple[str, ...] = PLAN_STYLES
    budget_scale: tuple[float, float] = (0.25, 3.0)
    max_steps: tuple[int, int] = (2, 8)
    skip_planner_at_or_below: int = 3
    planner_max_tokens: tuple[int, ...] = (128, 256, 384, 512)

    def __post_init__(self) -> None:
        default = PnBConfig()
        _check_subset("schedulers", self.schedulers, tuple(SCHEDULERS), default.scheduler)
        _check_subset("modes", self.modes, SOLVE_MODES, default.mode)
        _check_subset("budget_units", self.budget_units, BUDGET_UNITS, default.budget_unit)
        _check_subset("plan_styles", self.plan_styles, PLAN_STYLES, default.plan_style)
        low, high = self.budget_scale
        if not 0 < low <= default.budget_scale <= high <= 20:
            raise ValueError(
                f"budget_scale must be [low, high] with 0 < low <= 1.0 <= high <= 20, but got budget_scale={list(self.budget_scale)}"
            )
        low_steps, high_steps = self.max_steps
        if not 1 <= low_steps <= default.max_steps <= high_steps <= 20:
            raise ValueError(
                f"max_steps must be [low, high] with 1 <= low <= {default.max_steps} <= high <= 20, "
                f"but got max_steps={list(self.max_steps)}"
            )
        if not isinstance(self.skip_planner_at_or_below, int) or not 0 <= self.skip_planner_at_or_below <= 5:
            raise ValueError(
                "skip_planner_at_or_below must be an integer from 0 to 5, "
                f"but got skip_planner_at_or_below={self.skip_planner_at_or_below!r}"
            )
        if default.planner_max_tokens not in self.planner_max_tokens:
            raise ValueError(
                f"planner_max_tokens must include the default {default.planner_max_tokens}, "
                f"but got planner_max_tokens={list(self.planner_max_tokens)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the search space as JSON-ready data."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Build a search space from `to_dict` output, rejecting unknown keys by name.

        Raises:
            ValueError: for an unknown key or a restriction that breaks a rule.
        """
        known = [item.name for item in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown search space keys: {', '.join(unknown)}; known keys are {', '.join(known)}")
        values = {name: tuple(value) if isinstance(value, list) else value for name, value in data.items()}
        return cls(**values)


def _check_subset(name: str, values: Sequence[str], allowed: Sequence[str], default: str) -> None:
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValueError(f"{name} must be a non-empty list from {', '.join(allowed)}, but got {name}={list(values)}")
    if default not in values:
        raise ValueError(f"{name} must include the default {default!r}, which the paper-default baseline trial uses")


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class TrialChoice:
    """The method, configuration and planner model name (or None) of one trial."""

    method: str
    config: PnBConfig
    planner_model: str | None


def suggest_trial(
    trial: optuna.Trial,
    space: SearchSpace,
    instruction_candidates: Sequence[str],
    planner_models: Sequence[str],
) -> TrialChoice:
    """Suggest the method and configuration of one trial.

    Baseline trials carry the user attribute `baseline` and a fixed `method` parameter (see
    `baseline_trials`); other trials are Plan-and-Budget trials and sample every parameter below.

    Args:
        trial: the trial to suggest for.
        space: what to search.
        instruction_candidates: the candidate list; index 0 means the signature's own text.
        planner_models: planner model names; with two or more, `planner_model` is suggested.
    """
    is_baseline = trial.user_attrs.get("baseline") is not None
    method = trial.suggest_categorical("method", METHOD_CHOICES) if is_baseline else "pnb"
    if method != "pnb":
        return TrialChoice(method, PnBConfig(), None)

    scheduler = trial.suggest_categorical("scheduler", space.schedulers)
    scheduler_params = {}
    for name in SCHEDULER_PARAMS[scheduler]:
        low, high = SCHEDULER_PARAM_RANGES[name]
        scheduler_params[name] = trial.suggest_float(f"scheduler_params.{name}", low, high)
    priors = {}
    for name, (low, high, log) in PRIOR_RANGES.items():
        priors[name] = trial.suggest_float(f"priors.{name}", low, high, log=log)
    budget_scale = trial.suggest_float("budget_scale", *space.budget_scale, log=True)
    mode = trial.suggest_categorical("mode", space.modes)
    max_steps = trial.suggest_int("max_steps", *space.max_steps)
    budget_unit = trial.suggest_categorical("budget_unit", space.budget_units)
    plan_style = trial.suggest_categorical("plan_style", space.plan_styles)
    skip = trial.suggest_int("skip_planner_at_or_below", 0, space.skip_planner_at_or_below)
    planner_max_tokens = trial.suggest_categorical("planner_max_tokens", space.planner_max_tokens)
    instruction_index = trial.suggest_categorical("planner_instructions", tuple(range(len(instruction_candidates))))
    planner_model = None
    if len(planner_models) > 1:
        planner_model = trial.suggest_categorical("planner_model", tuple(planner_models))
    elif planner_models:
        planner_model = planner_models[0]

    config = PnBConfig(
        scheduler=scheduler,
        scheduler_params=scheduler_params,
        priors=BudgetPriors(**priors),
        budget_scale=budget_scale,
        mode=mode,
        max_steps=max_steps,
        budget_unit=budget_unit,
        plan_style=plan_style,
        planner_max_tokens=planner_max_tokens,
        skip_planner_at_or_below=skip,
        planner_instructions=instruction_candidates[instruction_index] if instruction_index else None,
    )
    return TrialChoice("pnb", config, planner_model)


def baseline_trials(planner_models: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Return (baseline name, fixed parameters) for the trials enqueued when a study is created.

    The paper-default trial fixes every Plan-and-Budget parameter to its `PnBConfig()` value,
    so the sampler learns from it like from any other trial.
    """
    default = PnBConfig()
    paper_default: dict[str, Any] = {
        "method": "pnb",
        "scheduler": default.scheduler,
        "scheduler_params.power": default.make_scheduler().params()["power"],
        **{f"priors.{name}": value for name, value in dataclasses.asdict(default.priors).items()},
        "budget_scale": default.budget_scale,
        "mode": default.mode,
        "max_steps": default.max_steps,
        "budget_unit": default.budget_unit,
        "plan_style": default.plan_style,
        "skip_planner_at_or_below": default.skip_planner_at_or_below,
        "planner_max_tokens": default.planner_max_tokens,
        "planner_instructions": 0,
    }
    if len(planner_models) > 1:
        paper_default["planner_model"] = planner_models[0]
    return [
        ("vanilla", {"method": "vanilla"}),
        ("global-budget", {"method": "global-budget"}),
        ("paper-default", paper_default),
    ]


class ProposePlannerInstructions(dspy.Signature):
    """Read the current instructions of a planner that splits math word problems into
    sub-questions, and the example questions. Write alternative instructions that could make
    its plans shorter and more useful. Every alternative must keep the output format: one
    sub-question per line as `1. <sub-question> (difficulty: D)` with D from 1 to 5, then an
    overall difficulty level from 1 to 5."""

    current_instructions: str = dspy.InputField()
    example_questions: str = dspy.InputField(desc="questions the planner will see")
    n_alternatives: int = dspy.InputField()
    alternatives: str = dspy.OutputField(desc="one alternative instruction per line, numbered 1., 2., ...")


def instruction_candidates(
    trainset: Sequence[Question], lm: dspy.BaseLM | None, n_proposals: int, n_examples: int = 4
) -> list[str]:
    """Return the planner instruction candidates: the signature's own, the written ones, then LM proposals.

    Proposals come from one LM call whose prompt contains `n_examples` training questions
    (never their gold answers). Lines that are too short, too long, duplicated or lack the plan format's
    `difficulty` keyword are dropped, so junk output costs nothing but the call. A failed
    call is logged and gives no proposals.
    """
    candidates = [PlanQuestion.instructions, *WRITTEN_INSTRUCTIONS]
    if n_proposals <= 0 or lm is None or not trainset:
        return candidates
    examples = "\n".join(f"- {question.question}" for question in trainset[:n_examples])
    predictor = dspy.Predict(ProposePlannerInstructions)
    try:
        with dspy.context(lm=lm):
            reply = predictor(
                current_instructions=PlanQuestion.instructions, example_questions=examples, n_alternatives=n_proposals
            )
        text = str(reply.alternatives)
    except AdapterParseError as error:
        text = str(error.lm_response or "")
    except (LMError, ConnectionError, TimeoutError) as error:
        logger.warning("proposing planner instructions failed (%s: %s); using the written candidates only", type(error).__name__, error)
        return candidates
    proposals = parse_proposals(text, known=candidates)[:n_proposals]
    logger.info("the LM proposed %d usable planner instructions", len(proposals))
    return candidates + proposals


_NUMBERING_RE = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")


def parse_proposals(text: str, known: Sequence[str] = ()) -> list[str]:
    """Return the usable instruction lines of an LM's reply, in order and without duplicates."""
    proposals: list[str] = []
    seen = {candidate.strip().lower() for candidate in known}
    for line in text.splitlines():
        candidate = _NUMBERING_RE.sub("", line, count=1).strip().strip('"').strip()
        if not MIN_PROPOSAL_CHARS <= len(candidate) <= MAX_PROPOSAL_CHARS:
            continue
        if "difficulty" not in candidate.lower() or "[[" in candidate:
            continue
        if candidate.lower() in seen:
            continue
        seen.add(candidate.lower())
        proposals.append(candidate)
    return proposals
