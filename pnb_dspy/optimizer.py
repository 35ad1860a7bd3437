"""The Optuna compiler behind `pnb compile`: the objective, the trial loop and `compile_program`.

`n_trials` is the study's total of finished (complete or pruned) trials, whichever worker ran
them. The RDB heartbeat marks a trial left RUNNING by a killed process as FAIL once its grace
period has passed, and a later run replaces it. `selection.select_program` then scores the
baselines and the best tuned trials on the held-out rows and picks the program to export.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import optuna
from optuna.trial import FrozenTrial, TrialState

from pnb_dspy.data import Question
from pnb_dspy.evaluation import build_method, evaluate
from pnb_dspy.metrics import summarize
from pnb_dspy.search_space import BASELINES, SearchSpace, suggest_trial
from pnb_dspy.selection import Selection, export_selection, select_program, summary_attrs
from pnb_dspy.study import CompileSettings, StudySetup, open_study, requeue_baseline

logger = logging.getLogger(__name__)

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_FAILED_TRIALS_IN_A_ROW = 3


class AllQuestionsFailedError(RuntimeError):
    """Every dev question of a trial failed its LM call, so the trial measured nothing."""


class SurplusTrialError(RuntimeError):
    """Another worker started the study's last trial first; this trial is recorded as failed, not run."""


class PnBObjective:
    """Scores one trial's program on the dev rows: E³ (all tokens), or (accuracy, avg tokens) for `pareto`.

    In `e3` mode, E³ over the questions so far is reported after each batch, and the trial is
    pruned when `trial.should_prune()` returns True. Baseline trials report but are never pruned.
    """

    def __init__(
        self,
        settings: CompileSettings,
        setup: StudySetup,
        dev: Sequence[Question],
        lm: dspy.BaseLM | None,
        planner_lms: Mapping[str, dspy.BaseLM],
    ) -> None:
        self.settings = settings
        self.setup = setup
        self.dev = list(dev)
        self.lm = lm
        self.planner_lms = dict(planner_lms)
        self.space = SearchSpace.from_dict(setup.search_space)
        self.batch_size = math.ceil(len(self.dev) / settings.n_report_steps)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self._reject_surplus(trial)
        choice = suggest_trial(trial, self.space, self.setup.instruction_candidates, self.setup.planner_models)
        trial.set_user_attr("method", choice.method)
        trial.set_user_attr("config", choice.config.to_dict())
        trial.set_user_attr("planner_model", choice.planner_model)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

        planner_lm = self.planner_lms.get(choice.planner_model) if choice.planner_model else None
        program = build_method(choice.method, choice.config, planner_lm)
        is_baseline = trial.user_attrs.get("baseline") is not None
        records: list[dict[str, Any]] = []
        for start in range(0, len(self.dev), self.batch_size):
            batch = self.dev[start : start + self.batch_size]
            evaluate({choice.method: program}, batch, lm=self.lm, num_threads=self.settings.num_threads, on_result=records.append)
            summary = summarize(choice.method, records)
            if self.settings.objective != "e3":
                continue
            trial.report(summary.e3, step=len(records))
            if not is_baseline and trial.should_prune():
                _set_score_attrs(trial, summary_attrs(summary, records))
                raise optuna.TrialPruned(f"E3 {summary.e3:.3f} after {len(records)} dev questions is below the median")

        summary = summarize(choice.method, records)
        _set_score_attrs(trial, summary_attrs(summary, records))
        if summary.scored == 0:
            raise AllQuestionsFailedError(f"all {summary.questions} dev questions failed their LM call; see the log for the errors")
        if self.settings.objective == "e3":
            return summary.e3
        return summary.accuracy, summary.avg_tokens

    def _reject_surplus(self, trial: optuna.Trial) -> None:
        # Two workers can both start a trial when one is missing; the later-numbered one stops here.
        states = (*FINISHED_STATES, TrialState.RUNNING)
        earlier = [item for item in trial.study.get_trials(deepcopy=False, states=states) if item.number < trial.number]
        if len(earlier) >= self.settings.n_trials:
            trial.set_user_attr("surplus", True)
            raise SurplusTrialError(f"the study already has {self.settings.n_trials} trials finished or running")


