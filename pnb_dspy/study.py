"""Creating and resuming the Optuna studies of `pnb compile`, with what each study fixes at creation.

A study is created once and then resumed by name from any storage URL (SQLite by default,
PostgreSQL for several workers). When it is created, these are fixed and stored as study user
attributes, so every worker and every resumed run uses the same ones:

- the seeded split into dev rows (tuning) and held-out rows (final scores only),
- the planner-instruction candidates (`search_space.instruction_candidates`),
- the search space, the objective, the model names and the data fingerprint,

and three baseline trials are enqueued first: vanilla, global budget and `PnBConfig()`, the
default configuration of the Plan-and-Budget paper (arXiv 2505.16122).
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import dspy
import optuna
from optuna.trial import FrozenTrial

from pnb_dspy.data import Question, fingerprint
from pnb_dspy.search_space import SearchSpace, baseline_trials, instruction_candidates

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///optimize/pnb-studies.db"
ObjectiveName = Literal["e3", "pareto"]
OBJECTIVES = ("e3", "pareto")
SETUP_FORMAT = 1
# A worker that finds a study without its setup waits this long for the creating worker.
SETUP_WAIT_SECONDS = 30.0
STORAGE_ATTEMPTS = 3


class StudyMismatchError(ValueError):
    """An existing study was created for other data, another objective, search space or model."""


@dataclass(frozen=True)
class CompileSettings:
    """Settings of a `pnb compile` run, from the command line or a study file.

    Attributes:
        study_name: the Optuna study to create or resume.
        n_trials: finished trials the study should have in total, the baseline trials included.
        storage: an Optuna RDB storage URL (SQLite, PostgreSQL, MySQL).
        objective: `e3` maximizes E³ with all generated tokens; `pareto` maximizes accuracy
            and minimizes average tokens, without pruning.
        seed: seeds the dev/held-out split and the TPE sampler.
        dev_size: questions each trial is scored on.
        heldout_size: questions, never seen while tuning, that the final scores come from.
        search_space: restrictions on the searched values.
        n_instruction_proposals: planner instructions to request from the LM (0 makes no request).
        n_report_steps: intermediate E³ reports per trial, for the median pruner.
        num_threads: dev questions run in parallel.
        heartbeat_interval: seconds between a running trial's heartbeats.
        grace_period: seconds without a heartbeat before a RUNNING trial counts as dead;
            None is twice the interval.
        model: the solver model's name as given to `make_lm`, recorded with the study.
        planner_models: planner model names; the planner uses `model` when empty.
    """

    study_name: str
    n_trials: int
    storage: str = DEFAULT_STORAGE
    objective: ObjectiveName = "e3"
    seed: int = 0
    dev_size: int = 40
    heldout_size: int = 40
    search_space: SearchSpace = field(default_factory=SearchSpace)
    n_instruction_proposals: int = 3
    n_report_steps: int = 4
    num_threads: int = 1
    heartbeat_interval: int = 60
    grace_period: int | None = None
    model: str | None = None
    planner_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.study_name.strip():
            raise ValueError("study_name must be non-empty text")
        n_baselines = len(baseline_trials(self.planner_models))
        if not isinstance(self.n_trials, int) or self.n_trials <= n_baselines:
            raise ValueError(
                f"n_trials must be more than the {n_baselines} baseline trials, but got n_trials={self.n_trials!r}; "
                "30 to 100 trials are typical"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        for name in ("dev_size", "heldout_size", "n_report_steps", "num_threads", "heartbeat_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, but got {name}={value!r}")
        if self.grace_period is not None and self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period must exceed heartbeat_interval={self.heartbeat_interval}, but got grace_period={self.grace_period}"
            )


@dataclass(frozen=True)
class StudySetup:
    """The split, instruction candidates and settings that a study fixes at creation and stores as user attributes."""

    dev_ids: tuple[str, ...]
    heldout_ids: tuple[str, ...]
    instruction_candidates: tuple[str, ...]
    data_fingerprint: str
    objective: str
    search_space: dict[str, Any]
    model: str | None
    planner_models: tuple[str, ...]

    def to_user_attrs(self) -> dict[str, Any]:
        return {
            "dev_ids": list(self.dev_ids),
            "heldout_ids": list(self.heldout_ids),
            "planner_instruction_candidates": list(self.instruction_candidates),
            "data_fingerprint": self.data_fingerprint,
            "objective": self.objective,
            "search_space": self.search_space,
            "model": self.model,
            "planner_models": list(self.planner_models),
        }

    @classmethod
    def from_user_attrs(cls, attrs: Mapping[str, Any]) -> StudySetup:
        return cls(
            dev_ids=tuple(attrs["dev_ids"]),
            heldout_ids=tuple(attrs["heldout_ids"]),
            instruction_candidates=tuple(attrs["planner_instruction_candidates"]),
            data_fingerprint=attrs["data_fingerprint"],
            objective=attrs["objective"],
            search_space=attrs["search_space"],
            model=attrs["model"],
            planner_models=tuple(attrs["planner_models"]),
        )


class HeartbeatStorage(optuna.storages.RDBStorage):
    """An RDB storage whose stale-trial check also covers trials that never wrote a heartbeat.

    Optuna's check skips a RUNNING trial with no heartbeat row. A worker killed between
    creating a trial and its heartbeat thread's first write leaves such a trial, and it would
    stay RUNNING for ever. Here it counts as stale once it started more than the grace period ago.
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # NOTE: this overrides a private method and reads Optuna's private RDB models, because the
        # public API cannot see heartbeat rows. Checked against Optuna 5.1 only.
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        stale = list(super()._get_stale_trial_ids(study_id))
        grace_period = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
        cutoff = datetime.now() - timedelta(seconds=grace_period)
        with _create_scoped_session(self.scoped_session, True) as session:
            running = (
                session.query(models.TrialModel)
                .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
                .filter(models.TrialModel.study_id == study_id)
                .all()
            )
            for trial in running:
                # Optuna writes datetime_start with the worker's local datetime.now().
                if not trial.heartbeats and trial.datetime_start is not None and trial.datetime_start < cutoff:
                    stale.append(trial.trial_id)
        return stale


