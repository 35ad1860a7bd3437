"""The `pnb` command: answer a question, evaluate methods on a data set, compile a program."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dspy

from pnb_dspy.budget import BudgetPriors
from pnb_dspy.config import BUDGET_UNITS, PLAN_STYLES, SOLVE_MODES, PnBConfig
from pnb_dspy.data import PRESETS, DataError, Question, load_questions
from pnb_dspy.evaluation import ALL_METHODS, METHODS, build_method, evaluate, latest_records, read_results
from pnb_dspy.export import ProgramFile, ProgramFileError, build_program, read_program
from pnb_dspy.lm import DEFAULT_CONTEXT_TOKENS, DEFAULT_MAX_TOKENS, ModelFileError, describe_lm, make_lm
from pnb_dspy.metrics import MethodSummary
from pnb_dspy.optimizer import CompileResult, compile_program, count_trials
from pnb_dspy.schedulers import SCHEDULERS
from pnb_dspy.search_space import SearchSpace
from pnb_dspy.study import DEFAULT_STORAGE, OBJECTIVES, CompileSettings, StudyMismatchError, read_study_file

logger = logging.getLogger("pnb_dspy.cli")

API_KEY_ENV = "PNB_API_KEY"
PLANNER_MAX_TOKENS_DEFAULT = 256


class _TruncationCounter(logging.Filter):
    """Counts DSPy's per-call "LM response was truncated" warnings instead of printing each one.

    Replies that stop at `max_tokens` are routine for budgeted reasoning and for small base
    models, and one warning per call floods the progress bar. The CLI prints the count once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("LM response was truncated"):
            self.count += 1
            return False
        return True


TRUNCATIONS = _TruncationCounter()


class UsageError(Exception):
    """Bad command-line input; the message names the option and the fix."""


def _add_lm_options(parser: argparse.ArgumentParser, several_planner_models: bool = False) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="LiteLLM model string (openai/gpt-4o-mini, ollama_chat/qwen2.5, hosted_vllm/NAME) or a path to a "
        ".gguf file run in process by llama.cpp; default: the embedded Gemma 3 270M (a base model that shows "
        "the pipeline, not good answers)",
    )
    if several_planner_models:
        group.add_argument(
            "--planner-model",
            action="append",
            help="a model for the planner only; repeat the option to let the search choose among several",
        )
    else:
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
    group.add_argument("--max-steps", type=int, default=4, help="maximum number of sub-questions in a plan (default: %(default)s)")
    group.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiplies the level budgets 200/250/350/450/600 tokens (default: %(default)s)"
    )
    group.add_argument("--budget-unit", default="tokens", help=f"unit stated to the model: {', '.join(BUDGET_UNITS)} (default: %(default)s)")
    group.add_argument("--plan-style", default="required", help=f"how the solver is shown the plan: required (steps to follow) or hints (optional help); one of {', '.join(PLAN_STYLES)} (default: %(default)s)")
    group.add_argument("--min-tokens-per-step", type=int, default=16, help="smallest step budget in tokens (default: %(default)s)")
    group.add_argument(
        "--planner-max-tokens",
        type=int,
        help=f"cap on the planner's own output in tokens (default: {PLANNER_MAX_TOKENS_DEFAULT} or --max-tokens, whichever is smaller)",
    )


