"""Plan-and-Budget for DSPy."""

from pnb_dspy.answers import is_correct
from pnb_dspy.baselines import GlobalBudget, Vanilla
from pnb_dspy.budget import BudgetPriors, LevelBudgetMap
from pnb_dspy.config import PnBConfig
from pnb_dspy.data import load_questions
from pnb_dspy.evaluation import evaluate
from pnb_dspy.export import ProgramFileError, load, save
from pnb_dspy.lm import make_lm
from pnb_dspy.metrics import e3_score
from pnb_dspy.modules import Aggregator, BudgetedSolver, PlanAndBudget, Planner
from pnb_dspy.optimizer import compile_program
from pnb_dspy.schedulers import (
    CosineDecayScheduler,
    ExponentialDecayScheduler,
    LinearDecayScheduler,
    PolynomialDecayScheduler,
    Scheduler,
    UniformScheduler,
    WeightedScheduler,
    make_scheduler,
)
from pnb_dspy.search_space import SearchSpace
from pnb_dspy.study import CompileSettings
from pnb_dspy.usage import track_tokens

__all__ = [
    "Aggregator",
    "BudgetPriors",
    "BudgetedSolver",
    "CompileSettings",
    "CosineDecayScheduler",
    "ExponentialDecayScheduler",
    "GlobalBudget",
    "LevelBudgetMap",
    "LinearDecayScheduler",
    "PlanAndBudget",
    "Planner",
    "PnBConfig",
    "PolynomialDecayScheduler",
    "ProgramFileError",
    "Scheduler",
    "SearchSpace",
    "UniformScheduler",
    "Vanilla",
    "WeightedScheduler",
    "compile_program",
    "e3_score",
    "evaluate",
    "is_correct",
    "load",
    "load_questions",
    "make_lm",
    "make_scheduler",
    "save",
    "track_tokens",
]
