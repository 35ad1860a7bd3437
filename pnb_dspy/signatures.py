"""DSPy signatures for planning, solving and aggregating, and for the two baselines."""

from __future__ import annotations

import dspy

class PlanQuestion(dspy.Signature):
    """Break the question into a short list of sub-questions that, answered in order, solve it.
    Each sub-question asks for one intermediate quantity; do not copy the question's sentences.
    Write one per line as `1. <sub-question> (difficulty: D)`, where D is 1 (trivial) to 5 (hard),
    for example `1. How many eggs are left after breakfast? (difficulty: 2)`. Then rate the whole
    question's difficulty level from 1 to 5."""

    question: str = dspy.InputField()
    max_steps: int = dspy.InputField(desc="the largest number of sub-questions allowed")
    plan: str = dspy.OutputField(desc="numbered sub-questions, one per line, each with (difficulty: D)")
    level: str = dspy.OutputField(desc="overall difficulty level, a single digit from 1 to 5")


class SolveWithPlan(dspy.Signature):
    """Solve the question by working through the plan's steps in order. Keep each step within
    about the budget stated for it, then give the final answer as a number or expression only."""

    question: str = dspy.InputField()
    plan: str = dspy.InputField(desc="the steps to work through, each with its budget")
    solution: str = dspy.OutputField(desc="the working, step by step")
    answer: str = dspy.OutputField(desc="the final answer only")


class SolveStep(dspy.Signature):
    """Answer the current sub-question of a larger question, using the earlier steps' results.
    Be brief: stay within the stated budget."""

    question: str = dspy.InputField(desc="the original question")
    previous_steps: str = dspy.InputField(desc="earlier sub-questions with their answers")
    sub_question: str = dspy.InputField()
    budget: str = dspy.InputField(desc="how long the answer may be")
    sub_answer: str = dspy.OutputField()


class AggregateAnswers(dspy.Signature):
    """Combine the answered sub-questions into the final answer to the question. Give the final
    answer as a number or expression only."""

    question: str = dspy.InputField()
    steps: str = dspy.InputField(desc="the sub-questions with their answers, in order")
    answer: str = dspy.OutputField(desc="the final answer only")


class SolveStepByStep(dspy.Signature):
    """Solve the question. Think step by step, then give the final answer as a number or
    expression only."""

    question: str = dspy.InputField()
    solution: str = dspy.OutputField(desc="the working, step by step")
    answer: str = dspy.OutputField(desc="the final answer only")


class SolveWithinBudget(dspy.Signature):
    """Solve the question. Think step by step but stay within the stated budget, then give the
    final answer as a number or expression only."""

    question: str = dspy.InputField()
    budget: str = dspy.InputField(desc="how long the working may be")
    solution: str = dspy.OutputField(desc="the working, step by step")
    answer: str = dspy.OutputField(desc="the final answer only")
