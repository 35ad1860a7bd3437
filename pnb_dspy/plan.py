"""Plans: the sub-questions a planner proposes, parsed leniently and checked.

A planner writes lines such as `1. How many eggs are left? (difficulty: 2)`. The parser
accepts the usual variants small models produce (`-` or `*` bullets, `Step 1:`,
`[difficulty 2]`, `difficulty=2`) and falls back to a one-step plan, the question itself,
when the text contains no step, more steps than allowed, or nothing usable at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_DIFFICULTY = 3
MIN_DIFFICULTY, MAX_DIFFICULTY = 1, 5

_STEP_PREFIX_RE = re.compile(r"^\s*(?:(?:step|sub-?question)\s*)?(?:\d+\s*[.):]|[-*•])\s*", re.IGNORECASE)
_DIFFICULTY_RE = re.compile(
    r"[\(\[\{]?\s*\b(?:difficulty|complexity|credit|level)\s*[:=]?\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?\s*[\)\]\}]?",
    re.IGNORECASE,
)
_LEVEL_RE = re.compile(r"(?<!\d)([1-5])(?!\d)")
# An unnumbered line that starts with one of these labels rates the whole plan, not a step.
_SUMMARY_LABEL_RE = re.compile(r"^\s*(?:overall|total|question|problem|level|difficulty)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Step:
    """One sub-question and its difficulty, an integer from 1 (easy) to 5 (hard)."""

    sub_question: str
    difficulty: int = DEFAULT_DIFFICULTY


@dataclass(frozen=True)
class Plan:
    """The steps of a plan and the question's overall difficulty level (1 to 5).

    Attributes:
        fallback_reason: why the planner's output was replaced by a one-step plan, or None
            when the planner's own plan is used.
    """

    steps: tuple[Step, ...]
    level: int = DEFAULT_DIFFICULTY
    fallback_reason: str | None = None
    raw_text: str = field(default="", repr=False)

    @property
    def used_fallback(self) -> bool:
        return self.fallback_reason is not None

    @property
    def sub_questions(self) -> list[str]:
        return [step.sub_question for step in self.steps]

    @property
    def difficulties(self) -> list[int]:
        return [step.difficulty for step in self.steps]


def one_step_plan(question: str, reason: str, level: int = DEFAULT_DIFFICULTY, raw_text: str = "") -> Plan:
    """Return the fallback plan: the whole question as its only step."""
    return Plan(steps=(Step(question.strip(), level),), level=level, fallback_reason=reason, raw_text=raw_text)


def parse_level(text: str | None) -> int | None:
    """Return the first standalone digit from 1 to 5 in `text` (not part of `10` or `25`), or None."""
    if not text:
        return None
    match = _LEVEL_RE.search(str(text))
    return int(match.group(1)) if match else None


def parse_steps(text: str) -> list[Step]:
    """Return the steps written in `text`, one per non-empty line that looks like a step."""
    steps = []
    for line in text.splitlines():
        if not line.strip():
            continue
        has_prefix = _STEP_PREFIX_RE.match(line) is not None
        if not has_prefix and _SUMMARY_LABEL_RE.match(line):
            continue
        body = _STEP_PREFIX_RE.sub("", line, count=1)
        difficulty = DEFAULT_DIFFICULTY
        # The rating follows the sub-question, so the last match is the rating even when the
        # sub-question itself mentions a level or difficulty.
        matches = list(_DIFFICULTY_RE.finditer(body))
        match = matches[-1] if matches else None
        if match:
            difficulty = _clamp_difficulty(float(match.group(1)))
            body = " ".join((body[: match.start()] + " " + body[match.end() :]).split())
        body = body.strip().strip("-:").strip()
        if not body or not (has_prefix or match):
            continue
        steps.append(Step(body, difficulty))
    return steps


def _clamp_difficulty(value: float) -> int:
    return int(min(MAX_DIFFICULTY, max(MIN_DIFFICULTY, round(value))))


def build_plan(question: str, plan_text: str | None, level_text: str | None, max_steps: int) -> Plan:
    """Parse a planner's output into a `Plan`, falling back to one step when it is unusable."""
    level = parse_level(level_text) or DEFAULT_DIFFICULTY
    text = plan_text or ""
    steps = parse_steps(text)
    if not steps:
        return one_step_plan(question, "the plan held no parseable step", level, text)
    if len(steps) > max_steps:
        return one_step_plan(question, f"the plan had {len(steps)} steps, more than max_steps={max_steps}", level, text)
    return Plan(steps=tuple(steps), level=level, raw_text=text)


def estimate_difficulty(question: str) -> int:
    """Return a cheap difficulty estimate from 1 to 5 that needs no LM call.

    Each of these adds one level to 1: at least 3 numbers in the question, at least 5
    numbers, at least 60 words, at least 120 words. Word problems with more quantities and
    more text tend to need more steps, which is all this estimate claims.
    """
    numbers = len(re.findall(r"\d+(?:[.,]\d+)?", question))
    words = len(question.split())
    level = 1 + (numbers >= 3) + (numbers >= 5) + (words >= 60) + (words >= 120)
    return min(MAX_DIFFICULTY, level)