def _add_data_options(parser: argparse.ArgumentParser, required: bool = True, split_default: str | None = "test") -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=required, help="a .jsonl, .json, .csv or .parquet file, or a hub data set name")
    group.add_argument("--preset", choices=sorted(PRESETS), help="field layout; detected from the columns when omitted")
    group.add_argument("--question-field", help="column containing the question")
    group.add_argument("--answer-field", help="column containing the gold answer")
    group.add_argument("--level-field", help="column containing the difficulty level 1 to 5 (optional)")
    group.add_argument("--id-field", help="column holding a unique id (default: the row number)")
    group.add_argument("--answer-kind", choices=("number", "latex", "auto"), help="how answers are compared")
    group.add_argument("--split", default=split_default, help=f"split of a hub data set (default: {split_default or 'train'})")
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
    run.add_argument(
        "--program",
        help="a program file written by `pnb compile`; its settings replace the Plan-and-Budget options, and its "
        "model is used unless --model is given",
    )
    _add_lm_options(run)
    _add_method_options(run)

    evaluation = commands.add_parser(
        "eval", help="evaluate methods on a data set: accuracy, tokens and E3, one JSON line per question and method"
    )
    _add_data_options(evaluation)
    evaluation.add_argument(
        "--method", help=f"{', '.join(METHODS)}, or all ({', '.join(ALL_METHODS)}) (default: all)"
    )
    evaluation.add_argument(
        "--program",
        help="evaluate a program file written by `pnb compile` as the method `program`, instead of --method; its "
        "model is used unless --model is given",
    )
    evaluation.add_argument("--num-threads", type=int, default=1, help="questions run in parallel; useful for served models (default: 1)")
    evaluation.add_argument(
        "--out", help="results file (JSON Lines); an existing file is resumed (default: pnb-results/DATA-MODEL.jsonl)"
    )
    evaluation.add_argument("--no-retry-errors", action="store_true", help="on resume, keep recorded errors instead of retrying them")
    _add_lm_options(evaluation)
    _add_method_options(evaluation)
    _add_compile_parser(commands)
    return parser


def _add_compile_parser(commands: argparse._SubParsersAction) -> None:
    compile_parser = commands.add_parser(
        "compile",
        help="tune Plan-and-Budget with Optuna on dev rows, compare with the baselines on held-out rows, export the best",
        description="Tune Plan-and-Budget with Optuna. The study keeps its dev/held-out split, instruction candidates "
        "and trials in --storage, so rerunning with the same --study resumes it; several workers may share one "
        "PostgreSQL study. Vanilla, global-budget and the Plan-and-Budget paper's default configuration run first as "
        "baseline trials. "
        "The exported program is the best of the tuned trials and those baselines by E3 on held-out rows that "
        "tuning never saw, so it can be a baseline.",
    )

    compile_parser.add_argument(
        "--study-file", help="a study definition such as optimize/gsm8k.json (data, fields, sizes, seed, trials, search space); options given here override it"
    )
    _add_data_options(compile_parser, required=False, split_default=None)

    group = compile_parser.add_argument_group("study")
    group.add_argument("--study", dest="study_name", help="study name to create or resume (default: the study file's, else the data file's name)")
    group.add_argument("--trials", type=int, help=f"finished trials the study should have in total, baselines included (default: {COMPILE_DEFAULTS['trials']})")
    group.add_argument("--storage", help=f"Optuna storage URL, for example postgresql://USER@HOST/DB (default: {DEFAULT_STORAGE})")
    group.add_argument("--out", help="program file to write (default: programs/STUDY.json)")
    group.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help="e3: maximize E3 (accuracy squared over average generated tokens, all stages), pruning weak trials with "
        "Optuna's median pruner; pareto: maximize accuracy and minimize average tokens, and export the Pareto front too. "
        "Optuna cannot prune multi-objective trials, so pareto trials always run every dev question "
        f"(default: {COMPILE_DEFAULTS['objective']})",
    )

    group.add_argument("--seed", type=int, help=f"seeds the dev/held-out split and the TPE sampler (default: {COMPILE_DEFAULTS['seed']})")
    group.add_argument("--dev-size", type=int, help=f"dev questions each trial is scored on (default: {COMPILE_DEFAULTS['dev_size']})")
    group.add_argument("--heldout-size", type=int, help=f"held-out questions for the final scores, never used for tuning (default: {COMPILE_DEFAULTS['heldout_size']})")
    group.add_argument(
        "--instruction-proposals", type=int, help=f"planner instructions the LM is asked to propose when the study is created (default: {COMPILE_DEFAULTS['instruction_proposals']})"
    )
    group.add_argument("--num-threads", type=int, default=1, help="dev questions run in parallel; useful for served models (default: 1)")

    group.add_argument(
        "--heartbeat-interval", type=int, default=60, help="seconds between a running trial's heartbeats in the storage (default: %(default)s)"
    )
    group.add_argument(
        "--grace-period",
        type=int,
        help="seconds without a heartbeat after which a RUNNING trial of a killed worker is marked failed and rerun "
        "(default: twice the heartbeat interval)",
    )

    _add_lm_options(compile_parser, several_planner_models=True)


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
            planner_max_tokens=args.planner_max_tokens or min(PLANNER_MAX_TOKENS_DEFAULT, args.max_tokens),
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


