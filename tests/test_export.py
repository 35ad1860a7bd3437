"""Tests for compiled-program files: save/load round trips and every way a file can be rejected."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import dspy
import pytest
from _scripted_lm import make_scripted_lm

import pnb_dspy
from pnb_dspy.config import PnBConfig
from pnb_dspy.evaluation import build_method
from pnb_dspy.export import SCHEMA_VERSION, ProgramFileError, load, read_program, save

QUESTIONS = ("What is 12 + 30?", "What is 7 + 5?")


def _tuned_config() -> PnBConfig:
    return PnBConfig(
        scheduler="cosine",
        scheduler_params={"floor": 0.2},
        budget_scale=2.0,
        mode="stepwise",
        max_steps=3,
        budget_unit="words",
        plan_style="hints",
        planner_instructions="Split it into sub-questions as `1. <q> (difficulty: D)` and rate the level.",
    )


def _saved(tmp_path: Path, method: str = "pnb", config: PnBConfig | None = None) -> Path:
    config = config or _tuned_config()
    program = build_method(method, config)
    return save(tmp_path / "program.json", program, method=method, config=config, metadata={"study_name": "unit"})


def _edited(path: Path, edit) -> Path:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    return path


def _answers(program: dspy.Module) -> list[tuple[str, int]]:
    with dspy.context(lm=make_scripted_lm()):
        predictions = [program(question=question) for question in QUESTIONS]
    return [(str(prediction.answer), prediction.tokens["total"]) for prediction in predictions]


@pytest.mark.parametrize("method", ["pnb", "vanilla", "global-budget"])
def test_round_trip_keeps_state(tmp_path: Path, method: str) -> None:
    original = build_method(method, _tuned_config())
    path = save(tmp_path / "p.json", original, method=method, config=_tuned_config())

    loaded = load(path)

    assert loaded.dump_state() == original.dump_state()


@pytest.mark.parametrize("method", ["pnb", "vanilla", "global-budget"])
def test_round_trip_same_answers(tmp_path: Path, method: str) -> None:
    original = build_method(method, _tuned_config())
    path = save(tmp_path / "p.json", original, method=method, config=_tuned_config())

    assert _answers(load(path)) == _answers(original)


def test_loaded_program_keeps_config(tmp_path: Path) -> None:
    program = load(_saved(tmp_path))

    assert program.config == _tuned_config()


def test_loaded_planner_uses_instructions(tmp_path: Path) -> None:
    program = load(_saved(tmp_path))

    assert program.planner.predict.signature.instructions == _tuned_config().planner_instructions


def test_file_records_versions(tmp_path: Path) -> None:
    metadata = read_program(_saved(tmp_path)).metadata

    assert metadata["dspy_version"] == dspy.__version__
    assert metadata["pnb_dspy_version"]
    assert metadata["study_name"] == "unit"


def test_file_has_schema_version(tmp_path: Path) -> None:
    document = json.loads(_saved(tmp_path).read_text())

    assert document["schema_version"] == SCHEMA_VERSION
    assert document["format"] == "pnb-dspy-program"


def test_package_exports_load_save() -> None:
    assert pnb_dspy.load is load
    assert pnb_dspy.save is save


def test_error_is_value_error() -> None:
    assert issubclass(ProgramFileError, ValueError)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProgramFileError, match="program file not found"):
        load(tmp_path / "absent.json")


def test_truncated_file_rejected(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    path.write_text(path.read_text()[:200])

    with pytest.raises(ProgramFileError, match="not valid JSON"):
        load(path)


def test_binary_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "program.json"
    path.write_bytes(b"\x80\x04\x95\xff\xfe")

    with pytest.raises(ProgramFileError, match="not UTF-8"):
        load(path)


def test_dspy_state_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dspy-state.json"
    build_method("pnb").save(str(path))

    with pytest.raises(ProgramFileError, match="not a pnb-dspy program file"):
        load(path)


def test_json_list_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]")

    with pytest.raises(ProgramFileError, match="not a pnb-dspy program file"):
        load(path)


def test_newer_schema_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document.update(schema_version=SCHEMA_VERSION + 1))

    with pytest.raises(ProgramFileError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade pnb-dspy"):
        load(path)


def test_unknown_top_key_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document.update(hooks=["x"]))

    with pytest.raises(ProgramFileError, match="unknown keys in the file: 'hooks'"):
        load(path)


def test_missing_state_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document.pop("state"))

    with pytest.raises(ProgramFileError, match="missing the keys state"):
        load(path)


def test_unknown_method_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document.update(method="os.system"))

    with pytest.raises(ProgramFileError, match="unknown method 'os.system'"):
        load(path)


def test_unknown_config_key_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["config"].update(shell="rm -rf /"))

    with pytest.raises(ProgramFileError, match="invalid config: unknown configuration keys: shell"):
        load(path)


def test_invalid_config_value_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["config"].update(max_steps=0))

    with pytest.raises(ProgramFileError, match="invalid config: max_steps"):
        load(path)


def test_modules_mismatch_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document.update(method="vanilla"))

    with pytest.raises(ProgramFileError, match="do not match the 'vanilla' program's predictors"):
        load(path)


def test_field_count_mismatch_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["state"]["planner.predict"]["signature"]["fields"].pop())

    with pytest.raises(ProgramFileError, match="must list 4 fields, but got 3"):
        load(path)


def test_unknown_metadata_key_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["metadata"].update(api_key="sk-secret"))

    with pytest.raises(ProgramFileError, match="unknown keys in metadata: 'api_key'"):
        load(path)


def test_save_rejects_api_key(tmp_path: Path) -> None:
    with pytest.raises(ProgramFileError, match="api_key"):
        save(tmp_path / "p.json", build_method("vanilla"), method="vanilla", config=PnBConfig(), metadata={"api_key": "sk"})


def test_save_rejects_lm_state(tmp_path: Path) -> None:
    program = build_method("vanilla")
    program.solve.lm = dspy.LM("openai/gpt-4o-mini", api_key="sk-secret")

    with pytest.raises(ProgramFileError, match="lm must be null"):
        save(tmp_path / "p.json", program, method="vanilla", config=PnBConfig())


def test_nan_score_rejected(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    path.write_text(path.read_text().replace('"study_name": "unit"', '"study_name": "unit", "dev": {"e3": NaN}'))

    with pytest.raises(ProgramFileError, match="NaN is not a JSON number"):
        load(path)


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    path.write_text(path.read_text().replace('"method": "pnb"', '"method": "pnb", "method": "vanilla"'))

    with pytest.raises(ProgramFileError, match="'method' appears twice"):
        load(path)


class _RunsShellCommand:
    """Unpickling this object runs a shell command, the classic pickle attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pickle-ran"
    path = tmp_path / "program.json"
    path.write_bytes(pickle.dumps(_RunsShellCommand(marker)))

    with pytest.raises(ProgramFileError):
        load(path)
    assert not marker.exists()


def test_lm_class_payload_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "lm-class-ran"
    lm_state = {"_dspy_lm_class": "os.system", "model": f"touch {marker}", "api_base": "http://127.0.0.1:9"}
    path = _edited(_saved(tmp_path), lambda document: document["state"]["planner.predict"].update(lm=lm_state))

    with pytest.raises(ProgramFileError, match="lm must be null"):
        load(path)
    assert not marker.exists()


def test_class_key_in_state_rejected(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["state"]["solver.solve"].update(__class__="os.system"))

    with pytest.raises(ProgramFileError, match="unknown keys in state\\['solver.solve'\\]: '__class__'"):
        load(path)


def test_reserved_demo_key_rejected(tmp_path: Path) -> None:
    demo = {"question": "q", "__class__": "os.system"}
    path = _edited(_saved(tmp_path), lambda document: document["state"]["solver.solve"].update(demos=[demo]))

    with pytest.raises(ProgramFileError, match="reserved keys '__class__'"):
        load(path)


def test_traces_must_be_empty(tmp_path: Path) -> None:
    path = _edited(_saved(tmp_path), lambda document: document["state"]["solver.solve"].update(traces=[{"x": 1}]))

    with pytest.raises(ProgramFileError, match="traces must be an empty list"):
        load(path)
