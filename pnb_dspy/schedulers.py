"""Schedulers that split a total token budget over the steps of a plan.

Every scheduler turns per-step credits (non-negative numbers, for example the planner's
difficulty estimates or the budget model's optimal shares) into whole-token budgets that
are non-negative and add up exactly to the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SchedulerName = Literal["uniform", "weighted", "linear", "polynomial", "exponential", "cosine"]


def allocate_integer_budgets(
    weights: Sequence[float], total_tokens: int, min_tokens_per_step: int = 0
) -> list[int]:
    """Split `total_tokens` into whole-token budgets proportional to `weights`.

    Each step first receives `min_tokens_per_step`. The rest is split by weight, rounded
    down, and the tokens lost to rounding go one each to the steps with the largest
    weights (ties go to the earlier step), so the budgets add up exactly to `total_tokens`.

    Raises:
        ValueError: if `weights` is empty, contains a negative or non-finite value, or the
            minimum per step does not fit in the total.
    """
    if not weights:
        raise ValueError("weights must hold at least one step, but got an empty sequence")
    for index, weight in enumerate(weights):
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                f"weights must be finite and non-negative, but weights[{index}]={weight!r}"
            )
    if total_tokens < 0:
        raise ValueError(f"total_tokens must be non-negative, but got {total_tokens=}")
    if min_tokens_per_step < 0:
        raise ValueError(f"min_tokens_per_step must be non-negative, but got {min_tokens_per_step=}")

    n_steps = len(weights)
    reserved = min_tokens_per_step * n_steps
    if reserved > total_tokens:
        raise ValueError(
            f"{n_steps} steps with min_tokens_per_step={min_tokens_per_step} need {reserved} tokens, "
            f"more than total_tokens={total_tokens}; lower the minimum or raise the total budget"
        )

    remaining = total_tokens - reserved
    largest = max(weights)
    if largest == 0:
        # All-zero credits carry no preference, so split evenly.
        weights = [1.0] * n_steps
    else:
        # Dividing by the largest weight first keeps the sum finite for huge weights.
        weights = [weight / largest for weight in weights]
    weight_sum = sum(weights)

    exact_shares = [remaining * weight / weight_sum for weight in weights]
    budgets = [min_tokens_per_step + math.floor(share) for share in exact_shares]
    leftover = total_tokens - sum(budgets)

    by_weight = sorted(range(n_steps), key=lambda index: (-weights[index], index))
    for index in by_weight[:leftover]:
        budgets[index] += 1
    return budgets


@dataclass(frozen=True)
class Scheduler:
    """Base class: multiplies each step's credit by a decay over the step index.

    Subclasses override `decay`. A step index i runs from 0 to N - 1 for a plan of N steps.
    """

    name = "weighted"
    uses_credits = True

    def decay(self, step_index: int, n_steps: int) -> float:
        return 1.0

    def weights(self, credits: Sequence[float]) -> list[float]:
        """Return the unnormalised weight of every step."""
        n_steps = len(credits)
        base = credits if self.uses_credits else [1.0] * n_steps
        return [base[index] * self.decay(index, n_steps) for index in range(n_steps)]

    def allocate(
        self, credits: Sequence[float], total_tokens: int, min_tokens_per_step: int = 0
    ) -> list[int]:
        """Split `total_tokens` (generated tokens) over the steps whose credits are given.

        Returns:
            One whole-token budget per step, each at least `min_tokens_per_step`, adding up
            exactly to `total_tokens`.
        """
        return allocate_integer_budgets(self.weights(credits), total_tokens, min_tokens_per_step)

    def params(self) -> dict[str, float]:
        """Return the scheduler's tunable parameters by name (empty when it has none)."""
        return {}


@dataclass(frozen=True)
class UniformScheduler(Scheduler):
    """Gives every step the same budget, ignoring the credits."""

    name = "uniform"
    uses_credits = False


@dataclass(frozen=True)
class WeightedScheduler(Scheduler):
    """Splits the budget in proportion to the credits, with no decay."""

    name = "weighted"


@dataclass(frozen=True)
class LinearDecayScheduler(Scheduler):
    """Weights step i of N by credit × (N − i), so early steps get more."""

    name = "linear"

    def decay(self, step_index: int, n_steps: int) -> float:
        return float(n_steps - step_index)


@dataclass(frozen=True)
class PolynomialDecayScheduler(Scheduler):
    """Weights step i of N by credit × (N − i)^power."""

    power: float = 2.0
    name = "polynomial"

    def __post_init__(self) -> None:
        if not math.isfinite(self.power) or self.power < 0:
            raise ValueError(f"power must be a finite number >= 0, but got power={self.power!r}")

    def decay(self, step_index: int, n_steps: int) -> float:
        return float(n_steps - step_index) ** self.power

    def params(self) -> dict[str, float]:
        return {"power": self.power}


@dataclass(frozen=True)
class ExponentialDecayScheduler(Scheduler):
    """Weights step i by credit × rate^i."""

    rate: float = 0.9
    name = "exponential"

    def __post_init__(self) -> None:
        if not (0 < self.rate <= 1):
            raise ValueError(f"rate must be in (0, 1], but got rate={self.rate!r}")

    def decay(self, step_index: int, n_steps: int) -> float:
        return self.rate**step_index

    def params(self) -> dict[str, float]:
        return {"rate": self.rate}


@dataclass(frozen=True)
class CosineDecayScheduler(Scheduler):
    """Weights step i of N by credit × (0.5·(1 + cos(π·i/(N − 1))) + floor).

    The floor keeps the last step from getting nothing. A one-step plan gets weight 1 + floor.
    """

    floor: float = 0.1
    name = "cosine"

    def __post_init__(self) -> None:
        if not math.isfinite(self.floor) or self.floor < 0:
            raise ValueError(f"floor must be a finite number >= 0, but got floor={self.floor!r}")

    def decay(self, step_index: int, n_steps: int) -> float:
        if n_steps == 1:
            return 1.0 + self.floor
        return 0.5 * (1 + math.cos(math.pi * step_index / (n_steps - 1))) + self.floor

    def params(self) -> dict[str, float]:
        return {"floor": self.floor}


SCHEDULERS: dict[str, type[Scheduler]] = {
    "uniform": UniformScheduler,
    "weighted": WeightedScheduler,
    "linear": LinearDecayScheduler,
    "polynomial": PolynomialDecayScheduler,
    "exponential": ExponentialDecayScheduler,
    "cosine": CosineDecayScheduler,
}

SCHEDULER_PARAMS: dict[str, tuple[str, ...]] = {
    "uniform": (),
    "weighted": (),
    "linear": (),
    "polynomial": ("power",),
    "exponential": ("rate",),
    "cosine": ("floor",),
}


def make_scheduler(name: str, **params: float) -> Scheduler:
    """Build a scheduler by its registered name, passing only the parameters it takes.

    Raises:
        ValueError: for an unknown name or a parameter the scheduler does not take.
    """
    if name not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}"
        )
    allowed = SCHEDULER_PARAMS[name]
    unexpected = sorted(set(params) - set(allowed))
    if unexpected:
        allowed_text = ", ".join(allowed) if allowed else "no parameters"
        raise ValueError(
            f"scheduler {name!r} takes {allowed_text}, but got {', '.join(unexpected)}"
        )
    return SCHEDULERS[name](**params)
