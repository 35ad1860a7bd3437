"""Reliability of LM calls: transport faults become recorded errors, bad replies become wrong answers.

Served-model tests run the LiteLLM-string path (`openai/test-model` with `api_base`) against
`OpenAIStubServer` on 127.0.0.1. Retry-After 0 and one retry keep DSPy's backoff short.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dspy
import pytest
from dspy import lm15

from pnb_dspy import lm as lm_module
from pnb_dspy.data import Question
from pnb_dspy.evaluation import LM_FAILURES, build_method, evaluate, read_results, run_question
from pnb_dspy.lm import LlamaCppEngine, make_lm
from pnb_dspy.testing import Hang, OpenAIStubServer, Reply, Status, answer_everything_reply, chat_reply, scripted_lm

QUESTION = Question(id="q1", question="What is 2 + 2?", gold="4")
SECOND_QUESTION = Question(id="q2", question="What is 3 + 3?", gold="6")
TIMEOUT_S = 0.5


@pytest.fixture(autouse=True)
def local_model_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep LiteLLM and DSPy on their bundled model metadata instead of fetching it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")


def served_lm(api_base: str, num_retries: int = 1) -> dspy.LM:
    return make_lm(
        "openai/test-model", api_base=api_base, api_key="sk-test-secret-123", num_retries=num_retries, timeout=TIMEOUT_S, cache=False
    )


def run_vanilla(lm: dspy.BaseLM, question: Question = QUESTION) -> dict:
    with dspy.context(lm=lm):
        return run_question(build_method("vanilla"), "vanilla", question)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """Yield a loopback port that nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    yield port


# Context window


def test_context_error_reaches_lm_failures() -> None:
    lm = scripted_lm([lm15.ContextLengthError("prompt is 9000 tokens", provider="llama.cpp")])
    with dspy.context(lm=lm), pytest.raises(LM_FAILURES, match="prompt is 9000 tokens") as raised:
        build_method("vanilla")(question=QUESTION.question)
    assert type(raised.value).__name__ == "ContextWindowExceededError"


def test_context_error_recorded_not_retried() -> None:
    lm = scripted_lm([lm15.ContextLengthError("prompt is 9000 tokens", provider="llama.cpp")], num_retries=2)
    record = run_vanilla(lm)
    assert record["status"] == "error"
    assert record["error_type"] == "ContextWindowExceededError"
    assert record["correct"] is None
    assert lm.engine.calls == 1


def test_context_error_run_goes_on(tmp_path: Path) -> None:
    lm = scripted_lm([lm15.ContextLengthError("prompt too long", provider="llama.cpp")], default=answer_everything_reply("6"))
    results_path = tmp_path / "results.jsonl"
    summaries = evaluate({"vanilla": build_method("vanilla")}, [QUESTION, SECOND_QUESTION], lm=lm, results_path=results_path)
    statuses = {record["id"]: record["status"] for record in read_results(results_path)}
    assert statuses == {"q1": "error", "q2": "ok"}
    assert summaries["vanilla"].errors == 1


class ContextOverflowLlama:
    """Stand-in for `llama_cpp.Llama` that raises the error llama-cpp-python gives for a long prompt."""

    def create_chat_completion(self, **arguments: object) -> dict:
        raise ValueError("Requested tokens (5000) exceed context window of 4096")


def test_llamacpp_overflow_becomes_context_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_file = tmp_path / "tiny.gguf"
    model_file.write_bytes(b"GGUF" + b"\0" * 32)
    engine = LlamaCppEngine(model_file, n_ctx=4096, n_threads=1)
    key = (str(engine.model_path), 4096, 1)
    monkeypatch.setitem(lm_module._models, key, ContextOverflowLlama())
    monkeypatch.setitem(lm_module._model_locks, key, lm_module.threading.Lock())
    lm = dspy.LM("llamacpp/tiny", engine=engine, cache=False, num_retries=0)

    record = run_vanilla(lm)

    assert record["status"] == "error"
    assert record["error_type"] == "ContextWindowExceededError"
    assert "exceed context window of 4096" in record["error"]


# Served model: server errors, rate limits, timeouts, refused connections


def test_server_500_retried_then_recorded() -> None:
    with OpenAIStubServer([Status(500, retry_after="0")] * 2) as server:
        record = run_vanilla(served_lm(server.api_base, num_retries=1))
    assert len(server.requests) == 2
    assert record["status"] == "error"
    assert record["error_type"] == "LMServerError"


def test_server_500_then_success_ok() -> None:
    with OpenAIStubServer([Status(500, retry_after="0")]) as server:
        record = run_vanilla(served_lm(server.api_base, num_retries=1))
    assert len(server.requests) == 2
    assert record["status"] == "ok"
    assert record["correct"] is True


