"""Tests for `pnb compile`: search space, study setup and resume, baselines, held-out export, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dspy
import optuna
import pytest
from _scripted_lm import ScriptedEngine, make_questions_file, make_scripted_lm
from optuna.trial import TrialState

import pnb_dspy.optimizer
from pnb_dspy import cli
from pnb_dspy.config import PnBConfig
from pnb_dspy.data import load_questions
from pnb_dspy.evaluation import build_method
from pnb_dspy.export import read_program
from pnb_dspy.export import load as load_program
from pnb_dspy.optimizer import AllQuestionsFailedError, PnBObjective, compile_program, count_trials
from pnb_dspy.search_space import WRITTEN_INSTRUCTIONS, SearchSpace, parse_proposals, suggest_trial
from pnb_dspy.signatures import PlanQuestion
from pnb_dspy.study import CompileSettings, StudyMismatchError, StudySetup, read_study_file, split_questions

REPO = Path(__file__).resolve().parents[1]
N_TRIALS = 6


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    make_questions_file(path, 12)
    return path


def _settings(tmp_path: Path, **overrides: object) -> CompileSettings:
    values: dict[str, object] = {
        "study_name": "unit",
        "n_trials": N_TRIALS,
        "storage": f"sqlite:///{tmp_path / 'studies.db'}",
        "dev_size": 6,
        "heldout_size": 6,
        "n_report_steps": 2,
    }
    values.update(overrides)
    return CompileSettings(**values)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory):
    """One compile shared by the tests that only read its study and program file."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    tmp_path = tmp_path_factory.mktemp("compiled")
    make_questions_file(tmp_path / "rows.jsonl", 12)
    questions = load_questions(str(tmp_path / "rows.jsonl"))
    settings = _settings(tmp_path)
    result = compile_program(settings, questions, make_scripted_lm(), out=tmp_path / "program.json")
    study = optuna.load_study(study_name="unit", storage=settings.storage)
    return result, study, questions


def _answers(program: dspy.Module, questions) -> list[tuple[str, int]]:
    with dspy.context(lm=make_scripted_lm()):
        predictions = [program(question=question.question, level=question.level) for question in questions]
    return [(str(prediction.answer), prediction.tokens["total"]) for prediction in predictions]


# Search space


def test_param_names_match_config_keys(tmp_path: Path) -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    candidates = (PlanQuestion.instructions, *WRITTEN_INSTRUCTIONS)
    for _ in range(12):
        trial = study.ask()
        choice = suggest_trial(trial, SearchSpace(), candidates, ())
        config = choice.config.to_dict()
        for name, value in trial.params.items():
            if name == "planner_instructions":
                # The parameter is an index into the study's candidate list.
                assert config["planner_instructions"] == (candidates[value] if value else None)
                continue
            section, _, key = name.partition(".")
            assert (config[section][key] if key else config[section]) == value
        study.tell(trial, 1.0)


def test_scheduler_params_only_where_apply() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        choice = suggest_trial(trial, SearchSpace(), (PlanQuestion.instructions,), ())
        expected = set(choice.config.make_scheduler().params())
        assert {name.split(".")[1] for name in trial.params if name.startswith("scheduler_params.")} == expected
        study.tell(trial, 1.0)


def test_budget_scale_reaches_three() -> None:
    assert SearchSpace().budget_scale[1] >= 3.0


def test_planner_model_suggested_when_several() -> None:
    study = optuna.create_study()
    trial = study.ask()

    choice = suggest_trial(trial, SearchSpace(), (PlanQuestion.instructions,), ("small/a", "small/b"))

    assert trial.params["planner_model"] == choice.planner_model


def test_space_without_default_rejected() -> None:
    with pytest.raises(ValueError, match="must include the default 'polynomial'"):
        SearchSpace(schedulers=("cosine",))


def test_space_unknown_key_rejected() -> None:
    with pytest.raises(ValueError, match="unknown search space keys: temperature"):
        SearchSpace.from_dict({"temperature": [0, 1]})


