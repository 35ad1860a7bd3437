"""Benchmark Plan-and-Budget against vanilla reasoning and a global budget, in one process.

For one model and one data set, every method answers the same questions:

- `vanilla`: plain step-by-step reasoning.
- `global-budget`: one budget for the whole question, stated in the prompt.
- `pnb`: Plan-and-Budget, single pass, with the defaults of Lin et al. (arXiv 2505.16122): polynomial decay, power 2,
  level budgets 200/250/350/450/600 tokens.
- `pnb-stepwise`: Plan-and-Budget with one capped call per sub-question and an aggregator.
- `program`: a compiled program, when `--program` is given.
- `pnb-<scheduler>`: one single-pass run per scheduler, with `--schedulers`.

Results are appended to `benchmarks/results/<data>-<model>.jsonl` as each question finishes,
so an interrupted run resumes where it stopped. At the end the script writes
`<data>-<model>.md`, `.json` and `.png` (accuracy against average tokens, E³ at each point,
the Pareto front drawn) and prints the Markdown page.

It also measures the framework's runtime cost: the share of wall time spent outside LM calls
(timed with a DSPy callback around each LM call), and the embedded backend's generation speed
against raw llama-cpp-python on the same prompts.

Usage:
    python benchmarks/run_benchmark.py --data ../shared/data/gsm8k/test.jsonl --limit 40 \\
        --model "$(../shared/tools/bench-model)"
    python benchmarks/run_benchmark.py --data ../shared/data/math500/test.jsonl --preset math500 \\
        --per-level 6 --seed 0 --model "$(../shared/tools/bench-model)"
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import random
import re
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import dspy
from dspy import lm15
from dspy.utils.callback import BaseCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import by_level, check_targets, read_records, render_page, save_plot  # noqa: E402

from pnb_dspy.config import PnBConfig  # noqa: E402
from pnb_dspy.data import DataError, Question, fingerprint, load_questions  # noqa: E402
from pnb_dspy.evaluation import build_method, evaluate  # noqa: E402
from pnb_dspy.export import ProgramFileError, read_program  # noqa: E402
from pnb_dspy.lm import ModelFileError, make_lm  # noqa: E402
from pnb_dspy.schedulers import SCHEDULERS  # noqa: E402

logger = logging.getLogger("benchmarks")

BASE_METHODS = ("vanilla", "global-budget", "pnb", "pnb-stepwise")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchmarkError(ValueError):
    """Options that select nothing to run, or name a method that is not configured."""


class LMTimer(BaseCallback):
    """Adds up the wall time spent inside LM calls, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self.seconds = 0.0
        self.calls = 0

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self._started[call_id] = time.perf_counter()

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        with self._lock:
            started = self._started.pop(call_id, None)
            if started is not None:
                self.seconds += time.perf_counter() - started
                self.calls += 1


def select_questions(args: argparse.Namespace) -> list[Question]:
    """Return the first `--limit` questions, or `--per-level` questions per level chosen by `--seed`."""
    questions = load_questions(args.data, preset=args.preset)
    if args.per_level:
        if not any(question.level is not None for question in questions):
            raise BenchmarkError(
                f"--per-level {args.per_level}: {args.data!r} has no level field; use --limit, or a data set "
                "with levels such as MATH-500 (--preset math500)"
            )
        rng = random.Random(args.seed)
        chosen: list[Question] = []
        for level in range(1, 6):
            at_level = [question for question in questions if question.level == level]
            chosen.extend(rng.sample(at_level, min(args.per_level, len(at_level))))
    else:
        chosen = questions[: args.limit] if args.limit else questions
    if not chosen:
        raise BenchmarkError(f"no questions selected from {args.data!r}; check the file, --limit and --per-level")
    return chosen


def build_programs(args: argparse.Namespace) -> dict[str, dspy.Module]:
    """Build the programs to run, by method name.

    Raises:
        BenchmarkError: when `--methods` names a method that this invocation does not configure.
    """
    # As in `pnb eval`: the planner's own cap, unless --max-tokens is lower.
    planner_max_tokens = min(PnBConfig().planner_max_tokens, args.max_tokens)
    config = PnBConfig(planner_max_tokens=planner_max_tokens)
    programs = {name: build_method(name, config) for name in BASE_METHODS}
    if args.program:
        from pnb_dspy import load

        programs["program"] = load(args.program)
    for scheduler in args.schedulers or []:
        programs[f"pnb-{scheduler}"] = build_method("pnb", PnBConfig(scheduler=scheduler, planner_max_tokens=planner_max_tokens))
    if args.methods:
        unknown = [name for name in args.methods if name not in programs]
        if unknown:
            raise BenchmarkError(
                f"--methods: unknown method {', '.join(map(repr, unknown))}; this invocation configures "
                f"{', '.join(programs)} (add --program for `program`, --schedulers for `pnb-<scheduler>`)"
            )
        programs = {name: program for name, program in programs.items() if name in args.methods}
    return programs