def _read_program_arg(path: str) -> ProgramFile:
    try:
        return read_program(path)
    except ProgramFileError as error:
        raise UsageError(f"--program: {error}") from error


def _program_from_file(args: argparse.Namespace, program_file: ProgramFile) -> tuple[dspy.Module, dspy.LM, dspy.LM | None]:
    """Build the LMs (the file's models unless --model/--planner-model are given) and the program."""
    model = args.model if args.model is not None else program_file.metadata.get("model")
    planner_model = args.planner_model or program_file.metadata.get("planner_model")
    lm = _lm_from_args(args, model)
    planner_lm = _lm_from_args(args, planner_model) if planner_model else None
    return build_program(program_file, planner_lm), lm, planner_lm


def command_run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise UsageError("the question is empty; pass the question text as the first argument")
    if args.program:
        program_file = _read_program_arg(args.program)
        program, lm, planner_lm = _program_from_file(args, program_file)
        config, method = program_file.config, program_file.method
    else:
        config, method = _config_from_args(args), "pnb"
        lm = _lm_from_args(args, args.model)
        planner_lm = _lm_from_args(args, args.planner_model) if args.planner_model else None
        program = build_method("pnb", config, planner_lm)
    with dspy.context(lm=lm):
        prediction = program(question=args.question, level=args.level)

    print(f"model: {describe_lm(lm)}" + (f"   planner: {describe_lm(planner_lm)}" if planner_lm else ""))
    if args.program:
        print(f"program: {args.program} (method {method})")
    plan = prediction.get("plan")
    if plan is not None:
        print(f"level: {prediction.level}   total budget: {prediction.total_budget} tokens   scheduler: {config.scheduler}   mode: {config.mode}")
        if plan.fallback_reason:
            print(f"plan fallback: {plan.fallback_reason}")
        print("plan:")
        for index, (step, budget) in enumerate(zip(plan.steps, prediction.budgets), start=1):
            print(f"  {index}. [difficulty {step.difficulty}, {budget} tokens] {step.sub_question}")
    elif prediction.get("total_budget") is not None:
        print(f"total budget: {prediction.total_budget} tokens")
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
    if args.program and args.method:
        raise UsageError("--program and --method exclude each other; the program is evaluated as the method `program`")
    program_file = _read_program_arg(args.program) if args.program else None
    methods = ["program"] if program_file else _methods_from_arg(args.method or "all")
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
    if program_file is not None:
        program, lm, _ = _program_from_file(args, program_file)
        programs = {"program": program}
    else:
        lm = _lm_from_args(args, args.model)
        planner_lm = _lm_from_args(args, args.planner_model) if args.planner_model else None
        programs = {name: build_method(name, config, planner_lm) for name in methods}
    out = Path(args.out) if args.out else _default_results_path(args.data, args.model)
    if program_file is not None and not args.out:
        # Results are resumed by (question id, method), so each program file gets its own results file.
        out = out.with_name(f"{out.stem}-{Path(args.program).stem}.jsonl")
    args.results_path = out

    from tqdm import tqdm

    finished = _count_finished(out, list(programs), questions, retry_errors=not args.no_retry_errors)
    with tqdm(
        total=len(programs) * len(questions), initial=finished, desc="question-method runs", unit="run", file=sys.stderr
    ) as bar:
        summaries = evaluate(
            programs,
            questions,
            lm=lm,
            results_path=out,
            num_threads=args.num_threads,
            retry_errors=not args.no_retry_errors,
            on_result=lambda record: bar.update(1),
        )

    print(f"model: {describe_lm(lm)}   data: {args.data}   questions: {len(questions)}")
    print(format_summary_table(list(summaries.values())))
    print(f"per-question results: {out}")
    return 0


