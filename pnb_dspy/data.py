"""Loading questions through `datasets`: local JSON Lines, JSON, CSV or Parquet files, or hub names.

Field names are set explicitly or by a preset. Presets:

- `gsm8k`: `question`, `answer` (worked solution ending in `#### answer`), numeric checking.
- `math500`: `problem`, `answer` (LaTeX), `level` (1 to 5), `unique_id`, LaTeX checking.

With no preset, the preset whose fields the file has is chosen; a file that matches neither
needs `question_field` and `answer_field`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pnb_dspy.answers import AnswerKind

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
OTHER_FILE_SUFFIXES = (".txt", ".tsv", ".xls", ".xlsx", ".gz", ".zip", ".arrow")


@dataclass(frozen=True)
class FieldMap:
    """Column names of the question, the gold answer, the level and the id."""

    question: str
    answer: str
    level: str | None = None
    id: str | None = None
    answer_kind: AnswerKind = "auto"


PRESETS: dict[str, FieldMap] = {
    "gsm8k": FieldMap(question="question", answer="answer", answer_kind="number"),
    "math500": FieldMap(question="problem", answer="answer", level="level", id="unique_id", answer_kind="latex"),
}


@dataclass(frozen=True)
class Question:
    """One question to answer, with its gold answer and, when the data has one, its level (1 to 5)."""

    id: str
    question: str
    gold: str
    level: int | None = None
    answer_kind: AnswerKind = "auto"


class DataError(ValueError):
    """A data file or its fields cannot be used; the message names the file, row or field."""


def load_questions(
    source: str,
    *,
    preset: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    level_field: str | None = None,
    id_field: str | None = None,
    answer_kind: AnswerKind | None = None,
    split: str = "test",
    limit: int | None = None,
) -> list[Question]:
    """Load questions from a local file or a hub data set through `datasets`.

    Args:
        source: a `.jsonl`, `.json`, `.csv` or `.parquet` path, or a hub name such as
            `openai/gsm8k` (hub names need network access).
        preset: `gsm8k` or `math500`; explicit field arguments override its fields.
        split: the split to read from a hub data set.
        limit: keep the first `limit` questions.

    Raises:
        DataError: for a missing or empty file, a malformed line, missing columns, null
            answers, duplicate ids or a level outside 1 to 5.
    """
    rows = _read_rows(source, split)
    if not rows:
        raise DataError(f"{source!r} contains no rows; give a file with at least one question")
    fields = _resolve_fields(source, list(rows[0].keys()), preset, question_field, answer_field, level_field, id_field, answer_kind)
    selected = rows if limit is None else rows[:limit]
    questions = [_to_question(source, index, row, fields) for index, row in enumerate(selected)]
    _check_unique_ids(source, questions)
    return questions


def _read_rows(source: str, split: str) -> list[dict[str, Any]]:
    import datasets

    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if suffix in FILE_BUILDERS:
        if not path.is_file():
            raise DataError(f"data file not found: {source!r}; check the path")
        _check_text_file(path, suffix)
        try:
            dataset = datasets.load_dataset(FILE_BUILDERS[suffix], data_files=str(path), split="train")
        except datasets.exceptions.DatasetGenerationError as error:
            raise DataError(f"cannot read {source!r}: {error.__cause__ or error}") from error
        except ValueError as error:
            raise DataError(f"cannot read {source!r}: {error}") from error
        return [dict(row) for row in dataset]
    if path.exists() or _looks_like_local_path(source):
        if not path.exists():
            raise DataError(f"data file not found: {source!r}; check the path")
        raise DataError(f"unsupported data file type {suffix or '(none)'!r} for {source!r}; use one of {', '.join(FILE_BUILDERS)}")
    dataset = datasets.load_dataset(source, split=split)
    return [dict(row) for row in dataset]


def _looks_like_local_path(source: str) -> bool:
    # Hub names have the form `owner/name`. A source that starts like a path or ends in a
    # common data-file suffix is a local file, and a missing one must not go to the hub.
    return source.startswith(("/", "./", "../", "~")) or Path(source).suffix.lower() in OTHER_FILE_SUFFIXES


def _check_text_file(path: Path, suffix: str) -> None:
    """Check encoding and, for JSON Lines, every line, so errors name the line."""
    if suffix == ".parquet":
        return
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{str(path)!r} is empty; give a file with at least one question")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_and_column(raw, error.start)
        raise DataError(
            f"{str(path)!r} is not UTF-8 text: invalid byte {raw[error.start]:#04x} at line {line}, column {column}; "
            "convert the file to UTF-8"
        ) from error
    if suffix == ".csv" and len([line for line in text.splitlines() if line.strip()]) < 2:
        raise DataError(f"{str(path)!r} has a header but no rows; give a file with at least one question")
    if suffix != ".jsonl":
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{str(path)!r} line {number}, column {error.colno} is not valid JSON: {error.msg}; fix or remove that line"
            ) from error
        if not isinstance(value, dict):
            raise DataError(f"{str(path)!r} line {number} is not a JSON object; each line must be one object")


def _line_and_column(raw: bytes, offset: int) -> tuple[int, int]:
    """Return the 1-based line and byte column of `offset` in `raw`."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _resolve_fields(
    source: str,
    columns: list[str],
    preset: str | None,
    question_field: str | None,
    answer_field: str | None,
    level_field: str | None,
    id_field: str | None,
    answer_kind: AnswerKind | None,
) -> FieldMap:
    if preset is not None and preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset else _detect_preset(columns)
    question = question_field or (base.question if base else None)
    answer = answer_field or (base.answer if base else None)
    if question is None or answer is None:
        raise DataError(
            f"cannot tell which columns of {source!r} hold the question and the answer; its columns are "
            f"{', '.join(columns)}; pass --question-field and --answer-field (or --preset)"
        )
    level = level_field or (base.level if base and base.level in columns else None)
    row_id = id_field or (base.id if base and base.id in columns else None)
    for flag, name in (("question", question), ("answer", answer), ("level", level), ("id", row_id)):
        if name is not None and name not in columns:
            raise DataError(
                f"{source!r} has no {flag} column {name!r}; its columns are {', '.join(columns)}; "
                f"pass --{flag}-field with one of them"
            )
    kind = answer_kind or (base.answer_kind if base else "auto")
    return FieldMap(question=question, answer=answer, level=level, id=row_id, answer_kind=kind)


