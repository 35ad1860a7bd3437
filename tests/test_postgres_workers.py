"""Two `pnb compile` workers on one PostgreSQL study: exactly the requested trials, none lost or run twice.

Needs a PostgreSQL server; set PNB_TEST_POSTGRES_URL, for example
postgresql://pnb:pnb@127.0.0.1:5432/pnb_test. The test creates and deletes its own study.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from _scripted_lm import make_questions_file
from optuna.trial import TrialState

from pnb_dspy.study import postgres_driver_url

POSTGRES_URL = os.environ.get("PNB_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parents[1]
N_TRIALS = 8

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="PNB_TEST_POSTGRES_URL is not set; it names the PostgreSQL database to use"),
]

_WORKER = """
import sys
sys.path.insert(0, {tests!r})
import dspy
dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
from _scripted_lm import make_scripted_lm
from pnb_dspy.data import load_questions
from pnb_dspy.optimizer import compile_program
from pnb_dspy.study import CompileSettings
settings = CompileSettings(study_name={study!r}, n_trials={n_trials}, storage={storage!r}, dev_size=6, heldout_size=6,
                           n_report_steps=2, heartbeat_interval=2)
compile_program(settings, load_questions({rows!r}), make_scripted_lm(delay=0.05))
"""


@pytest.fixture(scope="module")
def study_trials(tmp_path_factory: pytest.TempPathFactory):
    """Run two workers to completion on a fresh study and return its trials."""
    tmp_path = tmp_path_factory.mktemp("workers")
    rows = tmp_path / "rows.jsonl"
    make_questions_file(rows, 12)
    study_name = f"pnb-workers-{uuid.uuid4().hex[:8]}"
    script = _WORKER.format(tests=str(REPO / "tests"), study=study_name, n_trials=N_TRIALS, storage=POSTGRES_URL, rows=str(rows))
    workers = [
        subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [worker.communicate(timeout=300)[1].decode()[-2000:] for worker in workers]
    try:
        assert [worker.returncode for worker in workers] == [0, 0], errors
        yield optuna.load_study(study_name=study_name, storage=postgres_driver_url(POSTGRES_URL)).trials
    finally:
        optuna.delete_study(study_name=study_name, storage=postgres_driver_url(POSTGRES_URL))


def test_workers_finish_exact_total(study_trials) -> None:
    finished = [trial for trial in study_trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]

    assert len(finished) == N_TRIALS


def test_workers_leave_nothing_running(study_trials) -> None:
    assert not [trial.number for trial in study_trials if trial.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_workers_run_baselines_once(study_trials) -> None:
    baselines = Counter(trial.user_attrs.get("baseline") for trial in study_trials if trial.state == TrialState.COMPLETE)

    assert baselines["vanilla"] == 1
    assert baselines["global-budget"] == 1
    assert baselines["paper-default"] == 1


def test_workers_fail_only_surplus(study_trials) -> None:
    failed = [trial for trial in study_trials if trial.state == TrialState.FAIL]

    assert all(trial.user_attrs.get("surplus") for trial in failed)


def test_workers_share_the_trials(study_trials) -> None:
    workers = {trial.user_attrs.get("worker") for trial in study_trials if trial.state == TrialState.COMPLETE}

    assert len(workers) == 2