def _count_finished(path: Path, methods: list[str], questions: Sequence[Question], retry_errors: bool) -> int:
    """Return how many (question, method) runs a resumed evaluation will skip."""
    latest = latest_records(read_results(path))
    ids = {question.id for question in questions}
    return sum(
        1
        for (row_id, method), record in latest.items()
        if row_id in ids and method in methods and (record["status"] == "ok" or not retry_errors)
    )


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


COMPILE_DEFAULTS = {
    "split": "train",
    "trials": 40,
    "objective": "e3",
    "seed": 0,
    "dev_size": 40,
    "heldout_size": 40,
    "instruction_proposals": 3,
}
# Options that a study file may set; a value given on the command line wins.
STUDY_FILE_OPTIONS = (
    "data", "preset", "question_field", "answer_field", "level_field", "id_field", "answer_kind", "split", "limit",
    "study_name", "trials", "objective", "seed", "dev_size", "heldout_size", "instruction_proposals",
)


def _compile_options(args: argparse.Namespace) -> tuple[dict[str, Any], SearchSpace]:
    """Merge the command line over the study file over the defaults."""
    definition: dict[str, Any] = {}
    if args.study_file:
        try:
            definition = read_study_file(args.study_file)
        except ValueError as error:
            raise UsageError(f"--study-file: {error}") from error
    options = {}
    for name in STUDY_FILE_OPTIONS:
        from_command_line = getattr(args, name)
        options[name] = from_command_line if from_command_line is not None else definition.get(name, COMPILE_DEFAULTS.get(name))
    if not options["data"]:
        raise UsageError("pass --data FILE or a --study-file that names the data")
    is_local_file = bool(Path(options["data"]).suffix)
    if (is_local_file and Path(options["data"]).stem.lower() == "test") or (not is_local_file and options["split"] == "test"):
        raise UsageError(
            f"tuning on test rows is not allowed, but the data is {options['data']!r}"
            + ("" if is_local_file else f" split {options['split']!r}")
            + "; pass the training file or split, because a program tuned on test rows has meaningless test scores"
        )
    if not options["study_name"]:
        options["study_name"] = Path(options["data"]).stem if Path(options["data"]).suffix else options["data"].replace("/", "-")
    return options, definition.get("search_space") or SearchSpace()