def test_server_500_backoff_without_hint() -> None:
    # With no Retry-After hint DSPy sleeps min(2**attempt, 60) s; attempt 0 sleeps 1 s.
    with OpenAIStubServer([Status(500)]) as server:
        record = run_vanilla(served_lm(server.api_base, num_retries=1))
    assert len(server.requests) == 2
    assert record["seconds"] >= 1.0
    assert record["status"] == "ok"


def test_rate_limit_retried_then_recorded() -> None:
    with OpenAIStubServer([Status(429, retry_after="0")] * 3) as server:
        record = run_vanilla(served_lm(server.api_base, num_retries=2))
    assert len(server.requests) == 3
    assert record["status"] == "error"
    assert record["error_type"] == "LMRateLimitError"


def test_hanging_server_times_out() -> None:
    with OpenAIStubServer([Hang(3 * TIMEOUT_S), Hang(3 * TIMEOUT_S)]) as server:
        record = run_vanilla(served_lm(server.api_base, num_retries=1))
    assert len(server.requests) == 2
    assert record["status"] == "error"
    assert record["error_type"] in {"LMTransportError", "LMTimeoutError"}
    assert "timed out" in record["error"]


def test_refused_connection_recorded(closed_port: int) -> None:
    record = run_vanilla(served_lm(f"http://127.0.0.1:{closed_port}/v1", num_retries=1))
    assert record["status"] == "error"
    assert record["error_type"] == "LMTransportError"
    assert "Connection refused" in record["error"]


def test_server_error_run_goes_on(tmp_path: Path) -> None:
    results_path = tmp_path / "results.jsonl"
    with OpenAIStubServer([Status(503, retry_after="0")] * 2, default=Reply(answer_everything_reply("6"))) as server:
        lm = served_lm(server.api_base, num_retries=1)
        evaluate({"vanilla": build_method("vanilla")}, [QUESTION, SECOND_QUESTION], lm=lm, results_path=results_path)
    statuses = {record["id"]: record["status"] for record in read_results(results_path)}
    assert statuses == {"q1": "error", "q2": "ok"}


# Bad replies: scored as answers, never as errors


def test_empty_reply_scored_wrong() -> None:
    lm = scripted_lm([], default="", output_tokens=7)
    record = run_vanilla(lm)
    assert record["status"] == "ok"
    assert record["answer"] == ""
    assert record["correct"] is False
    assert record["parse_failed"] is True
    assert record["tokens"]["total"] == 7 * lm.engine.calls


def test_reply_without_fields_scored_wrong() -> None:
    lm = scripted_lm([], default="I am not sure how to solve this.")
    record = run_vanilla(lm)
    assert record["status"] == "ok"
    assert record["correct"] is False
    assert record["parse_failed"] is True


def test_reply_with_wrong_fields_scored_wrong() -> None:
    lm = scripted_lm([], default=chat_reply(reasoning="Thinking about it.", result="unknown"))
    record = run_vanilla(lm)
    assert record["status"] == "ok"
    assert record["correct"] is False
    assert record["parse_failed"] is True


def test_stepwise_empty_replies_scored_wrong() -> None:
    plan = chat_reply(plan="1. Add the numbers. (difficulty: 1)\n2. Check the sum. (difficulty: 1)", level="1")
    lm = scripted_lm([plan], default="")
    with dspy.context(lm=lm):
        record = run_question(build_method("pnb-stepwise"), "pnb-stepwise", QUESTION)
    assert record["status"] == "ok"
    assert record["correct"] is False
    assert record["parse_failed"] is True


# Planner faults: a one-step fallback plan, recorded


def test_planner_fifty_steps_falls_back() -> None:
    fifty = "\n".join(f"{index}. Sub-question {index}? (difficulty: 2)" for index in range(1, 51))
    lm = scripted_lm([chat_reply(plan=fifty, level="2"), chat_reply(solution="2 + 2 = 4", answer="4")])
    with dspy.context(lm=lm):
        record = run_question(build_method("pnb"), "pnb", QUESTION)
    assert record["status"] == "ok"
    assert record["plan_fallback"] == "the plan had 50 steps, more than max_steps=4"
    assert record["sub_questions"] == [QUESTION.question]
    assert record["correct"] is True


def test_planner_no_steps_falls_back() -> None:
    lm = scripted_lm([chat_reply(plan="I cannot split this.", level="2"), chat_reply(solution="2 + 2 = 4", answer="4")])
    with dspy.context(lm=lm):
        record = run_question(build_method("pnb"), "pnb", QUESTION)
    assert record["plan_fallback"] == "the plan held no parseable step"
    assert record["sub_questions"] == [QUESTION.question]
    assert len(record["budgets"]) == 1


def test_planner_unparseable_falls_back() -> None:
    lm = scripted_lm(["", "", chat_reply(solution="2 + 2 = 4", answer="4")])
    with dspy.context(lm=lm):
        record = run_question(build_method("pnb"), "pnb", QUESTION)
    assert record["plan_fallback"] == "the planner reply could not be parsed"
    assert record["status"] == "ok"
