"""Reliability of secrets: an API key never reaches results files or logs, even when a server echoes it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pnb_dspy.data import Question
from pnb_dspy.evaluation import build_method, evaluate, read_results, redact_secrets
from pnb_dspy.lm import make_lm
from pnb_dspy.testing import OpenAIStubServer, Status

API_KEY = "sk-test-secret-123"
ECHOED_KEY_MESSAGE = f"Incorrect API key provided: {API_KEY}. You can find your API key in your account settings."
QUESTIONS = [Question(id=f"q{index}", question=f"What is {index} + 4 - {index}?", gold="4") for index in range(3)]


@pytest.fixture(autouse=True)
def local_model_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep LiteLLM and DSPy on their bundled model metadata instead of fetching it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")


def test_redact_masks_every_occurrence() -> None:
    assert redact_secrets(f"{API_KEY} and {API_KEY}", [API_KEY]) == "*** and ***"


def test_echoed_key_not_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    results_path = tmp_path / "results.jsonl"
    caplog.set_level(logging.DEBUG)

    with OpenAIStubServer([Status(401, message=ECHOED_KEY_MESSAGE)]) as server:
        lm = make_lm("openai/test-model", api_base=server.api_base, api_key=API_KEY, num_retries=0, timeout=5, cache=False)
        evaluate({"vanilla": build_method("vanilla")}, QUESTIONS, lm=lm, results_path=results_path)

    records = read_results(results_path)
    assert records[0]["status"] == "error"
    assert "Incorrect API key provided: ***" in records[0]["error"]
    assert API_KEY not in results_path.read_text(encoding="utf-8")
    assert API_KEY not in caplog.text
    assert server.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"


def run_eval_with_key(tmp_path: Path, key_in_flag: bool) -> tuple[subprocess.CompletedProcess, Path, OpenAIStubServer]:
    data = tmp_path / "questions.jsonl"
    data.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n{"question": "What is 3 + 3?", "answer": "6"}\n', encoding="utf-8")
    out = tmp_path / "results.jsonl"
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "true", "DSPY_CACHEDIR": str(tmp_path / "dspy-cache")}
    environment.pop("PNB_API_KEY", None)
    key_arguments = ["--api-key", API_KEY] if key_in_flag else []
    if not key_in_flag:
        environment["PNB_API_KEY"] = API_KEY

    with OpenAIStubServer([Status(401, message=ECHOED_KEY_MESSAGE)]) as server:
        command = [
            sys.executable, "-m", "pnb_dspy.cli", "-vv", "eval",
            "--data", str(data), "--model", "openai/test-model", "--api-base", server.api_base, *key_arguments,
            "--method", "all", "--out", str(out), "--no-cache", "--num-retries", "0", "--timeout", "10",
        ]  # fmt: skip
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    return completed, out, server


@pytest.mark.parametrize("key_in_flag", [False, True], ids=["env", "flag"])
def test_cli_key_not_leaked(tmp_path: Path, key_in_flag: bool) -> None:
    completed, out, server = run_eval_with_key(tmp_path, key_in_flag)

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert all(request.headers["Authorization"] == f"Bearer {API_KEY}" for request in server.requests)
    assert read_results(out)[0]["status"] == "error"
    assert API_KEY not in out.read_text(encoding="utf-8")
    assert API_KEY not in completed.stdout
    assert API_KEY not in completed.stderr
    assert "DEBUG" in completed.stderr