def postgres_driver_url(url: str) -> str:
    """Return `url` with `+psycopg2` added to a driverless `postgresql://` URL when only psycopg2 is installed.

    SQLAlchemy 2.1 maps `postgresql://` to psycopg 3, while the test extra of pnb-dspy installs
    psycopg2-binary; a URL that names its driver is returned unchanged.
    """
    import importlib.util

    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def make_storage(url: str, heartbeat_interval: int, grace_period: int | None) -> optuna.storages.RDBStorage:
    """Return an RDB storage with the heartbeat on, creating the folder of a SQLite file."""
    url = postgres_driver_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        database = url.removeprefix("sqlite:///")
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # The heartbeat thread writes while the trial runs; wait for SQLite's lock rather than fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    import sqlalchemy.exc

    for _ in range(STORAGE_ATTEMPTS - 1):
        try:
            return _heartbeat_storage(url, engine_kwargs, heartbeat_interval, grace_period)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Workers that start together on an empty database race to create Optuna's tables, and
            # PostgreSQL raises a unique violation for the loser. The tables exist once the winner is done.
            logger.info("creating Optuna's tables failed (%s); retrying", type(error).__name__)
            time.sleep(1.0)
    return _heartbeat_storage(url, engine_kwargs, heartbeat_interval, grace_period)


def _heartbeat_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_interval: int, grace_period: int | None) -> HeartbeatStorage:
    with warnings.catch_warnings():
        # Optuna marks the heartbeat arguments experimental; they are what fails dead workers' trials.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return HeartbeatStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=requeue_baseline,
        )


