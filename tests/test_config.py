"""Tests for PnBConfig validation and its dictionary round trip."""

from __future__ import annotations

import json
import math

import pytest

from pnb_dspy.budget import BudgetPriors
from pnb_dspy.config import PnBConfig
from pnb_dspy.schedulers import SCHEDULERS, PolynomialDecayScheduler


def test_default_config_is_valid() -> None:
    config = PnBConfig()

    assert isinstance(config.make_scheduler(), PolynomialDecayScheduler)
    assert config.level_map().total_tokens(3) == 350


def test_unknown_scheduler_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'greedy'") as error:
        PnBConfig(scheduler="greedy")

    for name in SCHEDULERS:
        assert name in str(error.value)


def test_scheduler_params_checked() -> None:
    with pytest.raises(ValueError, match="scheduler 'uniform' takes no parameters, but got power"):
        PnBConfig(scheduler="uniform", scheduler_params={"power": 2.0})


def test_invalid_scheduler_param_value() -> None:
    with pytest.raises(ValueError, match="rate=1.5"):
        PnBConfig(scheduler="exponential", scheduler_params={"rate": 1.5})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "fast", "unknown mode 'fast'; choose one of: single_pass, stepwise"),
        ("budget_unit", "chars", "unknown budget_unit 'chars'; choose one of: tokens, words"),
        ("plan_style", "loose", "unknown plan_style 'loose'; choose one of: required, hints"),
    ],
)
def test_invalid_choice_lists_options(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PnBConfig(**{field: value})


@pytest.mark.parametrize("max_steps", [0, -1, 21, 2.5])
def test_invalid_max_steps_raises(max_steps: object) -> None:
    with pytest.raises(ValueError, match="max_steps must be an integer from 1 to 20, but got max_steps="):
        PnBConfig(max_steps=max_steps)  # type: ignore[arg-type]


def test_boolean_max_steps_raises() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        PnBConfig(max_steps=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_tokens_per_step", -1),
        ("min_tokens_per_step", 10**9),
        ("min_tokens_per_step", 1.5),
        ("step_margin", -5),
        ("step_margin", True),
        ("planner_max_tokens", 8),
    ],
)
def test_invalid_token_counts_raise(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a whole number of tokens from .*, but got {field}="):
        PnBConfig(**{field: value})


@pytest.mark.parametrize("budget_scale", [0.0, -1.0, 1e6, math.nan])
def test_invalid_budget_scale_raises(budget_scale: float) -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 20\]"):
        PnBConfig(budget_scale=budget_scale)


@pytest.mark.parametrize(
    ("level_budgets", "message"),
    [
        ((0, 250, 350, 450, 600), "the budget for level 1"),
        ((200, 250, 350, 450, 10**9), "the budget for level 5"),
        ((200, 250), "budgets must hold 5 entries"),
    ],
)
def test_invalid_level_budgets_raise(level_budgets: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PnBConfig(level_budgets=level_budgets)


@pytest.mark.parametrize("threshold", [-1, 6])
def test_invalid_skip_threshold_raises(threshold: int) -> None:
    with pytest.raises(ValueError, match="skip_planner_at_or_below must be an integer from 0"):
        PnBConfig(skip_planner_at_or_below=threshold)


def test_blank_planner_instructions_raise() -> None:
    with pytest.raises(ValueError, match="planner_instructions must be None or non-empty text"):
        PnBConfig(planner_instructions="   ")


def _custom_config() -> PnBConfig:
    return PnBConfig(
        scheduler="cosine",
        scheduler_params={"floor": 0.2},
        priors=BudgetPriors(c_scale=2.0, c_exponent=1.5, beta_base=0.8, beta_slope=0.5),
        level_budgets=(100, 200, 300, 400, 500),
        budget_scale=1.25,
        mode="stepwise",
        max_steps=6,
        min_tokens_per_step=8,
        step_margin=16,
        budget_unit="words",
        plan_style="hints",
        planner_max_tokens=128,
        skip_planner_at_or_below=2,
        planner_instructions="List the sub-questions.",
    )


@pytest.mark.parametrize("config", [PnBConfig(), _custom_config()])
def test_dict_round_trip_equal(config: PnBConfig) -> None:
    assert PnBConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("config", [PnBConfig(), _custom_config()])
def test_json_round_trip_equal(config: PnBConfig) -> None:
    data = json.loads(json.dumps(config.to_dict()))

    assert PnBConfig.from_dict(data) == config


def test_to_dict_is_plain_data() -> None:
    data = _custom_config().to_dict()

    assert data["priors"] == {"c_scale": 2.0, "c_exponent": 1.5, "beta_base": 0.8, "beta_slope": 0.5}
    assert data["level_budgets"] == [100, 200, 300, 400, 500]
    assert data["scheduler_params"] == {"floor": 0.2}


def test_from_dict_partial_keys() -> None:
    config = PnBConfig.from_dict({"scheduler": "linear", "priors": {"beta_slope": 0.3}})

    assert config.scheduler == "linear"
    assert config.priors == BudgetPriors(beta_slope=0.3)
    assert config.max_steps == PnBConfig().max_steps


def test_from_dict_rejects_unknown_keys() -> None:
    data = {**PnBConfig().to_dict(), "temperature": 0.3, "beam": 2}

    with pytest.raises(ValueError, match="unknown configuration keys: beam, temperature") as error:
        PnBConfig.from_dict(data)

    assert "known keys are budget_scale" in str(error.value)


def test_from_dict_rejects_unknown_prior() -> None:
    data = {**PnBConfig().to_dict(), "priors": {"c_scale": 1.0, "gamma": 2.0}}

    with pytest.raises(ValueError, match="unknown prior keys: gamma") as error:
        PnBConfig.from_dict(data)

    assert "beta_base" in str(error.value)


def test_from_dict_validates_values() -> None:
    with pytest.raises(ValueError, match="unknown mode 'batch'"):
        PnBConfig.from_dict({"mode": "batch"})
