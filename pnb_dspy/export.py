"""Compiled programs as versioned JSON files: `save` writes one, `load` returns a ready module.

A program file is one JSON object:

- `format`: always `pnb-dspy-program`.
- `schema_version`: the layout version, 1 for this release.
- `method`: `pnb`, `vanilla` or `global-budget`.
- `config`: `PnBConfig.to_dict()`; `global-budget` reads its level map and budget unit from it
  and `vanilla` ignores it.
- `state`: DSPy's JSON state of the module (`module.dump_state()`), one entry per predictor.
- `metadata`: versions, model names, data fingerprint, study and trial, and scores.

Loading is `json` parsing plus validation of the whole file before any module is built. It
never unpickles, imports or calls anything named in the file. Predictor LM state is rejected,
because DSPy would build an LM (and may import its class) from it. API keys are never written:
metadata takes only the keys listed in `METADATA_KEYS`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import dspy

from pnb_dspy.config import PnBConfig
from pnb_dspy.evaluation import build_method

FORMAT_NAME = "pnb-dspy-program"
SCHEMA_VERSION = 1
PROGRAM_METHODS = ("pnb", "vanilla", "global-budget")
MAX_FILE_BYTES = 16 * 1024 * 1024

TOP_LEVEL_KEYS = ("format", "schema_version", "method", "config", "state", "metadata")
METADATA_KEYS = (
    "pnb_dspy_version",
    "dspy_version",
    "model",
    "planner_model",
    "data_fingerprint",
    "study_name",
    "trial_number",
    "baseline",
    "dev",
    "heldout",
)
SCORE_KEYS = ("questions", "errors", "accuracy", "avg_tokens", "avg_solver_tokens", "e3", "e3_solver")
PREDICTOR_STATE_KEYS = ("traces", "train", "demos", "signature", "lm")


class ProgramFileError(ValueError):
    """A program file that is missing, not valid JSON, not a pnb-dspy program, or invalid."""


@dataclass(frozen=True)
class ProgramFile:
    """The validated contents of a program file; nothing is built yet."""

    path: Path
    method: str
    config: PnBConfig
    state: dict[str, Any]
    metadata: dict[str, Any]


def save(
    path: str | os.PathLike[str],
    program: dspy.Module,
    *,
    method: str,
    config: PnBConfig,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `program` and its configuration to a JSON program file, replacing the file atomically.

    Args:
        path: where to write; parent folders are created.
        program: the module built by `build_method(method, config)`.
        method: `pnb`, `vanilla` or `global-budget`.
        config: the configuration the module was built from.
        metadata: values for any of `METADATA_KEYS`; the package versions are filled in.

    Raises:
        ProgramFileError: when the document would not load back (for example an unknown
            metadata key or predictor LM state).
    """
    document = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "config": config.to_dict(),
        "state": program.dump_state(json_mode=True),
        "metadata": {"pnb_dspy_version": _package_version(), "dspy_version": dspy.__version__, **(metadata or {})},
    }
    target = Path(path)
    _validate_document(document, str(target))
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_program(path: str | os.PathLike[str]) -> ProgramFile:
    """Read and validate a program file without building the module.

    Raises:
        ProgramFileError: for a missing, unreadable, corrupt, foreign, newer-format or
            otherwise invalid file; the message names the file and the problem.
    """
    source = Path(path)
    label = str(source)
    if not source.is_file():
        raise ProgramFileError(f"program file not found: {label!r}; pass a file written by `pnb compile`")
    if source.stat().st_size > MAX_FILE_BYTES:
        raise ProgramFileError(f"{label!r} is larger than {MAX_FILE_BYTES} bytes; it is not a program file of pnb-dspy")
    try:
        text = source.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProgramFileError(f"{label!r} is not UTF-8 JSON text (invalid byte at offset {error.start}); it is not a program file") from error
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ProgramFileError(
            f"{label!r} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "the file is corrupt or cut off, so compile the program again"
        ) from error
    except ValueError as error:
        raise ProgramFileError(f"{label!r} is not valid JSON for a program file: {error}") from error
    _validate_document(document, label)
    return ProgramFile(
        path=source,
        method=document["method"],
        config=PnBConfig.from_dict(document["config"]),
        state=document["state"],
        metadata=document["metadata"],
    )


def build_program(program_file: ProgramFile, planner_lm: dspy.BaseLM | None = None) -> dspy.Module:
    """Build the module of a validated program file and load its DSPy state.

    Args:
        program_file: the output of `read_program`.
        planner_lm: an LM for the planner only; the program file names the model it was
            compiled with in `metadata["planner_model"]`, but never builds an LM itself.
    """
    module = build_method(program_file.method, program_file.config, planner_lm)
    module.load_state(program_file.state)
    return module


def load(path: str | os.PathLike[str], planner_lm: dspy.BaseLM | None = None) -> dspy.Module:
    """Return the ready module stored in a program file written by `save` or `pnb compile`.

    Example:
        >>> program = load("programs/gsm8k.json")  # doctest: +SKIP
        >>> program(question="What is 2 + 3?").answer  # doctest: +SKIP

    Raises:
        ProgramFileError: for a missing, corrupt, foreign, newer-format or invalid file.
    """
    return build_program(read_program(path), planner_lm)