def requeue_baseline(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a failed baseline trial again with the same fixed parameters; other trials are left alone.

    Optuna calls this for a trial it marks failed because its worker died, and `run_trials`
    calls it for a baseline trial that failed in this process, so each failure is requeued once.
    """
    name = trial.user_attrs.get("baseline")
    if not name:
        return
    study.enqueue_trial(dict(trial.system_attrs.get("fixed_params", {})), user_attrs={"baseline": name})
    logger.warning("baseline trial %d (%s) failed; enqueued it again", trial.number, name)


def split_questions(questions: Sequence[Question], dev_size: int, heldout_size: int, seed: int) -> tuple[list[str], list[str]]:
    """Return (dev ids, held-out ids): disjoint, drawn by `random.Random(seed)`.

    Raises:
        ValueError: when the data has fewer rows than the two splits need.
    """
    if dev_size + heldout_size > len(questions):
        raise ValueError(
            f"dev_size={dev_size} plus heldout_size={heldout_size} needs {dev_size + heldout_size} questions, "
            f"but the data has {len(questions)}; lower the sizes or use more data"
        )
    ids = [question.id for question in questions]
    random.Random(seed).shuffle(ids)
    return ids[heldout_size : heldout_size + dev_size], ids[:heldout_size]


def open_study(
    settings: CompileSettings, questions: Sequence[Question], lm: dspy.BaseLM | None
) -> tuple[optuna.Study, StudySetup]:
    """Create the study with its setup and baseline trials, or load it and check that it matches.

    Raises:
        StudyMismatchError: when the existing study was made for other data, objective,
            search space or models.
    """
    storage = make_storage(settings.storage, settings.heartbeat_interval, settings.grace_period)
    directions = ["maximize"] if settings.objective == "e3" else ["maximize", "minimize"]
    first_batch = math.ceil(settings.dev_size / settings.n_report_steps)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2 * first_batch)
        if settings.objective == "e3"
        else optuna.pruners.NopPruner()
    )
    sampler = optuna.samplers.TPESampler(seed=settings.seed)

    if settings.study_name not in optuna.get_all_study_names(storage):
        setup = _new_setup(settings, questions, lm)
        try:
            study = optuna.create_study(
                storage=storage, study_name=settings.study_name, sampler=sampler, pruner=pruner, directions=directions
            )
        except optuna.exceptions.DuplicatedStudyError:
            logger.info("study %s was created by another worker just now; loading it", settings.study_name)
        else:
            _write_setup(study, setup, settings.planner_models)
            return study, setup

    study = optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler, pruner=pruner)
    setup = _read_setup(study)
    _check_setup_matches(settings, setup, questions)
    return study, setup


def _new_setup(settings: CompileSettings, questions: Sequence[Question], lm: dspy.BaseLM | None) -> StudySetup:
    dev_ids, heldout_ids = split_questions(questions, settings.dev_size, settings.heldout_size, settings.seed)
    by_id = {question.id: question for question in questions}
    candidates = instruction_candidates([by_id[row_id] for row_id in dev_ids], lm, settings.n_instruction_proposals)
    return StudySetup(
        dev_ids=tuple(dev_ids),
        heldout_ids=tuple(heldout_ids),
        instruction_candidates=tuple(candidates),
        data_fingerprint=fingerprint(list(questions)),
        objective=settings.objective,
        search_space=settings.search_space.to_dict(),
        model=settings.model,
        planner_models=settings.planner_models,
    )


def _write_setup(study: optuna.Study, setup: StudySetup, planner_models: Sequence[str]) -> None:
    for key, value in setup.to_user_attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr("setup_format", SETUP_FORMAT)
    for name, params in baseline_trials(planner_models):
        study.enqueue_trial(params, user_attrs={"baseline": name})
    # Written last, so a worker that reads it can rely on the setup and the baseline trials being stored.
    study.set_user_attr("setup_complete", True)
    logger.info("created study %s: %d dev rows, %d held-out rows", study.study_name, len(setup.dev_ids), len(setup.heldout_ids))


def _read_setup(study: optuna.Study) -> StudySetup:
    deadline = time.monotonic() + SETUP_WAIT_SECONDS
    while not study.user_attrs.get("setup_complete"):
        if time.monotonic() > deadline:
            raise StudyMismatchError(
                f"study {study.study_name!r} exists but has no pnb setup (it was created by something else, or its "
                "creator was killed while writing it); delete it with `optuna delete-study` or use a new --study name"
            )
        time.sleep(0.5)
    return StudySetup.from_user_attrs(study.user_attrs)


def _check_setup_matches(settings: CompileSettings, setup: StudySetup, questions: Sequence[Question]) -> None:
    name = settings.study_name
    data_fingerprint = fingerprint(list(questions))
    if setup.data_fingerprint != data_fingerprint:
        raise StudyMismatchError(
            f"study {name!r} was created for other data (fingerprint {setup.data_fingerprint}, this data {data_fingerprint}); "
            "pass the same data file and field options, or use a new --study name"
        )
    checks = (
        ("objective", setup.objective, settings.objective),
        ("search space", setup.search_space, settings.search_space.to_dict()),
        ("model", setup.model, settings.model),
        ("planner models", list(setup.planner_models), list(settings.planner_models)),
    )
    for label, stored, given in checks:
        if stored != given:
            raise StudyMismatchError(
                f"study {name!r} was created with {label} {stored!r}, but this run has {given!r}; "
                "Optuna cannot change a study's choices, so pass the same settings or use a new --study name"
            )
    if (len(setup.dev_ids), len(setup.heldout_ids)) != (settings.dev_size, settings.heldout_size):
        logger.warning(
            "study %s keeps its stored split of %d dev and %d held-out rows; the sizes given now are ignored",
            name,
            len(setup.dev_ids),
            len(setup.heldout_ids),
        )


STUDY_FILE_KEYS = (
    "data",
    "preset",
    "question_field",
    "answer_field",
    "level_field",
    "id_field",
    "answer_kind",
    "split",
    "limit",
    "study_name",
    "trials",
    "objective",
    "seed",
    "dev_size",
    "heldout_size",
    "instruction_proposals",
    "search_space",
    "description",
)


def read_study_file(path: str | Path) -> dict[str, Any]:
    """Read a study definition such as `optimize/gsm8k.json`, rejecting unknown keys by name.

    A relative `data` path is resolved against the study file's folder. The returned
    `search_space` is a `SearchSpace`.

    Raises:
        ValueError: for a missing or invalid file, an unknown key or an invalid search space.
    """
    import json

    source = Path(path)
    if not source.is_file():
        raise ValueError(f"study file not found: {str(path)!r}")
    try:
        definition = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"study file {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(definition, dict):
        raise ValueError(f"study file {str(path)!r} must hold one JSON object")
    unknown = sorted(set(definition) - set(STUDY_FILE_KEYS))
    if unknown:
        raise ValueError(f"study file {str(path)!r} has unknown keys: {', '.join(unknown)}; known keys are {', '.join(STUDY_FILE_KEYS)}")

    values = dict(definition)
    data = values.get("data")
    if isinstance(data, str) and not Path(data).is_absolute() and Path(data).suffix:
        values["data"] = str((source.parent / data).resolve())
    try:
        values["search_space"] = SearchSpace.from_dict(values.get("search_space") or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"study file {str(path)!r} has an invalid search_space: {error}") from error
    return values
