"""The budget model: how many tokens a question gets and how the model splits them.

BBAM (Bayesian budget allocation model) treats each sub-question j as having a reducible
uncertainty c_j / b_j^beta_j after it receives b_j generated tokens. Spending a total B so
that the summed remaining uncertainty is smallest gives, at the optimum,
c_j·beta_j·b_j^-(beta_j+1) = lambda for every j. With one shared beta this has the closed
form b_j ∝ (c_j·beta)^(1/(beta+1)); with differing betas the multiplier lambda is found by
bisection.

The priors map the planner's difficulty estimate d_j (1 = easy … 5 = hard) to c_j and
beta_j: harder steps start with more uncertainty (c grows with d) and, with a positive
slope, shed it more slowly (beta shrinks with d).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_LEVEL_BUDGETS: tuple[int, int, int, int, int] = (200, 250, 350, 450, 600)
MAX_TOTAL_TOKENS = 32_768


@dataclass(frozen=True)
class BudgetPriors:
    """Hyperparameters of the priors on c and beta, as plain named numbers for tuning.

    Attributes:
        c_scale: c for a step of difficulty 1.
        c_exponent: c_j = c_scale · d_j^c_exponent.
        beta_base: beta for a step of difficulty 1 (larger means faster returns).
        beta_slope: beta_j = beta_base / (1 + beta_slope·(d_j − 1)); 0 keeps one shared beta.
    """

    c_scale: float = 1.0
    c_exponent: float = 1.0
    beta_base: float = 1.0
    beta_slope: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.c_scale) and self.c_scale > 0):
            raise ValueError(f"c_scale must be a positive number, but got c_scale={self.c_scale!r}")
        if not (math.isfinite(self.c_exponent) and self.c_exponent >= 0):
            raise ValueError(f"c_exponent must be >= 0, but got c_exponent={self.c_exponent!r}")
        if not (math.isfinite(self.beta_base) and self.beta_base > 0):
            raise ValueError(f"beta_base must be a positive number, but got beta_base={self.beta_base!r}")
        if not (math.isfinite(self.beta_slope) and self.beta_slope >= 0):
            raise ValueError(f"beta_slope must be >= 0, but got beta_slope={self.beta_slope!r}")

    def uncertainty(self, difficulty: float) -> float:
        """Return c for a step of the given difficulty."""
        return self.c_scale * max(difficulty, 1e-9) ** self.c_exponent

    def decay_rate(self, difficulty: float) -> float:
        """Return beta for a step of the given difficulty."""
        return self.beta_base / (1.0 + self.beta_slope * max(difficulty - 1.0, 0.0))


def optimal_allocation(
    uncertainties: Sequence[float], decay_rates: Sequence[float], total_tokens: float
) -> list[float]:
    """Return the real-valued token split that minimises sum_j c_j / b_j^beta_j.

    Args:
        uncertainties: c_j > 0 for each step.
        decay_rates: beta_j > 0 for each step.
        total_tokens: B > 0, the tokens to split.

    Returns:
        b_j > 0 for each step, summing to `total_tokens` (up to float rounding).
    """
    if len(uncertainties) != len(decay_rates) or not uncertainties:
        raise ValueError(
            "uncertainties and decay_rates must be non-empty and of equal length, "
            f"but got {len(uncertainties)} and {len(decay_rates)}"
        )
    if not math.isfinite(total_tokens) or total_tokens <= 0:
        raise ValueError(f"total_tokens must be a positive finite number, but got {total_tokens=}")
    for c, beta in zip(uncertainties, decay_rates):
        if not (c > 0 and beta > 0):
            raise ValueError(f"every c and beta must be positive, but got c={c!r}, beta={beta!r}")

    if all(math.isclose(beta, decay_rates[0]) for beta in decay_rates):
        beta = decay_rates[0]
        shares = [(c * beta) ** (1.0 / (beta + 1.0)) for c in uncertainties]
        share_sum = sum(shares)
        return [total_tokens * share / share_sum for share in shares]

    return _allocation_by_bisection(uncertainties, decay_rates, total_tokens)


def _tokens_at_multiplier(
    log_multiplier: float, uncertainties: Sequence[float], decay_rates: Sequence[float]
) -> list[float]:
    # b_j(lambda) = (c_j·beta_j / lambda)^(1/(beta_j+1)), computed in log space.
    return [
        math.exp((math.log(c * beta) - log_multiplier) / (beta + 1.0))
        for c, beta in zip(uncertainties, decay_rates)
    ]


def _allocation_by_bisection(
    uncertainties: Sequence[float], decay_rates: Sequence[float], total_tokens: float
) -> list[float]:
    # The summed tokens fall monotonically as log(lambda) grows, so bisection converges. At
    # log(lambda) = min_j(L_j - (beta_j+1)·log B), with L_j = log(c_j·beta_j), every b_j >= B;
    # at max_j(L_j - (beta_j+1)·log(B/n)) every b_j <= B/n. The root lies between them.
    log_terms = [math.log(c * beta) for c, beta in zip(uncertainties, decay_rates)]
    n_steps = len(uncertainties)
    low = min(term - (beta + 1) * math.log(total_tokens) for term, beta in zip(log_terms, decay_rates))
    high = max(term - (beta + 1) * math.log(total_tokens / n_steps) for term, beta in zip(log_terms, decay_rates))
    for _ in range(200):
        middle = (low + high) / 2
        if sum(_tokens_at_multiplier(middle, uncertainties, decay_rates)) > total_tokens:
            low = middle
        else:
            high = middle
    tokens = _tokens_at_multiplier((low + high) / 2, uncertainties, decay_rates)
    correction = total_tokens / sum(tokens)
    return [value * correction for value in tokens]


@dataclass(frozen=True)
class LevelBudgetMap:
    """Maps a question's difficulty level (1 to 5) to its total token budget.

    Attributes:
        budgets: generated-token budget for levels 1, 2, 3, 4 and 5.
        scale: multiplies every entry; the optimizer tunes it.
    """

    budgets: tuple[int, ...] = field(default=DEFAULT_LEVEL_BUDGETS)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.budgets) != 5:
            raise ValueError(f"budgets must hold 5 entries (levels 1 to 5), but got {list(self.budgets)}")
        for level, budget in enumerate(self.budgets, start=1):
            if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0 or budget > MAX_TOTAL_TOKENS:
                raise ValueError(
                    f"the budget for level {level} must be a whole number of tokens in 1..{MAX_TOTAL_TOKENS}, "
                    f"but got {budget!r}; typical budgets are 100 to 2000 tokens"
                )
        if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool):
            raise TypeError(f"scale must be a number, but got scale={self.scale!r}")
        if not (math.isfinite(self.scale) and 0 < self.scale <= 20):
            raise ValueError(f"scale must be in (0, 20], but got scale={self.scale!r}; 0.5 to 2 is typical")
        largest = round(max(self.budgets) * self.scale)
        if largest > MAX_TOTAL_TOKENS:
            raise ValueError(
                f"scale={self.scale!r} makes the largest budget {largest} tokens, more than {MAX_TOTAL_TOKENS}; "
                "lower the scale or the level budgets"
            )

    def total_tokens(self, level: int) -> int:
        """Return the total token budget for a question of the given level (1 to 5)."""
        if not isinstance(level, int) or not 1 <= level <= 5:
            raise ValueError(f"level must be an integer from 1 to 5, but got level={level!r}")
        return max(1, round(self.budgets[level - 1] * self.scale))


def step_credits(difficulties: Sequence[int], priors: BudgetPriors, total_tokens: int) -> list[float]:
    """Return each step's share of `total_tokens` under the budget model, summing to 1.

    The priors turn each difficulty into c and beta, and the shares are the model's optimal
    split of `total_tokens`. Schedulers use these shares as credits.
    """
    uncertainties = [priors.uncertainty(difficulty) for difficulty in difficulties]
    decay_rates = [priors.decay_rate(difficulty) for difficulty in difficulties]
    allocation = optimal_allocation(uncertainties, decay_rates, float(max(total_tokens, 1)))
    allocation_sum = sum(allocation)
    return [value / allocation_sum for value in allocation]