def _detect_preset(columns: list[str]) -> FieldMap | None:
    for fields in PRESETS.values():
        if fields.question in columns and fields.answer in columns:
            return fields
    return None


def _to_question(source: str, index: int, row: dict[str, Any], fields: FieldMap) -> Question:
    row_label = f"row {index + 1} of {source!r}"
    question = row.get(fields.question)
    gold = row.get(fields.answer)
    if question is None or not str(question).strip():
        raise DataError(f"{row_label} has an empty {fields.question!r}; every row needs a question")
    if gold is None or (isinstance(gold, float) and math.isnan(gold)) or not str(gold).strip():
        raise DataError(f"{row_label} has a null or empty {fields.answer!r}; every row needs a gold answer")
    level = _row_level(row_label, row, fields.level)
    row_id = str(row[fields.id]) if fields.id and row.get(fields.id) is not None else f"row-{index}"
    return Question(id=row_id, question=str(question), gold=str(gold), level=level, answer_kind=fields.answer_kind)


def _row_level(row_label: str, row: dict[str, Any], level_field: str | None) -> int | None:
    if level_field is None or row.get(level_field) is None:
        return None
    value = row[level_field]
    if isinstance(value, float) and math.isnan(value):
        # A CSV column with an empty cell is read as floats, with NaN for the empty cell.
        return None
    level: int | None
    if isinstance(value, float) and value.is_integer():
        level = int(value)
    elif isinstance(value, bool):
        level = None
    else:
        try:
            level = int(str(value).strip().removeprefix("Level ").strip())
        except ValueError:
            level = None
    if level is None or not 1 <= level <= 5:
        raise DataError(f"{row_label} has {level_field}={value!r}; levels must be integers from 1 to 5")
    return level


def _check_unique_ids(source: str, questions: list[Question]) -> None:
    seen: dict[str, int] = {}
    for index, question in enumerate(questions):
        if question.id in seen:
            raise DataError(
                f"{source!r} has the id {question.id!r} on rows {seen[question.id] + 1} and {index + 1}; ids must be unique"
            )
        seen[question.id] = index


def fingerprint(questions: list[Question]) -> str:
    """Return a short SHA-256 over the questions and gold answers, to tell data sets apart."""
    digest = hashlib.sha256()
    for question in questions:
        digest.update(json.dumps([question.id, question.question, question.gold, question.level]).encode())
    return digest.hexdigest()[:16]
