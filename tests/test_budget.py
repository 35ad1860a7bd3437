"""Tests for the budget model: the BBAM split, its priors and the level-to-budget map."""

from __future__ import annotations

import math

import pytest

from pnb_dspy.budget import (
    DEFAULT_LEVEL_BUDGETS,
    MAX_TOTAL_TOKENS,
    BudgetPriors,
    LevelBudgetMap,
    optimal_allocation,
    step_credits,
)


def _log_multipliers(uncertainties: list[float], decay_rates: list[float], allocation: list[float]) -> list[float]:
    # Return log(c_j·beta_j·b_j^-(beta_j+1)), which the optimum makes equal for every step.
    return [
        math.log(c * beta) - (beta + 1.0) * math.log(tokens)
        for c, beta, tokens in zip(uncertainties, decay_rates, allocation)
    ]


@pytest.mark.parametrize(
    ("uncertainties", "beta", "total", "expected"),
    [
        ([1.0, 4.0], 1.0, 300.0, [100.0, 200.0]),
        ([1.0, 8.0], 2.0, 30.0, [10.0, 20.0]),
        ([2.0, 2.0, 2.0], 0.5, 90.0, [30.0, 30.0, 30.0]),
        ([5.0], 1.0, 350.0, [350.0]),
    ],
)
def test_equal_beta_table_exact(uncertainties: list[float], beta: float, total: float, expected: list[float]) -> None:
    allocation = optimal_allocation(uncertainties, [beta] * len(uncertainties), total)

    assert allocation == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 2.0, 7.5])
def test_equal_beta_closed_form(beta: float) -> None:
    uncertainties = [1.0, 2.0, 3.5, 5.0]
    total = 450.0
    shares = [(c * beta) ** (1.0 / (beta + 1.0)) for c in uncertainties]
    expected = [total * share / sum(shares) for share in shares]

    allocation = optimal_allocation(uncertainties, [beta] * len(uncertainties), total)

    assert allocation == pytest.approx(expected, rel=1e-12)
    assert sum(allocation) == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize(
    ("uncertainties", "decay_rates", "total"),
    [
        ([1.0, 2.0, 3.0], [1.0, 0.5, 0.3], 350.0),
        ([1.0, 5.0], [2.0, 1.0], 600.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 0.8, 0.6, 0.4, 0.2], 600.0),
        ([1.0, 2.0], [0.05, 0.01], 200.0),
        ([3.0, 1.0], [1.0, 2.0], 1.0),
        ([1.0, 2.0, 3.0], [0.001, 0.002, 0.003], 600.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], [50.0, 33.0, 25.0, 20.0, 16.7], 350.0),
        ([1.0, 2.0], [60.0, 80.0], 600.0),
        ([1.0, 1.0], [100.0, 200.0], float(MAX_TOTAL_TOKENS)),
    ],
)
def test_unequal_betas_meet_optimality(uncertainties: list[float], decay_rates: list[float], total: float) -> None:
    allocation = optimal_allocation(uncertainties, decay_rates, total)
    log_multipliers = _log_multipliers(uncertainties, decay_rates, allocation)

    assert sum(allocation) == pytest.approx(total, rel=1e-9)
    assert min(allocation) > 0
    assert max(log_multipliers) - min(log_multipliers) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("decay_rates", [[1.0, 1.0, 1.0], [1.0, 0.7, 0.4]])
def test_raising_uncertainty_raises_share(decay_rates: list[float]) -> None:
    base = [1.0, 2.0, 3.0]
    before = optimal_allocation(base, decay_rates, 350.0)
    for index in range(len(base)):
        raised = list(base)
        raised[index] *= 1.5
        after = optimal_allocation(raised, decay_rates, 350.0)
        others = [step for step in range(len(base)) if step != index]

        assert after[index] > before[index], (index, before, after)
        assert all(after[step] < before[step] for step in others), (index, before, after)


