"""Answer extraction and checking: numbers (GSM8K style) and LaTeX (MATH style).

Numeric answers are compared as exact decimals after stripping the decoration that model
output carries: thousands separators, currency signs, units, trailing periods, `\\boxed{}`
and phrases such as "the answer is". LaTeX answers go through math-verify.

math-verify bounds its work with `signal.alarm`, which only works on the main thread. Off
the main thread this module turns that timeout off and waits for the comparison in a helper
thread instead, so checking works inside evaluation worker threads.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
from decimal import Decimal, InvalidOperation
from typing import Literal

logger = logging.getLogger(__name__)

AnswerKind = Literal["number", "latex", "auto"]
LATEX_CHECK_TIMEOUT_SECONDS = 10.0

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(r"^(-?\d+)\s*/\s*(\d+)$")
_LATEX_FRACTION_RE = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
_ANSWER_PHRASE_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*(.+)", re.IGNORECASE | re.DOTALL
)
_GSM8K_GOLD_RE = re.compile(r"####\s*(.+)\s*$")

_checker_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pnb-latex-check")


def extract_boxed(text: str) -> str | None:
    """Return the contents of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for index in range(brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : index].strip()
    return None


def gold_answer(raw_gold: str) -> str:
    """Return the final answer in a gold field: the part after `####` when present."""
    match = _GSM8K_GOLD_RE.search(raw_gold.strip())
    if match:
        return match.group(1).strip()
    return raw_gold.strip()


def parse_number(text: str) -> Decimal | None:
    """Return the number a short answer states, or None when it states none.

    Handles `$1,234.50`, `18 dollars`, `18.`, `\\boxed{18}`, `3/4`, `\\frac{3}{4}`, `50%`
    (as 50) and a leading "The answer is". When several numbers occur, the last one wins,
    because models state the result after the working.
    """
    candidate = extract_boxed(text)
    if candidate is None:
        phrase = _ANSWER_PHRASE_RE.search(text)
        candidate = phrase.group(1) if phrase else text
    candidate = candidate.replace("\\$", "").replace("$", "").replace("\\!", "").replace("\\,", "")
    candidate = candidate.replace("{,}", ",").replace("\u2212", "-").strip().rstrip(".").strip()

    fraction = _FRACTION_RE.match(candidate) or _LATEX_FRACTION_RE.match(candidate)
    if fraction:
        return _fraction_value(fraction)

    numbers = _NUMBER_RE.findall(candidate)
    if not numbers:
        return None
    return _to_decimal(numbers[-1])


def _fraction_value(match: re.Match[str]) -> Decimal | None:
    groups = match.groups()
    sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
    numerator, denominator = Decimal(groups[-2]), Decimal(groups[-1])
    if denominator == 0:
        return None
    return sign * numerator / denominator


def _to_decimal(number_text: str) -> Decimal | None:
    cleaned = number_text.replace(",", "")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def numbers_match(prediction: str, gold: str) -> bool:
    """Return whether the prediction states the same number as the gold answer."""
    gold_value = parse_number(gold_answer(gold))
    predicted_value = parse_number(prediction)
    if gold_value is None or predicted_value is None:
        return False
    return abs(gold_value - predicted_value) <= Decimal("1e-6") * max(Decimal(1), abs(gold_value))


def latex_match(prediction: str, gold: str) -> bool:
    """Return whether math-verify judges the prediction equal to the LaTeX gold answer."""
    if threading.current_thread() is threading.main_thread():
        return _verify_latex(prediction, gold, use_signal_timeout=True)
    future = _checker_pool.submit(_verify_latex, prediction, gold, False)
    try:
        return future.result(timeout=LATEX_CHECK_TIMEOUT_SECONDS)
    except concurrent.futures.TimeoutError:
        # NOTE: the comparison thread keeps running until sympy returns; it cannot be interrupted.
        logger.warning("math-verify took over %.0f s on %r; counted as not equal", LATEX_CHECK_TIMEOUT_SECONDS, prediction)
        return False


def _verify_latex(prediction: str, gold: str, use_signal_timeout: bool) -> bool:
    from math_verify import parse, verify

    seconds = 5 if use_signal_timeout else None
    gold_text = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
    boxed = extract_boxed(prediction)
    prediction_text = f"${boxed}$" if boxed is not None else prediction
    if "$" not in prediction_text:
        prediction_text = f"${prediction_text}$"
    parsed_gold = parse(gold_text, parsing_timeout=seconds)
    parsed_prediction = parse(prediction_text, parsing_timeout=seconds)
    if not parsed_gold or not parsed_prediction:
        return False
    return bool(verify(parsed_gold, parsed_prediction, timeout_seconds=seconds))


def is_correct(prediction: str | None, gold: str, kind: AnswerKind = "auto") -> bool:
    """Return whether `prediction` matches `gold`.

    Args:
        prediction: the model's answer text; None or blank never matches.
        gold: the reference answer, either a bare answer or a worked solution ending in
            `#### answer`.
        kind: `number` compares numerically, `latex` uses math-verify, and `auto` compares
            numerically when the gold answer is a plain number and uses math-verify otherwise.
    """
    if prediction is None or not prediction.strip():
        return False
    if kind == "number":
        return numbers_match(prediction, gold)
    if kind == "latex":
        # Falling back to numbers is safe only when the gold answer is itself a plain number
        # or fraction: the last number of `6 - 5i` or `\\sqrt{2}` is not the answer.
        if _is_plain_number_or_fraction(gold_answer(gold)) and numbers_match(prediction, gold):
            return True
        return latex_match(prediction, gold)
    if _is_plain_number(gold_answer(gold)):
        return numbers_match(prediction, gold)
    return latex_match(prediction, gold)


def _is_plain_number(text: str) -> bool:
    return re.fullmatch(r"\s*-?[\d,]*\.?\d+\s*", text) is not None


def _is_plain_number_or_fraction(text: str) -> bool:
    cleaned = text.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("{,}", ",").strip()
    if _is_plain_number(cleaned):
        return True
    return (_FRACTION_RE.match(cleaned) or _LATEX_FRACTION_RE.match(cleaned)) is not None