def command_compile(args: argparse.Namespace) -> int:
    options, search_space = _compile_options(args)
    planner_models = tuple(dict.fromkeys(args.planner_model or []))
    try:
        settings = CompileSettings(
            study_name=options["study_name"],
            n_trials=options["trials"],
            storage=args.storage or DEFAULT_STORAGE,
            objective=options["objective"],
            seed=options["seed"],
            dev_size=options["dev_size"],
            heldout_size=options["heldout_size"],
            search_space=search_space,
            n_instruction_proposals=options["instruction_proposals"],
            num_threads=args.num_threads,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
            model=args.model,
            planner_models=planner_models,
        )
        questions = load_questions(
            options["data"],
            preset=options["preset"],
            question_field=options["question_field"],
            answer_field=options["answer_field"],
            level_field=options["level_field"],
            id_field=options["id_field"],
            answer_kind=options["answer_kind"],
            split=options["split"],
            limit=options["limit"],
        )
    except ValueError as error:
        raise UsageError(str(error)) from error
    lm = _lm_from_args(args, args.model)
    planner_lms = {name: _lm_from_args(args, name) for name in planner_models}
    out = Path(args.out) if args.out else Path("programs") / f"{settings.study_name}.json"

    import optuna
    from tqdm import tqdm

    if args.verbose == 0:
        # The progress bar replaces Optuna's line per trial.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tqdm(total=settings.n_trials, desc="trials", unit="trial", file=sys.stderr) as bar:

        def show_finished(study: optuna.Study) -> None:
            bar.n = min(count_trials(study)[0], settings.n_trials)
            bar.refresh()

        def show_progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            show_finished(study)

        try:
            result = compile_program(
                settings, questions, lm, planner_lms, out=out, callbacks=[show_progress], on_open=show_finished
            )
        except StudyMismatchError as error:
            raise UsageError(str(error)) from error
    print(format_compile_summary(result, settings))
    return 0


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ValueError:
        return url


def format_compile_summary(result: CompileResult, settings: CompileSettings) -> str:
    """Return the end-of-compile report: the held-out comparison, the exported files and what won."""
    selection = result.selection
    chosen = selection.chosen
    storage = _hide_password(settings.storage)
    lines = [
        f"study: {result.study_name}   storage: {storage}   objective: {settings.objective}",
        f"finished trials: {result.n_finished} (of them pruned: {result.n_pruned})   failed trials: {result.n_failed}",
        "held-out rows were never used for tuning; E3 = accuracy^2 / average generated tokens",
        "",
        "| candidate | method | dev E3 | held-out accuracy | held-out avg tokens | held-out E3 (all tokens) | held-out E3 (solver only) |",
        "|" + "---|" * 7,
    ]
    for candidate in selection.candidates:
        held = candidate.heldout or {}
        marker = " (exported)" if candidate is chosen else ""
        lines.append(
            f"| {candidate.label}{marker} | {candidate.method} | {candidate.dev.get('e3', 0.0):.2f} | {held.get('accuracy', 0.0):.1f}% "
            f"| {held.get('avg_tokens', 0.0):.1f} | {held.get('e3', 0.0):.2f} | {held.get('e3_solver', 0.0):.2f} |"
        )
    lines.append("")
    if chosen.baseline == "paper-default":
        lines.append("No tuned configuration beat the paper's default Plan-and-Budget configuration on the held-out rows; "
                     "the exported program is that default configuration.")
    elif chosen.baseline is not None:
        lines.append(f"No Plan-and-Budget configuration beat the {chosen.baseline} baseline on the held-out rows; "
                     f"the exported program is the {chosen.baseline} baseline, not Plan-and-Budget.")
    else:
        lines.append(f"The exported program is tuned trial {chosen.trial_number}, the best on the held-out rows.")
    for path in result.exported:
        lines.append(f"program file: {path}")
    if settings.storage.startswith("sqlite:"):
        lines.append(f"browse the trials: optuna-dashboard {settings.storage}")
    return "\n".join(lines)


COMMANDS = {"run": command_run, "eval": command_eval, "compile": command_compile}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose == 0:
        logging.getLogger("dspy.clients.lm").addFilter(TRUNCATIONS)
    # Without this, LiteLLM fetches its model price map from the internet on the first served-model
    # call, which waits for a timeout on machines without access; pnb reports no prices.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    try:
        status = COMMANDS[args.command](args)
        if TRUNCATIONS.count:
            print(
                f"{TRUNCATIONS.count} LM replies stopped at their max_tokens cap (run with -v to see each one)",
                file=sys.stderr,
            )
        return status
    except UsageError as error:
        parser.exit(2, f"pnb {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        results_path = getattr(args, "results_path", None)
        where = f" in {results_path}" if results_path else ""
        print(f"interrupted; finished results are kept{where} and the same command resumes from them", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
