"""Tests for the schedulers that split a total token budget over a plan's steps."""

from __future__ import annotations

import math
import random

import pytest

from pnb_dspy.schedulers import (
    SCHEDULER_PARAMS,
    SCHEDULERS,
    CosineDecayScheduler,
    ExponentialDecayScheduler,
    PolynomialDecayScheduler,
    allocate_integer_budgets,
    make_scheduler,
)

DECAYING_SCHEDULERS = ("linear", "polynomial", "exponential", "cosine")


@pytest.mark.parametrize(
    ("name", "params", "credits", "total", "min_per_step", "expected"),
    [
        ("weighted", {}, [1, 2, 3], 12, 0, [2, 4, 6]),
        ("weighted", {}, [1, 2, 3], 10, 0, [1, 3, 6]),
        ("weighted", {}, [1, 1, 1], 10, 0, [4, 3, 3]),
        ("weighted", {}, [1, 5, 2, 5], 10, 0, [0, 4, 2, 4]),
        ("weighted", {}, [0, 0], 7, 0, [4, 3]),
        ("weighted", {}, [1, 3], 0, 0, [0, 0]),
        ("weighted", {}, [1, 3], 100, 10, [30, 70]),
        ("weighted", {}, [0, 1], 50, 16, [16, 34]),
        ("uniform", {}, [5, 1, 1], 9, 0, [3, 3, 3]),
        ("uniform", {}, [5, 1], 7, 0, [4, 3]),
        ("linear", {}, [1, 1, 1], 60, 0, [30, 20, 10]),
        ("linear", {}, [1, 2], 100, 0, [50, 50]),
        ("polynomial", {}, [1, 1, 1], 140, 0, [90, 40, 10]),
        ("polynomial", {"power": 0.0}, [1, 3], 8, 0, [2, 6]),
        ("exponential", {"rate": 0.5}, [1, 1, 1], 70, 0, [40, 20, 10]),
        ("exponential", {"rate": 1.0}, [1, 1], 9, 0, [5, 4]),
        ("cosine", {"floor": 0.0}, [1, 1, 1], 100, 0, [67, 33, 0]),
        ("cosine", {}, [1, 1, 1], 100, 0, [62, 33, 5]),
        ("cosine", {}, [4], 50, 0, [50]),
    ],
)
def test_allocation_table_exact(
    name: str, params: dict[str, float], credits: list[float], total: int, min_per_step: int, expected: list[int]
) -> None:
    scheduler = make_scheduler(name, **params)

    assert scheduler.allocate(credits, total, min_per_step) == expected


def _credit_grid() -> list[list[float]]:
    rng = random.Random(0)
    choices = [0.0, 1e-9, 0.1, 1 / 3, 1.0, 2.0, 5.0, 1000.0]
    vectors = [[1.0], [0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0]]
    for n_steps in range(1, 9):
        for _ in range(6):
            vectors.append([rng.choice(choices + [rng.random()]) for _ in range(n_steps)])
    return vectors


TOTALS = [*range(0, 41), 99, 100, 101, 200, 349, 350, 600, 1023, 32_768]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_budgets_sum_to_total(name: str) -> None:
    scheduler = make_scheduler(name)
    for credits in _credit_grid():
        for total in TOTALS:
            budgets = scheduler.allocate(credits, total)

            assert sum(budgets) == total, (credits, total, budgets)
            assert len(budgets) == len(credits), (credits, total, budgets)
            assert all(isinstance(budget, int) for budget in budgets), (credits, total, budgets)
            assert min(budgets) >= 0, (credits, total, budgets)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_minimum_per_step_respected(name: str) -> None:
    scheduler = make_scheduler(name)
    for credits in _credit_grid():
        for total in TOTALS:
            for min_per_step in (1, 5, 16):
                if min_per_step * len(credits) > total:
                    continue
                budgets = scheduler.allocate(credits, total, min_per_step)

                assert sum(budgets) == total, (credits, total, min_per_step, budgets)
                assert min(budgets) >= min_per_step, (credits, total, min_per_step, budgets)


def test_rounding_remainder_to_largest_weights() -> None:
    weights = [1.0, 5.0, 2.0, 5.0, 0.5]
    for total in range(0, 200):
        budgets = allocate_integer_budgets(weights, total)
        exact = [total * weight / sum(weights) for weight in weights]
        rounded_up = [index for index, budget in enumerate(budgets) if budget > math.floor(exact[index])]
        by_weight = sorted(range(len(weights)), key=lambda index: (-weights[index], index))

        assert all(budget - math.floor(share) in (0, 1) for budget, share in zip(budgets, exact)), (total, budgets)
        assert sorted(rounded_up) == sorted(by_weight[: len(rounded_up)]), (total, budgets)


