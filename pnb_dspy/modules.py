"""The Plan-and-Budget DSPy modules: Planner, BudgetedSolver, Aggregator and PlanAndBudget."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import dspy
from dspy.utils.exceptions import AdapterParseError

from pnb_dspy.budget import step_credits
from pnb_dspy.config import BudgetUnit, PlanStyle, PnBConfig, SolveMode
from pnb_dspy.plan import Plan, build_plan, estimate_difficulty, one_step_plan
from pnb_dspy.signatures import AggregateAnswers, PlanQuestion, SolveStep, SolveWithPlan
from pnb_dspy.usage import stage, track_tokens

logger = logging.getLogger(__name__)

WORDS_PER_TOKEN = 0.75


def format_budget(tokens: int, unit: BudgetUnit) -> str:
    """Return a budget as the model reads it, for example `about 60 tokens`."""
    if unit == "words":
        return f"about {max(1, round(tokens * WORDS_PER_TOKEN))} words"
    return f"about {tokens} tokens"


_FIELD_MARKER_RE = re.compile(r"\[\[ ## \w+ ## \]\]")


def text_after_parse_error(error: AdapterParseError) -> str:
    """Return the readable text of a reply the adapter could not parse, without field markers."""
    return _FIELD_MARKER_RE.sub("", str(error.lm_response or "")).strip()


def call_lenient(predictor: dspy.Predict, **inputs: object) -> tuple[dspy.Prediction, bool]:
    """Call `predictor`; when its reply cannot be parsed, fill every output field with the raw text.

    A reply in the wrong format is the model's failure, not the LM call's: the answer checker
    still reads the number or expression in the raw text, and the caller records that parsing
    failed. Returns the prediction and whether parsing failed.
    """
    try:
        return predictor(**inputs), False
    except AdapterParseError as error:
        text = text_after_parse_error(error)
        logger.info("reply to %s could not be parsed; keeping its raw text", type(predictor.signature).__name__)
        return dspy.Prediction(**{name: text for name in predictor.signature.output_fields}), True


class Planner(dspy.Module):
    """Splits a question into 1 to `max_steps` sub-questions with a difficulty each.

    The prediction's `plan` is a `Plan`. When the planner's reply cannot be parsed, holds no
    step or too many, the plan is the question itself as one step and
    `plan.fallback_reason` says why.

    Example:
        >>> planner = Planner(max_steps=3)
        >>> planner(question="What is 2 + 3 * 4?").plan.steps  # doctest: +SKIP
    """

    def __init__(self, max_steps: int = 4, instructions: str | None = None, max_tokens: int | None = 256) -> None:
        super().__init__()
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, but got max_steps={max_steps!r}; plans of 2 to 5 steps are typical")
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        signature = PlanQuestion.with_instructions(instructions) if instructions else PlanQuestion
        self.predict = dspy.Predict(signature)

    def forward(self, question: str) -> dspy.Prediction:
        config = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        try:
            reply = self.predict(question=question, max_steps=self.max_steps, config=config)
        except AdapterParseError as error:
            logger.info("planner reply could not be parsed; using a one-step plan")
            text = str(error.lm_response or "")
            return dspy.Prediction(plan=one_step_plan(question, "the planner reply could not be parsed", raw_text=text))
        return dspy.Prediction(plan=build_plan(question, reply.plan, reply.level, self.max_steps))


class BudgetedSolver(dspy.Module):
    """Solves a question along a plan within per-step token budgets.

    Modes:
        single_pass: one call that sees the question, the plan and each step's budget; the
            budgets are instructions to the model, not caps.
        stepwise: one call per sub-question, capped at its budget plus `step_margin` tokens
            through `max_tokens`; each call sees the earlier sub-answers. The prediction's
            `answer` is empty in this mode: `Aggregator` writes it.
    """

    def __init__(
        self,
        mode: SolveMode = "single_pass",
        budget_unit: BudgetUnit = "tokens",
        plan_style: PlanStyle = "required",
        step_margin: int = 32,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.budget_unit = budget_unit
        self.plan_style = plan_style
        self.step_margin = step_margin
        self.solve = dspy.Predict(SolveWithPlan)
        self.solve_step = dspy.Predict(SolveStep)

    def forward(self, question: str, plan: Plan, budgets: Sequence[int]) -> dspy.Prediction:
        if len(budgets) != len(plan.steps):
            raise ValueError(f"got {len(budgets)} budgets for a plan of {len(plan.steps)} steps; pass one budget per step")
        if self.mode == "stepwise":
            return self._solve_stepwise(question, plan, budgets)
        return self._solve_single_pass(question, plan, budgets)

    def format_plan(self, plan: Plan, budgets: Sequence[int]) -> str:
        """Return the plan as the solver reads it: numbered steps, each with its budget."""
        header = "Follow these steps:" if self.plan_style == "required" else "Optional hints; use them only if they help:"
        lines = [header]
        for index, (step, budget) in enumerate(zip(plan.steps, budgets), start=1):
            lines.append(f"{index}. {step.sub_question} ({format_budget(budget, self.budget_unit)})")
        return "\n".join(lines)

    def _solve_single_pass(self, question: str, plan: Plan, budgets: Sequence[int]) -> dspy.Prediction:
        reply, parse_failed = call_lenient(self.solve, question=question, plan=self.format_plan(plan, budgets))
        return dspy.Prediction(answer=reply.answer, solution=reply.solution, step_answers=[], parse_failed=parse_failed)

    def _solve_stepwise(self, question: str, plan: Plan, budgets: Sequence[int]) -> dspy.Prediction:
        step_answers: list[str] = []
        any_parse_failed = False
        for step, budget in zip(plan.steps, budgets):
            previous = _format_steps(plan.sub_questions[: len(step_answers)], step_answers) or "(none yet)"
            # A reply cut off at its cap often lacks the closing field marker; its text is kept.
            reply, parse_failed = call_lenient(
                self.solve_step,
                question=question,
                previous_steps=previous,
                sub_question=step.sub_question,
                budget=format_budget(budget, self.budget_unit),
                config={"max_tokens": budget + self.step_margin},
            )
            step_answers.append(str(reply.sub_answer))
            any_parse_failed = any_parse_failed or parse_failed
        solution = _format_steps(plan.sub_questions, step_answers)
        return dspy.Prediction(answer="", solution=solution, step_answers=step_answers, parse_failed=any_parse_failed)


class Aggregator(dspy.Module):
    """Writes the final answer from the answered sub-questions."""

    def __init__(self) -> None:
        super().__init__()
        self.aggregate = dspy.Predict(AggregateAnswers)

    def forward(self, question: str, sub_questions: Sequence[str], step_answers: Sequence[str]) -> dspy.Prediction:
        reply, parse_failed = call_lenient(self.aggregate, question=question, steps=_format_steps(sub_questions, step_answers))
        return dspy.Prediction(answer=reply.answer, parse_failed=parse_failed)


def _format_steps(sub_questions: Sequence[str], answers: Sequence[str]) -> str:
    lines = []
    for index, (sub_question, answer) in enumerate(zip(sub_questions, answers), start=1):
        lines.append(f"{index}. {sub_question}\n   Answer: {answer}")
    return "\n".join(lines)


class PlanAndBudget(dspy.Module):
    """Plan, budget, solve and aggregate: the Plan-and-Budget method as one DSPy module.

    Args:
        config: the scheduler, budget model, level map, solve mode and limits.
        planner_lm: an LM for the planner only (for example a small, cheap model in front
            of a large solver); None uses the LM configured for the rest.

    The prediction contains `answer`, `plan` (a `Plan`), `level`, `total_budget` and `budgets`
    (generated tokens), `plan_fallback` (the reason, or None) and `tokens`, the generated
    tokens by stage as counted by `pnb_dspy.usage`.

    Example:
        >>> program = PlanAndBudget(PnBConfig(scheduler="cosine", mode="stepwise"))
        >>> prediction = program(question="A shop sells 3 pens for $2. How much do 12 pens cost?")  # doctest: +SKIP
        >>> prediction.answer, prediction.tokens["total"]  # doctest: +SKIP
    """

    def __init__(self, config: PnBConfig | None = None, planner_lm: dspy.BaseLM | None = None) -> None:
        super().__init__()
        self.config = config or PnBConfig()
        self.planner_lm = planner_lm
        self.planner = Planner(self.config.max_steps, self.config.planner_instructions, self.config.planner_max_tokens)
        self.solver = BudgetedSolver(self.config.mode, self.config.budget_unit, self.config.plan_style, self.config.step_margin)
        self.aggregator = Aggregator()

    def forward(self, question: str, level: int | None = None) -> dspy.Prediction:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be non-empty text, but got {question!r}; pass the question to answer")

        with track_tokens() as ledger:
            plan = self._plan(question, level)
            level_used = level if level is not None else plan.level
            total_budget = self.config.level_map().total_tokens(level_used)
            budgets = self.allocate(plan, total_budget)

            with stage("solver"):
                solved = self.solver(question=question, plan=plan, budgets=budgets)
            answer = solved.answer
            parse_failed = solved.parse_failed
            if self.config.mode == "stepwise":
                with stage("aggregator"):
                    aggregated = self.aggregator(
                        question=question, sub_questions=plan.sub_questions, step_answers=solved.step_answers
                    )
                answer = aggregated.answer
                parse_failed = parse_failed or aggregated.parse_failed

        return dspy.Prediction(
            answer=answer,
            solution=solved.solution,
            step_answers=solved.step_answers,
            plan=plan,
            level=level_used,
            total_budget=total_budget,
            budgets=budgets,
            plan_fallback=plan.fallback_reason,
            parse_failed=parse_failed,
            tokens=ledger.as_dict(),
        )

    def allocate(self, plan: Plan, total_budget: int) -> list[int]:
        """Split `total_budget` generated tokens over the plan's steps."""
        min_per_step = min(self.config.min_tokens_per_step, total_budget // len(plan.steps))
        credits = step_credits(plan.difficulties, self.config.priors, total_budget)
        return self.config.make_scheduler().allocate(credits, total_budget, min_per_step)

    def _plan(self, question: str, level: int | None) -> Plan:
        threshold = self.config.skip_planner_at_or_below
        if threshold and estimate_difficulty(question) <= threshold:
            return one_step_plan(question, "skipped: the question's difficulty estimate is at or below the threshold", level or 1)
        with stage("planner"):
            if self.planner_lm is None:
                return self.planner(question=question).plan
            with dspy.context(lm=self.planner_lm):
                return self.planner(question=question).plan
