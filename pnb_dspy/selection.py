"""Choosing the program `pnb compile` exports: the baselines and the best tuned trials, scored on held-out rows.

The candidates are the three baseline trials (vanilla, global budget, and `PnBConfig()`, the
default configuration of the Plan-and-Budget paper) and the best tuned trial by dev E³, or in `pareto` mode every
tuned trial on the dev Pareto front. Each is run on the held-out rows, which tuning never saw,
and the one with the highest held-out E³ (all tokens) is exported, so the exported program is
never worse on those rows than any baseline it was compared with. A tie goes to the baseline.
Held-out scores are stored as study user attributes (`heldout.trial_N`), so a rerun reuses them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import optuna
from optuna.trial import FrozenTrial, TrialState

from pnb_dspy import export
from pnb_dspy.config import PnBConfig
from pnb_dspy.data import Question
from pnb_dspy.evaluation import build_method, evaluate
from pnb_dspy.metrics import MethodSummary
from pnb_dspy.search_space import BASELINES
from pnb_dspy.study import CompileSettings, StudySetup

logger = logging.getLogger(__name__)

SCORE_NAMES = export.SCORE_KEYS
SCORE_ATTRS = (*SCORE_NAMES, "accuracy_by_level")


def summary_attrs(summary: MethodSummary, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the small per-trial scores shown in optuna-dashboard (no transcripts)."""
    return {
        "questions": summary.questions,
        "errors": summary.errors,
        "accuracy": summary.accuracy,
        "avg_tokens": summary.avg_tokens,
        "avg_solver_tokens": summary.avg_solver_tokens,
        "e3": summary.e3,
        "e3_solver": summary.e3_solver,
        "accuracy_by_level": accuracy_by_level(records),
    }