def test_proposals_tolerate_junk() -> None:
    text = (
        "Sure! Here are some:\n1. ok\n2. Break the problem into steps, one per line with (difficulty: D), then rate it.\n"
        "[[ ## alternatives ## ]]\n3. Break the problem into steps, one per line with (difficulty: D), then rate it.\n"
        "4. " + "x" * 900 + " difficulty"
    )

    assert parse_proposals(text) == ["Break the problem into steps, one per line with (difficulty: D), then rate it."]


def test_split_is_seeded_and_disjoint(rows: Path) -> None:
    questions = load_questions(str(rows))

    dev, heldout = split_questions(questions, 6, 6, seed=3)

    assert (dev, heldout) == split_questions(questions, 6, 6, seed=3)
    assert not set(dev) & set(heldout)


def test_split_too_large_rejected(rows: Path) -> None:
    with pytest.raises(ValueError, match="needs 13 questions, but the data has 12"):
        split_questions(load_questions(str(rows)), 7, 6, seed=0)


# Objective and pruning


def _objective(rows: Path, tmp_path: Path, objective: str = "e3") -> PnBObjective:
    questions = load_questions(str(rows))
    settings = _settings(tmp_path, objective=objective, n_report_steps=3)
    setup = StudySetup(
        dev_ids=tuple(question.id for question in questions[:6]),
        heldout_ids=tuple(question.id for question in questions[6:]),
        instruction_candidates=(PlanQuestion.instructions,),
        data_fingerprint="unused",
        objective=objective,
        search_space=SearchSpace().to_dict(),
        model=None,
        planner_models=(),
    )
    return PnBObjective(settings, setup, questions[:6], make_scripted_lm(), {})


def _always_pruning_study() -> optuna.Study:
    return optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1e9))


def test_weak_trial_pruned_early(rows: Path, tmp_path: Path) -> None:
    study = _always_pruning_study()

    study.optimize(_objective(rows, tmp_path), n_trials=1)

    assert study.trials[0].state == TrialState.PRUNED
    assert list(study.trials[0].intermediate_values) == [2]
    assert study.trials[0].user_attrs["questions"] == 2


def test_baseline_trial_never_pruned(rows: Path, tmp_path: Path) -> None:
    study = _always_pruning_study()
    study.enqueue_trial({"method": "vanilla"}, user_attrs={"baseline": "vanilla"})

    study.optimize(_objective(rows, tmp_path), n_trials=1)

    assert study.trials[0].state == TrialState.COMPLETE
    assert list(study.trials[0].intermediate_values) == [2, 4, 6]