def _set_score_attrs(trial: optuna.Trial, scores: Mapping[str, Any]) -> None:
    # One user attribute per score, so optuna-dashboard shows each as its own column.
    for name, value in scores.items():
        trial.set_user_attr(name, value)


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """Return (finished, running) trial counts; finished means complete or pruned."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING))
    running = sum(1 for trial in trials if trial.state == TrialState.RUNNING)
    return len(trials) - running, running


def run_trials(
    study: optuna.Study,
    objective: PnBObjective,
    n_trials: int,
    *,
    seed: int = 0,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    poll_seconds: float = 2.0,
    catch: tuple[type[Exception], ...] = (),
) -> None:
    """Run trials until the study has `n_trials` finished ones, counting every worker's trials.

    Trials left RUNNING by dead workers are failed once their heartbeat grace period has
    passed. This worker waits for them, and for live workers' trials, rather than overshoot
    the total. It runs a replacement for each trial that fails. A failed baseline trial is
    enqueued again, so every study keeps its three baselines.

    Args:
        seed: seeds the TPE sampler, together with the study's trial count at each trial.
        catch: exceptions, besides this module's own, that fail a trial without stopping the loop.

    Raises:
        RuntimeError: after several trials in a row failed in this worker.
    """
    tolerated = (AllQuestionsFailedError, SurplusTrialError, *catch)
    _requeue_lost_baselines(study)
    failed_in_a_row = 0
    while True:
        _fail_stale_trials(study)
        finished, running = count_trials(study)
        if finished >= n_trials:
            return
        if finished + running >= n_trials:
            time.sleep(poll_seconds)
            continue

        # Reseeding from the trial count keeps one worker's run repeatable, while workers that
        # share the study draw different startup samples instead of repeating each other's.
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.get_trials(deepcopy=False)))
        finished_here: list[FrozenTrial] = []
        study.optimize(
            objective,
            n_trials=1,
            catch=tolerated,
            callbacks=[*callbacks, lambda _study, trial: finished_here.append(trial)],
        )
        last = finished_here[-1] if finished_here else None
        if last is not None and last.state == TrialState.FAIL:
            # A baseline is never lost, not even to a surplus trial that took it off the queue.
            requeue_baseline(study, last)
        if last is not None and last.state == TrialState.FAIL and not last.user_attrs.get("surplus"):
            failed_in_a_row += 1
            if failed_in_a_row >= MAX_FAILED_TRIALS_IN_A_ROW:
                raise RuntimeError(
                    f"{failed_in_a_row} trials in a row failed (last: trial {last.number}); check the model and the log"
                )
        else:
            failed_in_a_row = 0


def _requeue_lost_baselines(study: optuna.Study) -> None:
    """Enqueue again each baseline whose trials all failed, for example when Ctrl-C stopped it."""
    trials = study.get_trials(deepcopy=False)
    for name in BASELINES:
        attempts = [trial for trial in trials if trial.user_attrs.get("baseline") == name]
        if attempts and all(trial.state == TrialState.FAIL for trial in attempts):
            requeue_baseline(study, attempts[-1])


def _fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        # fail_stale_trials is marked experimental; Optuna's own loop calls it the same way.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@dataclass(frozen=True)
class CompileResult:
    """The outcome of `compile_program`.

    Attributes:
        n_finished: complete or pruned trials in the study.
        n_pruned: trials the pruner stopped early.
        n_failed: failed trials, for example those of a killed worker.
        selection: the held-out comparison and the chosen program.
        exported: program files written, the chosen program first.
    """

    study_name: str
    n_finished: int
    selection: Selection
    exported: tuple[Path, ...]
    n_pruned: int = 0
    n_failed: int = 0


def compile_program(
    settings: CompileSettings,
    questions: Sequence[Question],
    lm: dspy.BaseLM | None,
    planner_lms: Mapping[str, dspy.BaseLM] | None = None,
    *,
    out: str | Path | None = None,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    on_open: Callable[[optuna.Study], None] | None = None,
    catch: tuple[type[Exception], ...] = (),
) -> CompileResult:
    """Tune Plan-and-Budget on the dev rows, compare with the baselines on held-out rows, and export the best.

    Args:
        settings: the study and how to tune.
        questions: all rows; the study splits them into dev and held-out rows once.
        lm: the solver LM; None uses the LM configured with `dspy.configure`.
        planner_lms: an LM for each name in `settings.planner_models`.
        out: the program file to write; None writes nothing.
        callbacks: called after each trial this process finishes, for progress bars.
        on_open: called once with the study before the first new trial, so a progress bar can
            start at the trials a resumed study already has.
        catch: exceptions that fail a trial without stopping the run (see `run_trials`).

    Raises:
        StudyMismatchError: when the named study exists for other data or settings.
        ValueError: when a planner model has no LM, or the data is too small for the split.
    """
    planner_lms = dict(planner_lms or {})
    missing = [name for name in settings.planner_models if name not in planner_lms]
    if missing:
        raise ValueError(f"planner_lms has no LM for the planner models {', '.join(missing)}; pass one LM per name")

    study, setup = open_study(settings, questions, lm)
    if on_open is not None:
        on_open(study)
    by_id = {question.id: question for question in questions}
    dev = [by_id[row_id] for row_id in setup.dev_ids]
    heldout = [by_id[row_id] for row_id in setup.heldout_ids]

    objective = PnBObjective(settings, setup, dev, lm, planner_lms)
    run_trials(study, objective, settings.n_trials, seed=settings.seed, callbacks=callbacks, catch=catch)

    selection = select_program(study, heldout, lm, planner_lms, settings.num_threads)
    exported = export_selection(out, selection, settings, setup, planner_lms) if out is not None else []
    finished, _ = count_trials(study)
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return CompileResult(
        study_name=settings.study_name,
        n_finished=finished,
        selection=selection,
        exported=tuple(exported),
        n_pruned=pruned,
        n_failed=failed,
    )
