"""Tests for answer extraction and checking on GSM8K-style and MATH-500-style answers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from pnb_dspy.answers import extract_boxed, gold_answer, is_correct, parse_number

GSM8K_GOLD = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n"
    "#### 18"
)
THOUSAND_GOLD = "He pays 4 * 250 = <<4*250=1000>>1000 dollars.\n#### 1,000"
NEGATIVE_GOLD = "The temperature drops to 3 - 8 = <<3-8=-5>>-5 degrees.\n#### -5"
POLAR_GOLD = "\\left( 3, \\frac{\\pi}{2} \\right)"


@pytest.mark.parametrize(
    ("prediction", "gold", "kind", "expected"),
    [
        ("18", GSM8K_GOLD, "auto", True),
        ("$18", GSM8K_GOLD, "auto", True),
        ("$18.00", GSM8K_GOLD, "auto", True),
        ("\\$18", GSM8K_GOLD, "auto", True),
        ("18 dollars", GSM8K_GOLD, "auto", True),
        ("18.", GSM8K_GOLD, "auto", True),
        ("18 eggs", GSM8K_GOLD, "auto", True),
        ("The answer is 18.", GSM8K_GOLD, "auto", True),
        ("**Answer:** 18", GSM8K_GOLD, "auto", True),
        ("Answer: 18\n", GSM8K_GOLD, "auto", True),
        ("\\boxed{18}", GSM8K_GOLD, "auto", True),
        ("The final answer is $\\boxed{18}$", GSM8K_GOLD, "auto", True),
        ("She makes 9 * 2 = 18 dollars.", GSM8K_GOLD, "auto", True),
        ("\\boxed{\\text{18}}", GSM8K_GOLD, "auto", True),
        ("36/2", GSM8K_GOLD, "number", True),
        ("\\boxed{1,000}", THOUSAND_GOLD, "auto", True),
        ("\\boxed{1{,}000}", THOUSAND_GOLD, "auto", True),
        ("1,000", THOUSAND_GOLD, "auto", True),
        ("1000", THOUSAND_GOLD, "auto", True),
        ("1000.0", THOUSAND_GOLD, "auto", True),
        ("-5", NEGATIVE_GOLD, "auto", True),
        ("The answer is -5.", NEGATIVE_GOLD, "number", True),
        ("0.5", "1/2", "auto", True),
        ("0.5", "1/2", "number", True),
        ("1/2", "0.5", "auto", True),
        ("3/4", "0.75", "auto", True),
        ("\\frac{3}{4}", "0.75", "auto", True),
        ("50%", "50", "auto", True),
        ("17", GSM8K_GOLD, "auto", False),
        ("180", GSM8K_GOLD, "auto", False),
        ("1.8", GSM8K_GOLD, "auto", False),
        ("-18", GSM8K_GOLD, "auto", False),
        ("0.18", GSM8K_GOLD, "auto", False),
        ("$18.50", GSM8K_GOLD, "auto", False),
        ("The answer is 19.", GSM8K_GOLD, "auto", False),
        ("The answer is 18 + 1 = 19", GSM8K_GOLD, "auto", False),
        ("I think 18 is wrong; the answer is 20", GSM8K_GOLD, "auto", False),
        ("no idea", GSM8K_GOLD, "auto", False),
        ("", GSM8K_GOLD, "auto", False),
        ("   ", GSM8K_GOLD, "auto", False),
        (None, GSM8K_GOLD, "auto", False),
        ("18", "#### 180", "auto", False),
        ("5", NEGATIVE_GOLD, "auto", False),
        ("100", THOUSAND_GOLD, "auto", False),
        ("1/3", "0.333", "auto", False),
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", "latex", True),
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", "auto", True),
        ("14/3", "\\frac{14}{3}", "auto", True),
        ("14/3", "\\frac{14}{3}", "latex", True),
        ("$\\frac{14}{3}$", "\\frac{14}{3}", "auto", True),
        ("The final answer is $\\boxed{\\frac{14}{3}}$.", "\\frac{14}{3}", "auto", True),
        ("\\frac{14}{5}", "\\frac{14}{3}", "latex", False),
        ("4.67", "\\frac{14}{3}", "auto", False),
        ("\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", POLAR_GOLD, "latex", True),
        ("\\boxed{(3, \\frac{\\pi}{2})}", POLAR_GOLD, "auto", True),
        ("(3, \\pi)", POLAR_GOLD, "auto", False),
        ("p - q", "p - q", "auto", True),
        ("\\boxed{p-q}", "p - q", "latex", True),
        ("q - p", "p - q", "auto", False),
        ("\\boxed{\\text{(C)}}", "\\text{(C)}", "auto", True),
        ("(C)", "\\text{(C)}", "auto", True),
        ("\\boxed{C}", "\\text{(C)}", "auto", True),
        ("\\text{(D)}", "\\text{(C)}", "auto", False),
        ("6 - 5i", "6 - 5i", "auto", True),
        ("\\boxed{6-5i}", "6 - 5i", "latex", True),
        ("6+5i", "6 - 5i", "auto", False),
        ("\\boxed{\\sqrt{2}}", "\\sqrt{2}", "auto", True),
        ("$\\sqrt{2}$", "\\sqrt{2}", "latex", True),
        ("\\sqrt{3}", "\\sqrt{2}", "latex", False),
        ("[-2, 7]", "[-2,7]", "auto", True),
        ("", "\\frac{14}{3}", "latex", False),
    ],
)
def test_answer_forms_table(prediction: str | None, gold: str, kind: str, expected: bool) -> None:
    assert is_correct(prediction, gold, kind) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("\\sqrt{2}", "\\sqrt{2}"),
        ("\\dfrac{14}{3}", "\\frac{14}{3}"),
        ("(3, \\frac{\\pi}{2})", POLAR_GOLD),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", POLAR_GOLD),
        ("\\text{(C)}", "\\text{(C)}"),
    ],
)
def test_bare_latex_prediction_matches(prediction: str, gold: str) -> None:
    assert is_correct(prediction, gold, "auto") is True


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("2", "\\sqrt{2}"),
        ("5", "6 - 5i"),
        ("6+5i", "6 - 5i"),
        ("2", POLAR_GOLD),
    ],
)
def test_latex_kind_rejects_stray_numbers(prediction: str, gold: str) -> None:
    assert is_correct(prediction, gold, "latex") is False


def test_latex_check_in_worker_thread() -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        future = executor.submit(is_correct, "\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", "latex")

        assert future.result(timeout=60) is True


def test_latex_mismatch_in_plain_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(is_correct("\\boxed{\\sqrt{3}}", "\\sqrt{2}", "auto")))
    worker.start()
    worker.join(timeout=60)

    assert results == [False]


@pytest.mark.parametrize(
    ("raw_gold", "expected"),
    [
        (GSM8K_GOLD, "18"),
        (THOUSAND_GOLD, "1,000"),
        (NEGATIVE_GOLD, "-5"),
        ("#### 1,000\n", "1,000"),
        ("  42 ", "42"),
        ("\\frac{14}{3}", "\\frac{14}{3}"),
    ],
)
def test_gold_answer_extraction(raw_gold: str, expected: str) -> None:
    assert gold_answer(raw_gold) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{18}", "18"),
        ("so \\boxed{\\frac{1}{2}} then \\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\boxed{ {1,2} }", "{1,2}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{unclosed", None),
        ("no box here", None),
    ],
)
def test_extract_boxed_nested_braces(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", Decimal("1234.50")),
        ("18 dollars", Decimal(18)),
        ("18.", Decimal(18)),
        ("\\boxed{18}", Decimal(18)),
        ("3/4", Decimal("0.75")),
        ("\\frac{3}{4}", Decimal("0.75")),
        ("-\\frac{1}{2}", Decimal("-0.5")),
        ("-1/2", Decimal("-0.5")),
        ("50%", Decimal(50)),
        ("The answer is 42", Decimal(42)),
        ("3 + 4 = 7", Decimal(7)),
        (".5", Decimal("0.5")),
        ("1/0", None),
        ("no number", None),
        ("", None),
    ],
)
def test_parse_number_forms(text: str, expected: Decimal | None) -> None:
    assert parse_number(text) == expected