def test_pareto_objective_returns_pair(rows: Path, tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({"method": "vanilla"}, user_attrs={"baseline": "vanilla"})

    study.optimize(_objective(rows, tmp_path, objective="pareto"), n_trials=1)

    assert study.trials[0].values == [100.0, 400.0]
    assert study.trials[0].intermediate_values == {}


def test_all_errors_fail_trial(rows: Path, tmp_path: Path) -> None:
    objective = _objective(rows, tmp_path)
    objective.lm = dspy.LM("openai/unreachable", api_base="http://127.0.0.1:9", api_key="none", num_retries=0, cache=False)
    study = optuna.create_study(direction="maximize")

    study.optimize(objective, n_trials=1, catch=(AllQuestionsFailedError,))

    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[0].user_attrs["errors"] == 6


# Compile end to end


def test_compile_finishes_n_trials(compiled) -> None:
    result, study, _ = compiled

    assert result.n_finished == N_TRIALS
    assert count_trials(study) == (N_TRIALS, 0)


def test_baselines_run_first(compiled) -> None:
    _, study, _ = compiled

    baselines = [trial.user_attrs.get("baseline") for trial in study.trials[:3]]

    assert baselines == ["vanilla", "global-budget", "paper-default"]


def test_paper_default_uses_defaults(compiled) -> None:
    _, study, _ = compiled
    config = PnBConfig.from_dict(study.trials[2].user_attrs["config"])
    default = PnBConfig()

    # The trial names the polynomial power that PnBConfig() leaves implicit.
    assert config.make_scheduler() == default.make_scheduler()
    assert {**config.to_dict(), "scheduler_params": {}} == default.to_dict()


def test_trials_carry_dashboard_attrs(compiled) -> None:
    _, study, _ = compiled

    for trial in study.trials:
        expected = {"questions", "errors", "accuracy", "avg_tokens", "avg_solver_tokens", "e3", "e3_solver", "accuracy_by_level"}
        assert expected <= set(trial.user_attrs)
        assert trial.user_attrs["method"] in ("pnb", "vanilla", "global-budget")
        assert isinstance(trial.user_attrs["config"], dict)


def test_trials_report_intermediate_e3(compiled) -> None:
    _, study, _ = compiled

    assert all(len(trial.intermediate_values) == 2 for trial in study.trials if trial.state == TrialState.COMPLETE)


def test_study_stores_split_and_candidates(compiled) -> None:
    _, study, _ = compiled
    attrs = study.user_attrs

    assert len(attrs["dev_ids"]) == 6
    assert len(attrs["heldout_ids"]) == 6
    assert not set(attrs["dev_ids"]) & set(attrs["heldout_ids"])
    assert attrs["planner_instruction_candidates"][: 1 + len(WRITTEN_INSTRUCTIONS)] == [PlanQuestion.instructions, *WRITTEN_INSTRUCTIONS]
    # The scripted LM proposes one usable instruction among junk lines.
    assert len(attrs["planner_instruction_candidates"]) == 2 + len(WRITTEN_INSTRUCTIONS)


def test_export_not_worse_than_baselines(compiled) -> None:
    result, _, _ = compiled
    selection = result.selection

    best_baseline = max(candidate.heldout["e3"] for candidate in selection.candidates if candidate.baseline)

    assert selection.chosen.heldout["e3"] >= best_baseline


def test_export_metadata_matches_choice(compiled) -> None:
    result, study, questions = compiled
    program_file = read_program(result.exported[0])
    chosen = result.selection.chosen

    assert program_file.metadata["trial_number"] == chosen.trial_number
    assert program_file.metadata["study_name"] == "unit"
    assert program_file.metadata["heldout"]["e3"] == chosen.heldout["e3"]
    assert program_file.method == chosen.method
    assert program_file.config == chosen.config


def test_loaded_program_gives_same_outputs(compiled) -> None:
    result, study, questions = compiled
    chosen = result.selection.chosen
    original = build_method(chosen.method, chosen.config)

    loaded = load_program(result.exported[0])

    assert _answers(loaded, questions) == _answers(original, questions)


def test_baseline_exported_when_better(tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No stated budget is large enough for a correct reply, so only the vanilla baseline scores.
    monkeypatch.setattr("_scripted_lm.CORRECT_AT_TOKENS", 100_000)
    settings = _settings(tmp_path)

    result = compile_program(settings, load_questions(str(rows)), make_scripted_lm(), out=tmp_path / "program.json")

    assert result.selection.chosen.baseline == "vanilla"
    assert read_program(result.exported[0]).method == "vanilla"
    assert "the exported program is the vanilla baseline" in cli.format_compile_summary(result, settings)


def test_pareto_exports_front(tmp_path: Path, rows: Path) -> None:
    settings = _settings(tmp_path, objective="pareto")

    result = compile_program(settings, load_questions(str(rows)), make_scripted_lm(), out=tmp_path / "program.json")

    assert len(result.exported) == 1 + len(result.selection.front)
    assert all(path.exists() for path in result.exported)
    assert optuna.load_study(study_name="unit", storage=settings.storage).directions[1] == optuna.study.StudyDirection.MINIMIZE


# Resume


def test_resume_runs_only_missing_trials(tmp_path: Path, rows: Path) -> None:
    questions = load_questions(str(rows))
    compile_program(_settings(tmp_path), questions, make_scripted_lm())
    engine = ScriptedEngine()
    lm = dspy.LM("scripted/pnb-test", engine=engine, cache=False, num_retries=0)
    storage = _settings(tmp_path).storage
    before = {trial.number: trial.values for trial in optuna.load_study(study_name="unit", storage=storage).trials}

    compile_program(_settings(tmp_path, n_trials=N_TRIALS + 1), questions, lm)

    after = optuna.load_study(study_name="unit", storage=storage).trials
    assert {trial.number: trial.values for trial in after[:N_TRIALS]} == before
    assert len(after) == N_TRIALS + 1


def test_resume_keeps_instruction_candidates(tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    questions = load_questions(str(rows))
    compile_program(_settings(tmp_path), questions, make_scripted_lm())
    storage = _settings(tmp_path).storage
    stored = optuna.load_study(study_name="unit", storage=storage).user_attrs["planner_instruction_candidates"]
    monkeypatch.setattr("pnb_dspy.study.instruction_candidates", lambda *args: ["something else"])

    compile_program(_settings(tmp_path, n_trials=N_TRIALS + 1), questions, make_scripted_lm())

    assert optuna.load_study(study_name="unit", storage=storage).user_attrs["planner_instruction_candidates"] == stored


def test_interrupted_baseline_runs_again(tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    questions = load_questions(str(rows))
    real_evaluate = pnb_dspy.optimizer.evaluate

    def interrupt_global_budget(programs, *args, **kwargs):
        if "global-budget" in programs:
            raise KeyboardInterrupt
        return real_evaluate(programs, *args, **kwargs)

    monkeypatch.setattr("pnb_dspy.optimizer.evaluate", interrupt_global_budget)
    with pytest.raises(KeyboardInterrupt):
        compile_program(_settings(tmp_path), questions, make_scripted_lm())
    monkeypatch.setattr("pnb_dspy.optimizer.evaluate", real_evaluate)

    compile_program(_settings(tmp_path), questions, make_scripted_lm())

    trials = optuna.load_study(study_name="unit", storage=_settings(tmp_path).storage).trials
    states = [trial.state for trial in trials if trial.user_attrs.get("baseline") == "global-budget"]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def test_resume_other_data_rejected(tmp_path: Path, rows: Path) -> None:
    compile_program(_settings(tmp_path), load_questions(str(rows)), make_scripted_lm())
    other = tmp_path / "other.jsonl"
    make_questions_file(other, 13)

    with pytest.raises(StudyMismatchError, match="created for other data"):
        compile_program(_settings(tmp_path), load_questions(str(other)), make_scripted_lm())


def test_resume_other_objective_rejected(tmp_path: Path, rows: Path) -> None:
    compile_program(_settings(tmp_path), load_questions(str(rows)), make_scripted_lm())

    with pytest.raises(StudyMismatchError, match="objective 'e3'"):
        compile_program(_settings(tmp_path, objective="pareto"), load_questions(str(rows)), make_scripted_lm())


_KILLABLE_COMPILE = """
import sys
sys.path.insert(0, {tests!r})
import dspy
dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
from _scripted_lm import make_scripted_lm
from pnb_dspy.data import load_questions
from pnb_dspy.optimizer import compile_program
from pnb_dspy.study import CompileSettings
settings = CompileSettings(study_name="unit", n_trials={n_trials}, storage={storage!r}, dev_size=6, heldout_size=6,
                           n_report_steps=2, heartbeat_interval=1, grace_period=2)
compile_program(settings, load_questions({rows!r}), make_scripted_lm(delay=0.15))
"""


def _wait_for_running_trial(storage: str, n_complete: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if "unit" not in optuna.get_all_study_names(storage):
            continue
        trials = optuna.load_study(study_name="unit", storage=storage).trials
        complete = sum(1 for trial in trials if trial.state == TrialState.COMPLETE)
        if complete >= n_complete and trials[-1].state == TrialState.RUNNING:
            return
    raise TimeoutError(f"the compile subprocess did not reach {n_complete} complete trials in {timeout} s")


def test_killed_compile_resumes(tmp_path: Path, rows: Path) -> None:
    storage = _settings(tmp_path).storage
    script = _KILLABLE_COMPILE.format(tests=str(REPO / "tests"), n_trials=N_TRIALS, storage=storage, rows=str(rows))
    process = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_running_trial(storage, n_complete=2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before = optuna.load_study(study_name="unit", storage=storage).trials
    killed = before[-1].number
    # The killed trial counts as dead once its heartbeat is older than the 2 s grace period.
    time.sleep(2.5)

    settings = _settings(tmp_path, heartbeat_interval=1, grace_period=2)
    compile_program(settings, load_questions(str(rows)), make_scripted_lm())

    after = optuna.load_study(study_name="unit", storage=storage).trials
    assert [(trial.number, trial.values) for trial in after[:killed]] == [(trial.number, trial.values) for trial in before[:killed]]
    assert after[killed].state == TrialState.FAIL
    assert count_trials(optuna.load_study(study_name="unit", storage=storage)) == (N_TRIALS, 0)
    assert sum(1 for trial in after if trial.user_attrs.get("baseline") and trial.state == TrialState.COMPLETE) == 3


# Study file and CLI


def test_gsm8k_study_file_uses_train() -> None:
    definition = read_study_file(REPO / "optimize" / "gsm8k.json")

    assert Path(definition["data"]).name == "train.jsonl"
    assert Path(definition["data"]).parent.name == "gsm8k"
    assert definition["preset"] == "gsm8k"


def test_study_file_unknown_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"data": "rows.jsonl", "trails": 10}))

    with pytest.raises(ValueError, match="unknown keys: trails"):
        read_study_file(path)


def _run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "make_lm", lambda *args, **kwargs: make_scripted_lm())
    assert cli.main(argv) == 0


def test_cli_compile_run_eval(tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    study_file = tmp_path / "study.json"
    study_file.write_text(json.dumps({"data": "rows.jsonl", "study_name": "cli", "trials": 5, "dev_size": 6, "heldout_size": 6}))

    _run_cli(["compile", "--study-file", str(study_file), "--model", "scripted/pnb-test"], monkeypatch)
    compile_output = capsys.readouterr().out
    _run_cli(["run", "--program", "programs/cli.json", "What is 2 + 3?"], monkeypatch)
    run_output = capsys.readouterr().out
    _run_cli(["eval", "--program", "programs/cli.json", "--data", "rows.jsonl", "--limit", "2"], monkeypatch)
    eval_output = capsys.readouterr().out

    assert "program file: programs/cli.json" in compile_output
    assert "optuna-dashboard sqlite:///optimize/pnb-studies.db" in compile_output
    assert "answer: 5" in run_output
    assert "| program |" in eval_output


def test_resumed_compile_progress_bar(
    tmp_path: Path, rows: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    study_file = tmp_path / "study.json"
    definition = {"data": "rows.jsonl", "study_name": "bar", "trials": 4, "dev_size": 6, "heldout_size": 6}
    study_file.write_text(json.dumps(definition))
    _run_cli(["compile", "--study-file", str(study_file), "--model", "scripted/pnb-test"], monkeypatch)
    capsys.readouterr()
    definition["trials"] = 5
    study_file.write_text(json.dumps(definition))
    _run_cli(["compile", "--study-file", str(study_file), "--model", "scripted/pnb-test"], monkeypatch)
    progress = capsys.readouterr().err

    assert "5/5" in progress
    assert "4/5" in progress.split("5/5")[0]


def test_cli_rejects_test_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test_rows = tmp_path / "test.jsonl"
    make_questions_file(test_rows, 12)

    with pytest.raises(SystemExit):
        cli.main(["compile", "--data", str(test_rows), "--storage", f"sqlite:///{tmp_path / 's.db'}"])


def test_cli_corrupt_program_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "broken.json"
    program.write_text("{")

    with pytest.raises(SystemExit):
        cli.main(["run", "--program", str(program), "What is 1 + 1?"])
    assert "--program:" in capsys.readouterr().err