def accuracy_by_level(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Return accuracy in percent per level (`unknown` for rows without one), over answered questions."""
    by_level: dict[str, list[bool]] = {}
    for record in records:
        if record["status"] != "ok":
            continue
        level = "unknown" if record.get("level") is None else str(record["level"])
        by_level.setdefault(level, []).append(bool(record["correct"]))
    return {level: 100.0 * sum(marks) / len(marks) for level, marks in sorted(by_level.items())}



@dataclass(frozen=True)
class Candidate:
    """One trial considered for export, with its dev scores and, once measured, its held-out scores.

    Attributes:
        baseline: `vanilla`, `global-budget` or `paper-default` for a baseline trial, else None.
        dev: the trial's score user attributes (see `summary_attrs`).
        heldout: the same scores on the held-out rows, or None before they are measured.
    """

    trial_number: int
    method: str
    config: PnBConfig
    planner_model: str | None
    baseline: str | None
    dev: dict[str, Any]
    heldout: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.baseline if self.baseline else f"trial {self.trial_number}"


@dataclass(frozen=True)
class Selection:
    """The held-out comparison and its winner.

    Attributes:
        chosen: the candidate with the highest held-out E³.
        candidates: every candidate, baselines first, each with held-out scores.
        front: trial numbers of the tuned candidates (the dev Pareto front in `pareto` mode).
    """

    chosen: Candidate
    candidates: tuple[Candidate, ...]
    front: tuple[int, ...]

    @property
    def baseline_won(self) -> bool:
        return self.chosen.baseline is not None


def candidate_from_trial(trial: FrozenTrial) -> Candidate:
    """Build a candidate from a finished trial's user attributes."""
    attrs = trial.user_attrs
    return Candidate(
        trial_number=trial.number,
        method=attrs["method"],
        config=PnBConfig.from_dict(attrs["config"]),
        planner_model=attrs.get("planner_model"),
        baseline=attrs.get("baseline"),
        dev={name: attrs[name] for name in SCORE_ATTRS if name in attrs},
    )


def candidate_trials(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Return (complete baseline trials in `BASELINES` order, tuned trials to compare with them).

    Raises:
        ValueError: when no trial is complete.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial to export; run more trials")
    baselines = sorted(
        (trial for trial in complete if trial.user_attrs.get("baseline")),
        key=lambda trial: BASELINES.index(trial.user_attrs["baseline"]),
    )
    tuned = [trial for trial in complete if not trial.user_attrs.get("baseline")]
    if not tuned:
        return baselines, []
    if len(study.directions) > 1:
        front = {trial.number for trial in study.best_trials}
        return baselines, [trial for trial in tuned if trial.number in front]
    return baselines, [max(tuned, key=lambda trial: trial.value)]


def measure_heldout(
    study: optuna.Study,
    candidate: Candidate,
    heldout: Sequence[Question],
    lm: dspy.BaseLM | None,
    planner_lms: Mapping[str, dspy.BaseLM],
    num_threads: int,
) -> Candidate:
    """Return `candidate` with its held-out scores, measured now or read from the study."""
    key = f"heldout.trial_{candidate.trial_number}"
    stored = study.user_attrs.get(key)
    if stored is not None:
        return _with_heldout(candidate, stored)

    planner_lm = planner_lms.get(candidate.planner_model) if candidate.planner_model else None
    program = build_method(candidate.method, candidate.config, planner_lm)
    records: list[dict[str, Any]] = []
    summaries = evaluate({candidate.method: program}, heldout, lm=lm, num_threads=num_threads, on_result=records.append)
    scores = summary_attrs(summaries[candidate.method], records)
    study.set_user_attr(key, scores)
    logger.info("held-out E3 of %s: %.3f", candidate.label, scores["e3"])
    return _with_heldout(candidate, scores)


def _with_heldout(candidate: Candidate, scores: dict[str, Any]) -> Candidate:
    return Candidate(
        trial_number=candidate.trial_number,
        method=candidate.method,
        config=candidate.config,
        planner_model=candidate.planner_model,
        baseline=candidate.baseline,
        dev=candidate.dev,
        heldout=dict(scores),
    )


def select_program(
    study: optuna.Study,
    heldout: Sequence[Question],
    lm: dspy.BaseLM | None,
    planner_lms: Mapping[str, dspy.BaseLM],
    num_threads: int = 1,
) -> Selection:
    """Score the baselines and the best tuned trials on `heldout` and return the best by held-out E³."""
    baseline_trials, tuned_trials = candidate_trials(study)
    candidates = [
        measure_heldout(study, candidate_from_trial(trial), heldout, lm, planner_lms, num_threads)
        for trial in [*baseline_trials, *tuned_trials]
    ]
    # max() keeps the first of equal scores, and baselines come first, so a tie exports the baseline.
    chosen = max(candidates, key=lambda candidate: candidate.heldout["e3"])
    return Selection(chosen=chosen, candidates=tuple(candidates), front=tuple(trial.number for trial in tuned_trials))


def export_selection(
    out: str | Path,
    selection: Selection,
    settings: CompileSettings,
    setup: StudySetup,
    planner_lms: Mapping[str, dspy.BaseLM],
) -> list[Path]:
    """Write the chosen program to `out`; in `pareto` mode also each front trial to `OUT-STEM.trial-N.json`."""
    out = Path(out)
    written = [_export_candidate(out, selection.chosen, settings, setup, planner_lms)]
    if settings.objective == "pareto":
        for candidate in selection.candidates:
            if candidate.trial_number in selection.front:
                path = out.with_name(f"{out.stem}.trial-{candidate.trial_number}{out.suffix or '.json'}")
                written.append(_export_candidate(path, candidate, settings, setup, planner_lms))
    return written


def _export_candidate(
    path: Path, candidate: Candidate, settings: CompileSettings, setup: StudySetup, planner_lms: Mapping[str, dspy.BaseLM]
) -> Path:
    planner_lm = planner_lms.get(candidate.planner_model) if candidate.planner_model else None
    program = build_method(candidate.method, candidate.config, planner_lm)
    metadata = {
        "model": settings.model,
        "planner_model": candidate.planner_model,
        "data_fingerprint": setup.data_fingerprint,
        "study_name": settings.study_name,
        "trial_number": candidate.trial_number,
        "baseline": candidate.baseline,
        "dev": _scores(candidate.dev),
        "heldout": _scores(candidate.heldout or {}),
    }
    return export.save(path, program, method=candidate.method, config=candidate.config, metadata=metadata)


def _scores(scores: Mapping[str, Any]) -> dict[str, float]:
    return {name: scores[name] for name in SCORE_NAMES if name in scores}