@pytest.mark.parametrize(
    ("uncertainties", "decay_rates", "total", "message"),
    [
        ([], [], 100.0, "non-empty and of equal length, but got 0 and 0"),
        ([1.0, 2.0], [1.0], 100.0, "but got 2 and 1"),
        ([1.0], [1.0], 0.0, "total_tokens must be a positive"),
        ([1.0], [1.0], -5.0, "total_tokens=-5"),
        ([0.0, 1.0], [1.0, 1.0], 100.0, "c=0.0, beta=1.0"),
        ([1.0, 1.0], [1.0, -1.0], 100.0, "c=1.0, beta=-1.0"),
        ([math.nan], [1.0], 100.0, "c=nan"),
    ],
)
def test_invalid_allocation_inputs_raise(
    uncertainties: list[float], decay_rates: list[float], total: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        optimal_allocation(uncertainties, decay_rates, total)


@pytest.mark.parametrize("total", [math.nan, math.inf])
def test_non_finite_total_raises(total: float) -> None:
    with pytest.raises(ValueError, match="total_tokens"):
        optimal_allocation([1.0, 2.0], [1.0, 0.5], total)


def test_default_level_budgets() -> None:
    level_map = LevelBudgetMap()

    assert DEFAULT_LEVEL_BUDGETS == (200, 250, 350, 450, 600)
    assert [level_map.total_tokens(level) for level in range(1, 6)] == [200, 250, 350, 450, 600]


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        (1.5, [300, 375, 525, 675, 900]),
        (0.5, [100, 125, 175, 225, 300]),
        (0.001, [1, 1, 1, 1, 1]),
        (20.0, [4000, 5000, 7000, 9000, 12000]),
    ],
)
def test_level_budgets_scale(scale: float, expected: list[int]) -> None:
    level_map = LevelBudgetMap(scale=scale)

    assert [level_map.total_tokens(level) for level in range(1, 6)] == expected


def test_custom_level_budgets() -> None:
    level_map = LevelBudgetMap(budgets=(100, 200, 300, 400, 500))

    assert level_map.total_tokens(4) == 400


@pytest.mark.parametrize("level", [0, 6, -1, 2.5, "3", None])
def test_invalid_level_raises(level: object) -> None:
    with pytest.raises(ValueError, match="level must be an integer from 1 to 5, but got level="):
        LevelBudgetMap().total_tokens(level)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ((0, 250, 350, 450, 600), "the budget for level 1 must be a whole number of tokens in 1..32768, but got 0"),
        ((200, -250, 350, 450, 600), "the budget for level 2 .* but got -250"),
        ((200, 250, 350, 450, 10**9), "the budget for level 5 .* but got 1000000000"),
        ((200, 250, 350.5, 450, 600), "the budget for level 3 .* but got 350.5"),
        ((200, 250, 350, 450), r"budgets must hold 5 entries \(levels 1 to 5\), but got \[200, 250, 350, 450\]"),
    ],
)
def test_invalid_level_budgets_raise(budgets: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LevelBudgetMap(budgets=budgets)


def test_invalid_budget_suggests_range() -> None:
    with pytest.raises(ValueError, match="typical budgets are 100 to 2000 tokens"):
        LevelBudgetMap(budgets=(200, 250, 350, 450, 10**9))


@pytest.mark.parametrize("scale", [0.0, -1.0, 20.5, math.nan, math.inf])
def test_invalid_scale_raises(scale: float) -> None:
    with pytest.raises(ValueError, match=r"scale must be in \(0, 20\]"):
        LevelBudgetMap(scale=scale)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("c_scale", 0.0),
        ("c_scale", -1.0),
        ("c_scale", math.nan),
        ("c_exponent", -0.5),
        ("c_exponent", math.inf),
        ("beta_base", 0.0),
        ("beta_base", -2.0),
        ("beta_slope", -0.1),
        ("beta_slope", math.nan),
    ],
)
def test_invalid_priors_raise(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field} must be"):
        BudgetPriors(**{field: value})


def test_priors_map_difficulty() -> None:
    priors = BudgetPriors(c_scale=0.5, c_exponent=2.0, beta_base=2.0, beta_slope=0.5)

    assert priors.uncertainty(3) == pytest.approx(4.5)
    assert priors.decay_rate(1) == pytest.approx(2.0)
    assert priors.decay_rate(3) == pytest.approx(1.0)


def test_zero_slope_shares_beta() -> None:
    priors = BudgetPriors(beta_base=1.5)

    assert {priors.decay_rate(difficulty) for difficulty in range(1, 6)} == {1.5}


@pytest.mark.parametrize(
    "priors",
    [
        BudgetPriors(),
        BudgetPriors(c_exponent=2.0),
        BudgetPriors(beta_slope=0.5),
        BudgetPriors(c_scale=3.0, c_exponent=0.0, beta_base=4.0, beta_slope=1.0),
    ],
)
@pytest.mark.parametrize("difficulties", [[3], [1, 5], [2, 2, 2], [1, 2, 3, 4, 5], [5, 1, 4, 1]])
@pytest.mark.parametrize("total", [1, 200, 600])
def test_step_credits_sum_to_one(priors: BudgetPriors, difficulties: list[int], total: int) -> None:
    credits = step_credits(difficulties, priors, total)

    assert len(credits) == len(difficulties)
    assert sum(credits) == pytest.approx(1.0, rel=1e-12)
    assert min(credits) > 0


def test_harder_steps_get_more_credit() -> None:
    credits = step_credits([1, 2, 3, 4, 5], BudgetPriors(), 350)

    assert credits == sorted(credits)
    assert credits[0] < credits[-1]