def measure_speed(model_path: str, prompts: list[list[dict[str, str]]], max_tokens: int) -> dict[str, float]:
    """Return tokens per second of raw llama-cpp-python and of the pnb_dspy backend on the same prompts."""
    from llama_cpp import Llama

    from pnb_dspy.lm import _load_llama, check_gguf_file

    lm = make_lm(model_path, max_tokens=max_tokens, cache=False)
    raw = Llama(model_path=model_path, n_ctx=lm._engine_spec.n_ctx, n_threads=lm._engine_spec.n_threads, verbose=False)

    raw_tokens, raw_seconds = 0, 0.0
    for messages in prompts:
        started = time.perf_counter()
        reply = raw.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
        raw_seconds += time.perf_counter() - started
        raw_tokens += reply["usage"]["completion_tokens"]
    del raw

    _load_llama(check_gguf_file(model_path), lm._engine_spec.n_ctx, lm._engine_spec.n_threads)
    ours_tokens, ours_seconds = 0, 0.0
    for messages in prompts:
        request = lm15.Request(
            model=lm.model,
            system=messages[0]["content"],
            messages=tuple(lm15.Message.user(message["content"]) for message in messages[1:]),
            config=lm15.Config(max_tokens=max_tokens, temperature=0.0),
        )
        started = time.perf_counter()
        response = lm(request)
        ours_seconds += time.perf_counter() - started
        ours_tokens += response.usage.output_tokens or 0

    raw_speed = raw_tokens / raw_seconds if raw_seconds else 0.0
    ours_speed = ours_tokens / ours_seconds if ours_seconds else 0.0
    return {
        "raw_tokens_per_second": raw_speed,
        "pnb_tokens_per_second": ours_speed,
        "ratio": ours_speed / raw_speed if raw_speed else 0.0,
        "prompts": len(prompts),
        "max_tokens": max_tokens,
    }


def speed_prompts(questions: list[Question], count: int) -> list[list[dict[str, str]]]:
    """Return plain chat prompts for the first `count` questions."""
    return [
        [
            {"role": "system", "content": "Solve the math problem. Think step by step, then state the final answer."},
            {"role": "user", "content": question.question},
        ]
        for question in questions[:count]
    ]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("pnb-dspy", "dspy", "optuna", "litellm", "llama-cpp-python", "math-verify", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def positive_count(text: str) -> int:
    """Parse a count option that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, but got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data file (see pnb eval --help)")
    parser.add_argument("--preset", help="gsm8k or math500; detected from the columns when omitted")
    parser.add_argument("--limit", type=positive_count, help="use the first N questions (default: all)")
    parser.add_argument("--per-level", type=positive_count, help="sample N questions per level 1 to 5 (needs a level field)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --per-level sampling (default: 0)")
    parser.add_argument("--model", required=True, help="a .gguf path or a LiteLLM model string")
    parser.add_argument("--program", help="a compiled program JSON to add as method `program`")
    parser.add_argument("--schedulers", nargs="*", choices=sorted(SCHEDULERS), help="add one single-pass run per scheduler")
    parser.add_argument("--methods", nargs="*", help="run only these methods (default: all configured)")
    parser.add_argument("--name", help="result file name stem (default: DATA-MODEL)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="cap on generated tokens per LM call (default: 1024)")
    parser.add_argument("--num-threads", type=int, default=1, help="questions in parallel (default: 1)")
    parser.add_argument("--speed-prompts", type=int, default=3, help="prompts for the speed comparison (default: 3); 0 skips it")
    parser.add_argument("--speed-max-tokens", type=int, default=128, help="tokens to generate per speed prompt (default: 128)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args, argv)
    except (BenchmarkError, DataError, ModelFileError, ProgramFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Run the benchmark that `args` describes and write its results; see the module docstring."""
    questions = select_questions(args)
    model_name = Path(args.model).stem if args.model.endswith(".gguf") else args.model
    data_name = Path(args.data).parent.name if Path(args.data).stem in ("test", "train") else Path(args.data).stem
    name = args.name or slug(f"{data_name}-{model_name}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    timer = LMTimer()
    lm = make_lm(args.model, max_tokens=args.max_tokens, cache=False)
    programs = build_programs(args)
    dspy.configure(callbacks=[timer])

    from tqdm import tqdm

    started = time.perf_counter()
    with tqdm(total=len(programs) * len(questions), desc=name, unit="q", file=sys.stderr) as bar:
        summaries = evaluate(
            programs,
            questions,
            lm=lm,
            results_path=RESULTS_DIR / f"{name}.jsonl",
            num_threads=args.num_threads,
            on_result=lambda record: bar.update(1),
        )
    wall_seconds = time.perf_counter() - started
    dspy.configure(callbacks=[])

    overhead = {
        "wall_seconds": wall_seconds,
        "lm_seconds": timer.seconds,
        "lm_calls": timer.calls,
        "share_outside_lm": (wall_seconds - timer.seconds) / wall_seconds if timer.calls and wall_seconds else None,
    }
    speed = None
    if args.speed_prompts and args.model.endswith(".gguf"):
        speed = measure_speed(args.model, speed_prompts(questions, args.speed_prompts), args.speed_max_tokens)

    report = {
        "name": name,
        "model": model_name,
        "data": args.data,
        "data_fingerprint": fingerprint(questions),
        "questions": len(questions),
        "question_ids": [question.id for question in questions],
        "selection": {"limit": args.limit, "per_level": args.per_level, "seed": args.seed},
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "versions": package_versions(),
        "summaries": {method: summary.as_dict() for method, summary in summaries.items()},
        "overhead": overhead,
        "speed": speed,
        "program": {"path": args.program, "method": read_program(args.program).method} if args.program else None,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    report["by_level"] = by_level(read_records(RESULTS_DIR / f"{name}.jsonl", report["question_ids"], list(summaries)))
    report["targets"] = check_targets(report)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    save_plot(report, RESULTS_DIR / f"{name}.png")
    page = render_page(report)
    (RESULTS_DIR / f"{name}.md").write_text(page, encoding="utf-8")
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())

