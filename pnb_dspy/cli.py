"""The `pnb` command: answer a question, evaluate methods on a data set, compile a program."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import dspy

from pnb_dspy.budget import BudgetPriors
from pnb_dspy.config import BUDGET_UNITS, PLAN_STYLES, SOLVE_MODES, PnBConfig
from pnb_dspy.data import PRESETS, DataError, load_questions
from pnb_dspy.evaluation import ALL_METHODS, METHODS, build_method, evaluate
from pnb_dspy.lm import DEFAULT_CONTEXT_TOKENS, DEFAULT_MAX_TOKENS, ModelFileError, describe_lm, make_lm
from pnb_dspy.metrics import MethodSummary
from pnb_dspy.schedulers import SCHEDULERS

logger = logging.getLogger("pnb_dspy.cli")

API_KEY_ENV = "PNB_API_KEY"


class UsageError(Exception):
    """Bad command-line input; the message names the option and the fix."""


def _add_lm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="LiteLLM model string (openai/gpt-4o-mini, ollama_chat/qwen2.5, hosted_vllm/NAME) or a path to a "
        ".gguf file run in process by llama.cpp; default: the embedded Gemma 3 270M (a base model that shows "
        "the pipeline, not good answers)",
    )
    group.add_argument("--planner-model", help="a different model for the planner only; same forms as --model")
    group.add_argument("--api-base", help="server URL for served models, for example http://127.0.0.1:8000/v1")
    group.add_argument(
        "--api-key",
        help=f"API key for hosted models; prefer the environment variable {API_KEY_ENV} or the provider's own "
        "variable (OPENAI_API_KEY, ...). Never written to results or programs",
    )
    group.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)")
    group.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="cap on generated tokens per LM call (default: %(default)s)"
    )
    group.add_argument(
        "--n-ctx", type=int, default=DEFAULT_CONTEXT_TOKENS, help="llama.cpp context window in tokens (default: %(default)s)"
    )
    group.add_argument("--timeout", type=float, help="seconds to wait for a served model's reply")
    group.add_argument(
        "--num-retries", type=int, default=3, help="retries with backoff after timeouts, rate limits and server errors (default: %(default)s)"
    )
    group.add_argument("--no-cache", action="store_true", help="do not use DSPy's reply cache")


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Plan-and-Budget settings")
    group.add_argument("--scheduler", default="polynomial", help=f"budget schedule: {', '.join(SCHEDULERS)} (default: %(default)s)")
    group.add_argument("--power", type=float, help="polynomial decay power (default: 2)")
    group.add_argument("--rate", type=float, help="exponential decay rate in (0, 1] (default: 0.9)")
    group.add_argument("--floor", type=float, help="cosine decay floor (default: 0.1)")
    group.add_argument("--mode", default="single_pass", help=f"solve mode: {', '.join(SOLVE_MODES)} (default: %(default)s)")
    group.add_argument("--max-steps", type=int, default=4, help="most sub-questions in a plan (default: %(default)s)")
    group.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiplies the level budgets 200/250/350/450/600 tokens (default: %(default)s)"
    )
    group.add_argument("--budget-unit", default="tokens", help=f"unit stated to the model: {', '.join(BUDGET_UNITS)} (default: %(default)s)")
    group.add_argument("--plan-style", default="required", help=f"{', '.join(PLAN_STYLES)} (default: %(default)s)")
    group.add_argument("--min-tokens-per-step", type=int, default=16, help="smallest step budget in tokens (default: %(default)s)")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=True, help="a .jsonl, .json, .csv or .parquet file, or a hub data set name")
    group.add_argument("--preset", choices=sorted(PRESETS), help="field layout; detected from the columns when omitted")
    group.add_argument("--question-field", help="column holding the question")
    group.add_argument("--answer-field", help="column holding the gold answer")
    group.add_argument("--level-field", help="column holding the difficulty level 1 to 5 (optional)")
    group.add_argument("--id-field", help="column holding a unique id (default: the row number)")
    group.add_argument("--answer-kind", choices=("number", "latex", "auto"), help="how answers are compared")
    group.add_argument("--split", default="test", help="split of a hub data set (default: %(default)s)")
    group.add_argument("--limit", type=int, help="use the first N questions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pnb",
        description="Plan-and-Budget reasoning with DSPy: plan sub-questions, budget tokens, solve, and score with E3.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="answer one question and show the plan, budgets and tokens by stage")
    run.add_argument("question", help="the question to answer")
    run.add_argument("--level", type=int, help="the question's difficulty level 1 to 5 (default: the planner's estimate)")
    _add_lm_options(run)
    _add_method_options(run)

    evaluation = commands.add_parser(
        "eval", help="evaluate methods on a data set: accuracy, tokens and E3, one JSON line per question and method"
    )
    _add_data_options(evaluation)
    evaluation.add_argument(
        "--method", default="all", help=f"{', '.join(METHODS)}, or all ({', '.join(ALL_METHODS)}) (default: %(default)s)"
    )
    evaluation.add_argument("--num-threads", type=int, default=1, help="questions run in parallel; useful for served models (default: 1)")
    evaluation.add_argument(
        "--out", help="results file (JSON Lines); an existing file is resumed (default: pnb-results/DATA-MODEL.jsonl)"
    )
    evaluation.add_argument("--no-retry-errors", action="store_true", help="on resume, keep recorded errors instead of retrying them")
    _add_lm_options(evaluation)
    _add_method_options(evaluation)
    return parser


def _config_from_args(args: argparse.Namespace) -> PnBConfig:
    scheduler_params = {name: getattr(args, name) for name in ("power", "rate", "floor") if getattr(args, name) is not None}
    try:
        return PnBConfig(
            scheduler=args.scheduler,
            scheduler_params=scheduler_params,
            priors=BudgetPriors(),
            budget_scale=args.budget_scale,
            mode=args.mode,
            max_steps=args.max_steps,
            budget_unit=args.budget_unit,
            plan_style=args.plan_style,
            min_tokens_per_step=args.min_tokens_per_step,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def _lm_from_args(args: argparse.Namespace, model: str | None) -> dspy.LM:
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    try:
        return make_lm(
            model,
            api_base=args.api_base,
            api_key=api_key,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            n_ctx=args.n_ctx,
            cache=not args.no_cache,
            num_retries=args.num_retries,
            timeout=args.timeout,
        )
    except (ModelFileError, ValueError) as error:
        raise UsageError(str(error)) from error


def command_run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise UsageError("the question is empty; pass the question text as the first argument")
    config = _config_from_args(args)
    lm = _lm_from_args(args, args.model)
    planner_lm = _lm_from_args(args, args.planner_model) if args.planner_model else None
    program = build_method("pnb", config, planner_lm)
    with dspy.context(lm=lm):
        prediction = program(question=args.question, level=args.level)

    plan = prediction.plan
    print(f"model: {describe_lm(lm)}" + (f"   planner: {describe_lm(planner_lm)}" if planner_lm else ""))
    print(f"level: {prediction.level}   total budget: {prediction.total_budget} tokens   scheduler: {config.scheduler}   mode: {config.mode}")
    if plan.fallback_reason:
        print(f"plan fallback: {plan.fallback_reason}")
    print("plan:")
    for index, (step, budget) in enumerate(zip(plan.steps, prediction.budgets), start=1):
        print(f"  {index}. [difficulty {step.difficulty}, {budget} tokens] {step.sub_question}")
    print(f"answer: {prediction.answer}")
    tokens = prediction.tokens
    stages = ", ".join(f"{name} {stage['tokens']}" for name, stage in tokens["by_stage"].items())
    print(f"generated tokens: {tokens['total']} ({stages}; counts {tokens['source']})")
    return 0


def _methods_from_arg(value: str) -> list[str]:
    names = list(ALL_METHODS) if value == "all" else [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise UsageError(f"unknown --method {value!r}; choose from {', '.join(METHODS)}, or all")
    return names


def _default_results_path(data: str, model: str | None) -> Path:
    data_name = Path(data).stem if Path(data).suffix else data
    model_name = Path(model).stem if model and model.lower().endswith(".gguf") else (model or "embedded-gemma-3-270m")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data_name}-{model_name}").strip("-")
    return Path("pnb-results") / f"{slug}.jsonl"


def command_eval(args: argparse.Namespace) -> int:
    methods = _methods_from_arg(args.method)
    if args.num_threads < 1:
        raise UsageError(f"--num-threads must be at least 1, but got {args.num_threads}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, but got {args.limit}")
    config = _config_from_args(args)
    try:
        questions = load_questions(
            args.data,
            preset=args.preset,
            question_field=args.question_field,
            answer_field=args.answer_field,
            level_field=args.level_field,
            id_field=args.id_field,
            answer_kind=args.answer_kind,
            split=args.split,
            limit=args.limit,
        )
    except DataError as error:
        raise UsageError(str(error)) from error
    lm = _lm_from_args(args, args.model)
    planner_lm = _lm_from_args(args, args.planner_model) if args.planner_model else None
    programs = {name: build_method(name, config, planner_lm) for name in methods}
    out = Path(args.out) if args.out else _default_results_path(args.data, args.model)

    from tqdm import tqdm

    with tqdm(total=len(methods) * len(questions), desc="questions", unit="q", file=sys.stderr) as bar:
        summaries = evaluate(
            programs,
            questions,
            lm=lm,
            results_path=out,
            num_threads=args.num_threads,
            retry_errors=not args.no_retry_errors,
            on_result=lambda record: bar.update(1),
        )
        bar.n = sum(summary.questions for summary in summaries.values())
        bar.refresh()

    print(f"model: {describe_lm(lm)}   data: {args.data}   questions: {len(questions)}")
    print(format_summary_table(list(summaries.values())))
    print(f"per-question results: {out}")
    return 0


def format_summary_table(summaries: Sequence[MethodSummary]) -> str:
    """Return a Markdown table of accuracy, tokens by stage, both E³ figures and errors."""
    header = (
        "| method | accuracy | avg tokens (all) | planner | solver | aggregator | E3 (all tokens) | E3 (solver only) "
        "| errors | plan fallbacks | scored |"
    )
    lines = [header, "|" + "---|" * 11]
    for summary in summaries:
        lines.append(
            f"| {summary.method} | {summary.accuracy:.1f}% | {summary.avg_tokens:.1f} | {summary.avg_planner_tokens:.1f} "
            f"| {summary.avg_solver_tokens:.1f} | {summary.avg_aggregator_tokens:.1f} | {summary.e3:.2f} | {summary.e3_solver:.2f} "
            f"| {summary.errors} | {summary.plan_fallbacks} | {summary.scored}/{summary.questions} |"
        )
    return "\n".join(lines)


COMMANDS = {"run": command_run, "eval": command_eval}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        parser.exit(2, f"pnb {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        print("interrupted; finished results are kept and a rerun resumes from them", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
