"""A scripted lm15 engine for compiler tests: fixed plans, budget-dependent answers, real token counts.

Questions have the form `What is A + B?`. A solver reply is correct when the budget stated in
its prompt (summed over the plan's steps) is at least `CORRECT_AT_TOKENS`, a stepwise
sub-answer when its step's budget is at least half that, and the aggregator repeats the last
sub-answer. So configurations trade accuracy against tokens as real ones do. Each reply reports `output_tokens` through
lm15's `Usage`, so the token ledger counts reported tokens.
"""

from __future__ import annotations

import re
import time

import dspy
from dspy import lm15

CORRECT_AT_TOKENS = 300
VANILLA_TOKENS = 400
PLANNER_TOKENS = 30
_QUESTION_RE = re.compile(r"What is (\d+) \+ (\d+)\?")
_BUDGET_RE = re.compile(r"about (\d+) (tokens|words)")
_SUB_ANSWER_RE = re.compile(r"Answer: (\d+)")


def make_questions_file(path, n_rows: int = 12) -> None:
    """Write `n_rows` GSM8K-style rows (`question`, `answer` ending in `#### N`) to `path`."""
    import json

    with open(path, "w", encoding="utf-8") as handle:
        for index in range(n_rows):
            a, b = 10 + index, 3 * index + 1
            handle.write(json.dumps({"question": f"What is {a} + {b}?", "answer": f"{a} plus {b}.\n#### {a + b}"}) + "\n")


class ScriptedEngine:
    """Answers DSPy chat-adapter prompts of the pnb signatures; `delay` seconds per call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def complete(self, request: lm15.Request) -> lm15.Response:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        system = request.system if isinstance(request.system, str) else "".join(getattr(part, "text", "") for part in request.system or [])
        user = "\n".join(message.text or "" for message in request.messages)
        text, tokens = _reply(system, user)
        return lm15.Response(
            id=None,
            model=request.model,
            message=lm15.Message.assistant([lm15.TextPart(text)]),
            finish_reason="stop",
            usage=lm15.Usage(input_tokens=10, output_tokens=tokens, total_tokens=10 + tokens),
        )

    def stream(self, request: lm15.Request):
        return lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def _fields(**values: object) -> str:
    return "".join(f"[[ ## {name} ## ]]\n{value}\n\n" for name, value in values.items()) + "[[ ## completed ## ]]"


def _reply(system: str, user: str) -> tuple[str, int]:
    question = _QUESTION_RE.search(user)
    total = int(question.group(1)) + int(question.group(2)) if question else 0
    if "`alternatives`" in system:
        return _fields(alternatives="1. junk\n2. Split the problem into sub-questions, each line `1. <q> (difficulty: D)`, then rate the level."), 40
    if "`plan`" in system and "`level`" in system:
        return _fields(plan="1. Add the two numbers (difficulty: 2)\n2. Check the sum (difficulty: 1)", level=2), PLANNER_TOKENS
    if "`sub_answer`" in system:
        budget = _stated_tokens(user)
        sub_answer = total if budget >= CORRECT_AT_TOKENS // 2 else total + 1
        return _fields(sub_answer=str(sub_answer)), max(1, budget // 2)
    if "`steps`" in system:
        # The aggregator repeats the last sub-answer, right or wrong.
        sub_answers = _SUB_ANSWER_RE.findall(user)
        return _fields(answer=sub_answers[-1] if sub_answers else "0"), 5
    budget = _stated_tokens(user)
    if budget == 0:
        return _fields(solution="Add them.", answer=str(total)), VANILLA_TOKENS
    answer = total if budget >= CORRECT_AT_TOKENS else total + 1
    return _fields(solution="Add them.", answer=str(answer)), min(budget, VANILLA_TOKENS)


def _stated_tokens(user: str) -> int:
    tokens = 0
    for amount, unit in _BUDGET_RE.findall(user):
        tokens += round(int(amount) / 0.75) if unit == "words" else int(amount)
    return tokens


def make_scripted_lm(delay: float = 0.0) -> dspy.LM:
    """Return a dspy.LM backed by `ScriptedEngine`, with DSPy's cache off."""
    return dspy.LM("scripted/pnb-test", engine=ScriptedEngine(delay), cache=False, num_retries=0)
