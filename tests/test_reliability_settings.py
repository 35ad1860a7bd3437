"""Reliability of settings: bad names, budgets, step limits and model paths raise clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pnb_dspy import cli
from pnb_dspy.baselines import GlobalBudget
from pnb_dspy.budget import MAX_TOTAL_TOKENS, LevelBudgetMap
from pnb_dspy.config import PnBConfig
from pnb_dspy.evaluation import build_method
from pnb_dspy.lm import ModelFileError, make_lm
from pnb_dspy.modules import Planner
from pnb_dspy.schedulers import make_scheduler


@pytest.fixture(autouse=True)
def local_model_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep LiteLLM and DSPy on their bundled model metadata instead of fetching it."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "true")


def test_unknown_scheduler_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown scheduler 'cosin'; choose one of: uniform, weighted, linear, polynomial, exponential, cosine"):
        make_scheduler("cosin")


def test_config_unknown_scheduler_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown scheduler 'fastest'; choose one of: .*polynomial"):
        PnBConfig(scheduler="fastest")


def test_unknown_method_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'pnb2'; choose one of: pnb, pnb-stepwise, vanilla, global-budget, all"):
        build_method("pnb2")


@pytest.mark.parametrize("budget", [0, -100, MAX_TOTAL_TOKENS + 1, 10**12, 250.5, True])
def test_level_budget_out_of_range(budget: object) -> None:
    budgets = (200, budget, 350, 450, 600)
    with pytest.raises(ValueError, match=r"the budget for level 2 must be a whole number of tokens in 1\.\.32768"):
        LevelBudgetMap(budgets)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0.0, -1.0, 21.0, float("inf"), float("nan")])
def test_budget_scale_out_of_range(scale: float) -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 20\]"):
        LevelBudgetMap(scale=scale)


def test_scaled_budget_over_limit() -> None:
    with pytest.raises(ValueError, match=r"makes the largest budget 40000 tokens, more than 32768"):
        LevelBudgetMap((200, 250, 350, 450, 2000), scale=20.0)


def test_config_budget_scale_rejected() -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 20\], but got scale=0\.0"):
        PnBConfig(budget_scale=0.0)


@pytest.mark.parametrize("token_budget", [0, -5, MAX_TOTAL_TOKENS + 1, True, 10.0])
def test_global_token_budget_rejected(token_budget: object) -> None:
    with pytest.raises(ValueError, match=r"token_budget must be a whole number of tokens from 1 to 32768"):
        GlobalBudget(token_budget=token_budget)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_steps", [0, -1, True])
def test_config_max_steps_below_one(max_steps: object) -> None:
    with pytest.raises(ValueError, match=r"max_steps must be an integer from 1 to 20"):
        PnBConfig(max_steps=max_steps)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_steps", [0, -3])
def test_planner_max_steps_below_one(max_steps: int) -> None:
    with pytest.raises(ValueError, match=r"max_steps must be an integer >= 1"):
        Planner(max_steps=max_steps)


def test_missing_gguf_path_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found: .*absent\.gguf"):
        make_lm(str(tmp_path / "absent.gguf"))


def test_non_gguf_file_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelFileError, match=r"fake\.gguf' is not a GGUF file \(it starts with b'PK\\x03\\x04'"):
        make_lm(str(fake))


def test_gguf_directory_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    with pytest.raises(ModelFileError, match=r"model file not found"):
        make_lm(str(folder))


def test_unknown_provider_lists_known() -> None:
    with pytest.raises(ValueError, match=r"unknown LiteLLM provider 'notaprovider' .* common providers are openai, anthropic"):
        make_lm("notaprovider/some-model")


def test_misspelt_provider_suggests_match() -> None:
    with pytest.raises(ValueError, match=r"unknown LiteLLM provider 'opnai' .*; did you mean openai"):
        make_lm("opnai/gpt-4o-mini")


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_invalid_timeout_rejected_early(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds"):
        make_lm("openai/test-model", api_base="http://127.0.0.1:9/v1", timeout=timeout)


def test_model_without_provider_rejected() -> None:
    with pytest.raises(ValueError, match=r"write it as provider/model"):
        make_lm("gpt-4o-mini")


def test_cli_unknown_method_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "--data", "unused.jsonl", "--method", "pnb,fastest"])
    assert exited.value.code == 2
    assert "unknown --method 'pnb,fastest'; choose from pnb, pnb-stepwise, vanilla, global-budget, or all" in capsys.readouterr().err


def test_cli_unknown_scheduler_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "--data", "unused.jsonl", "--method", "pnb", "--scheduler", "fastest"])
    assert exited.value.code == 2
    assert "unknown scheduler 'fastest'; choose one of: uniform, weighted" in capsys.readouterr().err


def test_cli_zero_budget_scale_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "--data", "unused.jsonl", "--method", "pnb", "--budget-scale", "0"])
    assert exited.value.code == 2
    assert "scale must be in (0, 20], but got scale=0.0" in capsys.readouterr().err
