"""Reliability of data loading and questions: bad files end in a DataError that names the place."""

from __future__ import annotations

import json
from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM

from pnb_dspy.data import DataError, Question, load_questions
from pnb_dspy.evaluation import build_method, evaluate, read_results


def write(path: Path, content: str | bytes) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*absent\.jsonl"):
        load_questions(str(tmp_path / "absent.jsonl"))


def test_missing_text_file_skips_hub(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*absent\.txt"):
        load_questions(str(tmp_path / "absent.txt"))


def test_non_utf8_names_line_and_column(tmp_path: Path) -> None:
    raw = '{"question": "a", "answer": "1"}\n{"question": "caf\xe9", "answer": "1"}\n'.encode("latin-1")
    source = write(tmp_path / "latin1.jsonl", raw)
    with pytest.raises(DataError, match=r"latin1\.jsonl.*not UTF-8.*0xe9 at line 2, column 18"):
        load_questions(source)


def test_malformed_json_names_line(tmp_path: Path) -> None:
    source = write(tmp_path / "broken.jsonl", '{"question": "a", "answer": "1"}\n{"question": "b", "answer": }\n')
    with pytest.raises(DataError, match=r"broken\.jsonl' line 2, column 29 is not valid JSON"):
        load_questions(source)


def test_non_object_line_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "list.jsonl", "[1, 2]\n")
    with pytest.raises(DataError, match=r"line 1 is not a JSON object"):
        load_questions(source)


def test_missing_question_column_lists_columns(tmp_path: Path) -> None:
    source = write(tmp_path / "columns.jsonl", '{"prompt": "a", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"no question column 'question'; its columns are prompt, answer"):
        load_questions(source, preset="gsm8k")


def test_missing_answer_column_lists_columns(tmp_path: Path) -> None:
    source = write(tmp_path / "columns.jsonl", '{"question": "a", "gold": "1"}\n')
    with pytest.raises(DataError, match=r"no answer column 'answer'; its columns are question, gold"):
        load_questions(source, preset="gsm8k")


def test_undetectable_columns_listed(tmp_path: Path) -> None:
    source = write(tmp_path / "columns.jsonl", '{"prompt": "a", "gold": "1"}\n')
    with pytest.raises(DataError, match=r"its columns are prompt, gold; pass --question-field and --answer-field"):
        load_questions(source)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\n"), ("empty.csv", "")],
)
def test_empty_file_rejected(tmp_path: Path, name: str, content: str) -> None:
    source = write(tmp_path / name, content)
    with pytest.raises(DataError, match=rf"{name}' is empty"):
        load_questions(source)


def test_header_only_csv_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "header.csv", "question,answer\n")
    with pytest.raises(DataError, match=r"header\.csv' has a header but no rows"):
        load_questions(source)


def test_duplicate_ids_name_rows(tmp_path: Path) -> None:
    lines = ['{"id": 7, "question": "a", "answer": "1"}', '{"id": 8, "question": "b", "answer": "2"}', '{"id": 7, "question": "c", "answer": "3"}']
    source = write(tmp_path / "dup.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"has the id '7' on rows 1 and 3; ids must be unique"):
        load_questions(source, id_field="id")


def test_null_answer_jsonl_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "null.jsonl", '{"question": "a", "answer": "1"}\n{"question": "b", "answer": null}\n')
    with pytest.raises(DataError, match=r"row 2 of .*null\.jsonl' has a null or empty 'answer'"):
        load_questions(source)


def test_nan_answer_jsonl_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "nan.jsonl", '{"question": "a", "answer": NaN}\n')
    with pytest.raises(DataError, match=r"row 1 of .*nan\.jsonl' has a null or empty 'answer'"):
        load_questions(source)


def test_empty_csv_answer_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "gaps.csv", "question,answer\nq1,1.5\nq2,\n")
    with pytest.raises(DataError, match=r"row 2 of .*gaps\.csv' has a null or empty 'answer'"):
        load_questions(source)


def test_blank_question_row_rejected(tmp_path: Path) -> None:
    source = write(tmp_path / "blank.jsonl", '{"question": "   ", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"row 1 of .* has an empty 'question'"):
        load_questions(source)


@pytest.mark.parametrize("level", ["0", "6", '"Level 7"', "2.5", "true", '"hard"'])
def test_level_outside_range_rejected(tmp_path: Path, level: str) -> None:
    source = write(tmp_path / "levels.jsonl", f'{{"problem": "a", "answer": "1", "level": {level}}}\n')
    with pytest.raises(DataError, match=r"row 1 of .* has level=.*; levels must be integers from 1 to 5"):
        load_questions(source, preset="math500")


def test_csv_level_gap_reads_as_none(tmp_path: Path) -> None:
    source = write(tmp_path / "levels.csv", "question,answer,level\nq1,1,3\nq2,2,\n")
    questions = load_questions(source, level_field="level")
    assert [question.level for question in questions] == [3, None]


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
@pytest.mark.parametrize("method", ["pnb", "pnb-stepwise", "vanilla", "global-budget"])
def test_blank_question_names_fix(question: str, method: str) -> None:
    program = build_method(method)
    with dspy.context(lm=DummyLM([{"answer": "1"}])):
        with pytest.raises(ValueError, match="question must be non-empty text.*pass the question to answer"):
            program(question=question)


MIXED_QUESTION = "小明有3个苹果，又买了4个。 كم تفاحة لديه الآن؟ 🍎🍏 How many apples?"


def test_mixed_scripts_round_trip(tmp_path: Path) -> None:
    source = write(tmp_path / "mixed.jsonl", json.dumps({"id": "苹果-1", "question": MIXED_QUESTION, "answer": "7"}, ensure_ascii=False) + "\n")
    questions = load_questions(source, id_field="id")
    results_path = tmp_path / "results.jsonl"
    lm = DummyLM([{"plan": "1. 苹果一共有多少个？ (difficulty: 1)", "level": "1"}, {"solution": "3 + 4 = 7 🍎", "answer": "7"}])

    summaries = evaluate({"pnb": build_method("pnb")}, questions, lm=lm, results_path=results_path)

    records = read_results(results_path)
    assert questions[0] == Question(id="苹果-1", question=MIXED_QUESTION, gold="7", answer_kind="number")
    assert summaries["pnb"].accuracy == 100.0
    assert records[0]["id"] == "苹果-1"
    assert records[0]["sub_questions"] == ["苹果一共有多少个？"]
    assert "苹果一共有多少个" in results_path.read_text(encoding="utf-8")