def _package_version() -> str:
    try:
        return package_metadata.version("pnb-dspy")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _validate_document(document: object, label: str) -> None:
    """Check the whole document and raise ProgramFileError at the first problem."""
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ProgramFileError(
            f"{label!r} is JSON but not a pnb-dspy program file (no \"format\": \"{FORMAT_NAME}\"); "
            "pass a file written by `pnb compile`"
        )
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProgramFileError(f"{label!r} has an invalid schema_version {version!r}; expected a positive integer")
    if version > SCHEMA_VERSION:
        raise ProgramFileError(
            f"{label!r} uses schema version {version}, but this pnb-dspy reads versions up to {SCHEMA_VERSION}; "
            "upgrade pnb-dspy to load it"
        )
    _check_keys(label, "the file", document, required=TOP_LEVEL_KEYS, allowed=TOP_LEVEL_KEYS)

    method = document["method"]
    if method not in PROGRAM_METHODS:
        raise ProgramFileError(f"{label!r} has an unknown method {method!r}; expected one of {', '.join(PROGRAM_METHODS)}")
    if not isinstance(document["config"], dict):
        raise ProgramFileError(f"{label!r}: config must be an object, but got {type(document['config']).__name__}")
    try:
        config = PnBConfig.from_dict(document["config"])
    except (TypeError, ValueError) as error:
        raise ProgramFileError(f"{label!r} has an invalid config: {error}") from error

    _validate_metadata(label, document["metadata"])
    _validate_state(label, document["state"], method, config)


def _check_keys(label: str, where: str, value: object, required: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        raise ProgramFileError(f"{label!r}: {where} must be an object, but got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ProgramFileError(f"{label!r}: unknown keys in {where}: {', '.join(map(repr, unknown))}; allowed keys are {', '.join(allowed)}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ProgramFileError(f"{label!r}: {where} is missing the keys {', '.join(missing)}")


def _validate_metadata(label: str, metadata: object) -> None:
    _check_keys(label, "metadata", metadata, required=(), allowed=METADATA_KEYS)
    for key, value in metadata.items():
        if key in ("dev", "heldout"):
            if value is None:
                continue
            _check_keys(label, f"metadata.{key}", value, required=(), allowed=SCORE_KEYS)
            for name, score in value.items():
                if not _is_number(score):
                    raise ProgramFileError(f"{label!r}: metadata.{key}.{name} must be a number, but got {score!r}")
        elif key == "trial_number":
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
                raise ProgramFileError(f"{label!r}: metadata.trial_number must be an integer or null, but got {value!r}")
        elif value is not None and not isinstance(value, str):
            raise ProgramFileError(f"{label!r}: metadata.{key} must be text or null, but got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_state(label: str, state: object, method: str, config: PnBConfig) -> None:
    if not isinstance(state, dict):
        raise ProgramFileError(f"{label!r}: state must be an object, but got {type(state).__name__}")
    # Building the module runs no LM call and reads nothing from the file but validated values.
    predictors = dict(build_method(method, config).named_predictors())
    if set(state) != set(predictors):
        raise ProgramFileError(
            f"{label!r}: the state's modules ({', '.join(sorted(state)) or 'none'}) do not match the {method!r} "
            f"program's predictors ({', '.join(sorted(predictors))}); the file was written for another program"
        )
    for name, predictor in predictors.items():
        _validate_predictor_state(label, name, state[name], len(predictor.signature.fields))


def _validate_predictor_state(label: str, name: str, state: object, n_fields: int) -> None:
    where = f"state[{name!r}]"
    _check_keys(label, where, state, required=PREDICTOR_STATE_KEYS, allowed=PREDICTOR_STATE_KEYS)
    if state["lm"] is not None:
        raise ProgramFileError(
            f"{label!r}: {where}.lm must be null; program files never carry LM settings, so pass the LM when loading"
        )
    for key in ("traces", "train"):
        if state[key] != []:
            raise ProgramFileError(f"{label!r}: {where}.{key} must be an empty list, but got {state[key]!r:.80}")
    demos = state["demos"]
    if not isinstance(demos, list):
        raise ProgramFileError(f"{label!r}: {where}.demos must be a list, but got {type(demos).__name__}")
    for index, demo in enumerate(demos):
        if not isinstance(demo, dict) or not all(isinstance(value, (str, int, float, bool, type(None))) for value in demo.values()):
            raise ProgramFileError(f"{label!r}: {where}.demos[{index}] must be an object of text, numbers or null")
        reserved = [key for key in demo if key.startswith("_")]
        if reserved:
            raise ProgramFileError(f"{label!r}: {where}.demos[{index}] has reserved keys {', '.join(map(repr, reserved))}")

    signature = state["signature"]
    _check_keys(label, f"{where}.signature", signature, required=("instructions", "fields"), allowed=("instructions", "fields"))
    if not isinstance(signature["instructions"], str) or not signature["instructions"].strip():
        raise ProgramFileError(f"{label!r}: {where}.signature.instructions must be non-empty text")
    fields = signature["fields"]
    if not isinstance(fields, list) or len(fields) != n_fields:
        count = len(fields) if isinstance(fields, list) else type(fields).__name__
        raise ProgramFileError(f"{label!r}: {where}.signature.fields must list {n_fields} fields, but got {count}")
    for index, field in enumerate(fields):
        _check_keys(label, f"{where}.signature.fields[{index}]", field, required=("prefix", "description"), allowed=("prefix", "description"))
        if not all(isinstance(field[key], str) for key in ("prefix", "description")):
            raise ProgramFileError(f"{label!r}: {where}.signature.fields[{index}] prefix and description must be text")
