"""Tests for parsing a planner's output into steps and for the one-step fallback plan."""

from __future__ import annotations

import pytest

from pnb_dspy.plan import (
    DEFAULT_DIFFICULTY,
    Plan,
    Step,
    build_plan,
    estimate_difficulty,
    one_step_plan,
    parse_level,
    parse_steps,
)

QUESTION = "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. How many are left?"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1. How many eggs are eaten? (difficulty: 2)", Step("How many eggs are eaten?", 2)),
        ("2) Add the baked eggs (difficulty: 4)", Step("Add the baked eggs", 4)),
        ("- Subtract from 16 [difficulty 4]", Step("Subtract from 16", 4)),
        ("* Multiply by the price difficulty=5", Step("Multiply by the price", 5)),
        ("• Sum the parts (Difficulty: 3/5)", Step("Sum the parts", 3)),
        ("Step 1: Find the eggs eaten", Step("Find the eggs eaten", DEFAULT_DIFFICULTY)),
        ("Step 2: Add them (difficulty: 1)", Step("Add them", 1)),
        ("Sub-question 2: Add y (complexity: 4)", Step("Add y", 4)),
        ("10. Find z", Step("Find z", DEFAULT_DIFFICULTY)),
        ("Find the remaining eggs (difficulty: 2)", Step("Find the remaining eggs", 2)),
        ("1. Compute 3.5 + 2 (difficulty: 1)", Step("Compute 3.5 + 2", 1)),
        ("   3.   Indented step   (difficulty: 2)  ", Step("Indented step", 2)),
    ],
)
def test_parse_step_variants(line: str, expected: Step) -> None:
    assert parse_steps(line) == [expected]


@pytest.mark.parametrize(
    ("line", "expected_difficulty"),
    [
        ("1. Find x (difficulty: 9)", 5),
        ("1. Find x (difficulty: 0)", 1),
        ("1. Find x (difficulty: 2.6)", 3),
        ("1. Find x (difficulty: 5)", 5),
        ("1. Find x (difficulty: 1)", 1),
    ],
)
def test_difficulty_clamped_to_range(line: str, expected_difficulty: int) -> None:
    assert parse_steps(line)[0].difficulty == expected_difficulty


def test_multiline_plan_keeps_order() -> None:
    text = (
        "Here is the plan:\n"
        "1. How many eggs are eaten or baked? (difficulty: 1)\n"
        "\n"
        "2. How many eggs are left? (difficulty: 2)\n"
        "3. How much does she earn? (difficulty: 3)\n"
    )

    steps = parse_steps(text)

    assert [step.sub_question for step in steps] == [
        "How many eggs are eaten or baked?",
        "How many eggs are left?",
        "How much does she earn?",
    ]
    assert [step.difficulty for step in steps] == [1, 2, 3]


@pytest.mark.parametrize("text", ["Just some prose about eggs", "Let me think.", "", "   \n\n  ", "1. (difficulty: 2)"])
def test_lines_without_step_skipped(text: str) -> None:
    assert parse_steps(text) == []


def test_keyword_inside_sub_question() -> None:
    steps = parse_steps("1. What is the level 3 reward? (difficulty: 5)")

    assert steps == [Step("What is the level 3 reward?", 5)]


def test_overall_rating_not_a_step() -> None:
    text = "1. Find x (difficulty: 2)\n2. Add y (difficulty: 4)\nOverall difficulty: 4"

    assert parse_steps(text) == [Step("Find x", 2), Step("Add y", 4)]


def test_build_plan_uses_parsed_steps() -> None:
    plan = build_plan(QUESTION, "1. Find x (difficulty: 2)\n2. Add y (difficulty: 4)", "4", max_steps=4)

    assert plan.steps == (Step("Find x", 2), Step("Add y", 4))
    assert plan.level == 4
    assert plan.fallback_reason is None
    assert plan.used_fallback is False
    assert plan.sub_questions == ["Find x", "Add y"]
    assert plan.difficulties == [2, 4]


@pytest.mark.parametrize(
    ("plan_text", "reason"),
    [
        ("", "the plan held no parseable step"),
        (None, "the plan held no parseable step"),
        ("I cannot split this question into parts.", "the plan held no parseable step"),
        ("%%%% ### ??? \n ))) ", "the plan held no parseable step"),
    ],
)
def test_unusable_plan_falls_back(plan_text: str | None, reason: str) -> None:
    plan = build_plan(QUESTION, plan_text, "2", max_steps=4)

    assert plan.fallback_reason == reason
    assert plan.used_fallback is True
    assert plan.steps == (Step(QUESTION, 2),)
    assert plan.level == 2


def test_too_many_steps_fall_back() -> None:
    text = "\n".join(f"{number}. Step number {number} (difficulty: 2)" for number in range(1, 51))

    plan = build_plan(QUESTION, text, "3", max_steps=4)

    assert plan.fallback_reason == "the plan had 50 steps, more than max_steps=4"
    assert plan.sub_questions == [QUESTION]
    assert plan.raw_text == text


def test_max_steps_boundary_kept() -> None:
    text = "\n".join(f"{number}. Step number {number}" for number in range(1, 5))

    plan = build_plan(QUESTION, text, "3", max_steps=4)

    assert plan.fallback_reason is None
    assert len(plan.steps) == 4


def test_unparseable_level_uses_default() -> None:
    plan = build_plan(QUESTION, "1. Find x", "hard", max_steps=4)

    assert plan.level == DEFAULT_DIFFICULTY


def test_one_step_plan_strips_question() -> None:
    plan = one_step_plan("  What is 2 + 3?  ", "test reason", level=1)

    assert plan == Plan(steps=(Step("What is 2 + 3?", 1),), level=1, fallback_reason="test reason")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("Level 4 (hard)", 4),
        ("level: 5/5", 5),
        ("1", 1),
        ("0", None),
        ("6", None),
        ("x", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_level_values(text: str | None, expected: int | None) -> None:
    assert parse_level(text) == expected


@pytest.mark.parametrize(
    "question",
    [
        "",
        "What is 2 + 3?",
        QUESTION,
        "A train leaves at 3 pm going 60 mph; a second leaves at 4 pm going 80 mph from 300 miles away. " * 5,
        " ".join(f"item {number}" for number in range(200)),
    ],
)
def test_estimate_difficulty_in_range(question: str) -> None:
    assert 1 <= estimate_difficulty(question) <= 5


def test_estimate_difficulty_grows() -> None:
    short = estimate_difficulty("What is 2 + 3?")
    long_question = " ".join(f"item {number}" for number in range(200))

    assert short == 1
    assert estimate_difficulty(long_question) == 5