def test_zero_credits_split_evenly() -> None:
    assert allocate_integer_budgets([0.0, 0.0, 0.0, 0.0], 10) == [3, 3, 2, 2]


def test_huge_finite_weights_sum_to_total() -> None:
    budgets = allocate_integer_budgets([1e308, 1e308], 100)

    assert budgets == [50, 50]


def test_minimum_too_large_raises() -> None:
    with pytest.raises(ValueError, match="min_tokens_per_step=40") as error:
        allocate_integer_budgets([1.0, 1.0, 1.0], 100, min_tokens_per_step=40)

    assert "need 120 tokens" in str(error.value)
    assert "total_tokens=100" in str(error.value)
    assert "3 steps" in str(error.value)


@pytest.mark.parametrize(
    ("weights", "total", "min_per_step", "message"),
    [
        ([], 10, 0, "empty sequence"),
        ([1.0, -0.5], 10, 0, r"weights\[1\]=-0.5"),
        ([1.0, math.nan], 10, 0, r"weights\[1\]=nan"),
        ([math.inf], 10, 0, r"weights\[0\]=inf"),
        ([1.0], -1, 0, "total_tokens=-1"),
        ([1.0], 10, -2, "min_tokens_per_step=-2"),
    ],
)
def test_invalid_allocation_inputs_raise(weights: list[float], total: int, min_per_step: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocate_integer_budgets(weights, total, min_per_step)


@pytest.mark.parametrize("name", DECAYING_SCHEDULERS)
def test_decay_gives_non_increasing_budgets(name: str) -> None:
    scheduler = make_scheduler(name)
    for n_steps in range(2, 9):
        for total in (50, 100, 350, 600, 1000):
            budgets = scheduler.allocate([1.0] * n_steps, total)

            assert budgets == sorted(budgets, reverse=True), (n_steps, total, budgets)
            assert budgets[0] > budgets[-1], (n_steps, total, budgets)


def test_uniform_ignores_credits() -> None:
    scheduler = make_scheduler("uniform")

    assert scheduler.allocate([5.0, 1.0, 0.0, 2.0], 400) == [100, 100, 100, 100]
    assert scheduler.allocate([0.0, 9.0], 400) == scheduler.allocate([9.0, 0.0], 400)


def test_weighted_follows_credits() -> None:
    assert make_scheduler("weighted").allocate([0.0, 9.0], 400) == [0, 400]


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_registry_names_match_classes(name: str) -> None:
    scheduler = make_scheduler(name)

    assert scheduler.name == name
    assert set(scheduler.params()) == set(SCHEDULER_PARAMS[name])


def test_params_report_given_values() -> None:
    assert make_scheduler("polynomial", power=3.0).params() == {"power": 3.0}
    assert make_scheduler("exponential", rate=0.7).params() == {"rate": 0.7}
    assert make_scheduler("cosine", floor=0.25).params() == {"floor": 0.25}


def test_unknown_scheduler_lists_names() -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'fastest'") as error:
        make_scheduler("fastest")

    for name in SCHEDULERS:
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("linear", {"power": 2.0}, "scheduler 'linear' takes no parameters, but got power"),
        ("uniform", {"rate": 0.5}, "scheduler 'uniform' takes no parameters, but got rate"),
        ("exponential", {"power": 2.0}, "scheduler 'exponential' takes rate, but got power"),
        ("cosine", {"floor": 0.1, "rate": 0.5}, "scheduler 'cosine' takes floor, but got rate"),
        ("polynomial", {"power": 2.0, "floor": 0.1, "rate": 0.5}, "takes power, but got floor, rate"),
    ],
)
def test_unexpected_parameter_raises(name: str, params: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_scheduler(name, **params)


@pytest.mark.parametrize("power", [-1.0, math.nan, math.inf])
def test_invalid_power_raises(power: float) -> None:
    with pytest.raises(ValueError, match="power must be a finite number >= 0"):
        PolynomialDecayScheduler(power=power)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, math.nan, math.inf])
def test_invalid_rate_raises(rate: float) -> None:
    with pytest.raises(ValueError, match=r"rate must be in \(0, 1\]"):
        ExponentialDecayScheduler(rate=rate)


@pytest.mark.parametrize("floor", [-0.1, math.nan, math.inf])
def test_invalid_floor_raises(floor: float) -> None:
    with pytest.raises(ValueError, match="floor must be a finite number >= 0"):
        CosineDecayScheduler(floor=floor)


def test_invalid_parameter_through_factory() -> None:
    with pytest.raises(ValueError, match="rate=2"):
        make_scheduler("exponential", rate=2)
