"""Test doubles for LM faults: a scripted lm15 engine and an OpenAI-compatible loopback server.

`ScriptedEngine` replies to each request with the next entry of a script: a reply text, or
an exception to raise. With it a test injects empty replies, replies in the wrong format,
context-length errors or server errors in a fixed order. `scripted_lm` wraps it in a
`dspy.LM` the way `pnb_dspy.lm` wraps llama.cpp, so DSPy's retries, adapters and history
apply unchanged.

`OpenAIStubServer` serves `POST /v1/chat/completions` on 127.0.0.1 with an ephemeral port,
and each request takes the next action of its script: a reply, an HTTP error status or a
hang. It drives the LiteLLM-string path (`openai/...` with `api_base`) without a network.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dspy
from dspy import lm15

logger = logging.getLogger(__name__)

# Every output field of the package's signatures, so one reply parses for any method.
_ALL_OUTPUT_FIELDS = ("plan", "level", "solution", "sub_answer", "answer")


def chat_reply(**fields: object) -> str:
    """Return a reply in DSPy's ChatAdapter format, one `[[ ## name ## ]]` section per field."""
    sections = [f"[[ ## {name} ## ]]\n{value}" for name, value in fields.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


def answer_everything_reply(answer: str = "4") -> str:
    """Return a reply that contains every output field of the package's signatures.

    The ChatAdapter ignores sections its signature does not ask for, so this one reply
    parses for the planner, the solvers and the aggregator alike.
    """
    values = {"plan": "1. What is the answer? (difficulty: 2)", "level": "2", "solution": "Work it out.", "sub_answer": answer, "answer": answer}
    return chat_reply(**{name: values[name] for name in _ALL_OUTPUT_FIELDS})


class ScriptedEngine:
    """An lm15 engine that replies from a script, for tests.

    Args:
        script: reply texts and exceptions, consumed one per request in order; an exception
            is raised instead of replying.
        output_tokens: the generated-token count reported in each reply's usage.
        default: the reply once the script is used up; None makes further requests fail.

    Attributes:
        requests: every request received, in order.

    Example:
        >>> engine = ScriptedEngine([lm15.ServerError("busy"), chat_reply(answer="4")])
        >>> lm = dspy.LM("scripted/test", engine=engine, num_retries=1, cache=False)  # doctest: +SKIP
    """

    def __init__(self, script: Iterable[str | BaseException], output_tokens: int = 10, default: str | None = None) -> None:
        self.script = list(script)
        self.output_tokens = output_tokens
        self.default = default
        self.requests: list[lm15.Request] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        """Return the number of requests received so far."""
        return len(self.requests)

    def complete(self, request: lm15.Request) -> lm15.Response:
        with self._lock:
            self.requests.append(request)
            step = self.script.pop(0) if self.script else self.default
            number = len(self.requests)
        if step is None:
            raise RuntimeError(f"ScriptedEngine has no reply for request {number}; add entries to the script or set default")
        if isinstance(step, BaseException):
            raise step
        return lm15.Response(
            id=f"scripted-{number}",
            model=request.model,
            message=lm15.Message.assistant([lm15.TextPart(step)]),
            finish_reason="stop",
            usage=lm15.Usage(input_tokens=0, output_tokens=self.output_tokens, total_tokens=self.output_tokens),
        )

    def stream(self, request: lm15.Request):
        return lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        """Hold no resources."""


def scripted_lm(
    script: Iterable[str | BaseException],
    *,
    output_tokens: int = 10,
    default: str | None = None,
    num_retries: int = 0,
    model: str = "llamacpp/scripted",
) -> dspy.LM:
    """Return a `dspy.LM` with no cache over a `ScriptedEngine`; the engine is `lm.engine`.

    The model string uses the `llamacpp/` prefix that `pnb_dspy.lm.make_lm` gives local models.
    """
    engine = ScriptedEngine(script, output_tokens=output_tokens, default=default)
    return dspy.LM(model, engine=engine, cache=False, num_retries=num_retries)


@dataclass(frozen=True)
class Reply:
    """Server action: reply with status 200 and `text` as the assistant message, after `delay_s` seconds."""

    text: str
    delay_s: float = 0.0
    completion_tokens: int = 10


@dataclass(frozen=True)
class Status:
    """Server action: reply with an HTTP error status and an OpenAI-style error body.

    Attributes:
        retry_after: the `Retry-After` header value in seconds, or None to send none.
        message: the error message; None uses `scripted status CODE`.
    """

    code: int
    retry_after: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Hang:
    """Server action: send nothing for `seconds`, so a client with a shorter timeout gives up."""

    seconds: float


ServerAction = Reply | Status | Hang

_ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_exceeded"}


@dataclass(frozen=True)
class SeenRequest:
    """One request as the stub server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class OpenAIStubServer:
    """An OpenAI-compatible chat completions server on 127.0.0.1, scripted for tests.

    Args:
        script: actions taken one per request in order.
        default: the action once the script is used up.

    Use it as a context manager; `api_base` is the URL to give the client and `requests`
    lists what it received.

    Example:
        >>> with OpenAIStubServer([Status(500)], default=Reply(chat_reply(answer="4"))) as server:  # doctest: +SKIP
        ...     lm = dspy.LM("openai/test-model", api_base=server.api_base, api_key="sk-test", num_retries=1)
    """

    def __init__(self, script: Iterable[ServerAction] = (), default: ServerAction | None = None) -> None:
        self.script = list(script)
        self.default = default or Reply(answer_everything_reply())
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> OpenAIStubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_action(self, seen: SeenRequest) -> ServerAction:
        with self._lock:
            self.requests.append(seen)
            return self.script.pop(0) if self.script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                seen = SeenRequest(path=self.path, headers=dict(self.headers), body=body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                server._answer(self, server.next_action(seen), body)

            def _send_json(self, code: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("stub server: " + format, *args)

        return Handler

    @staticmethod
    def _answer(handler: Any, action: ServerAction, body: Mapping[str, Any]) -> None:
        if isinstance(action, Hang):
            time.sleep(action.seconds)
            return
        if isinstance(action, Status):
            headers = {"Retry-After": action.retry_after} if action.retry_after is not None else {}
            error = {"message": action.message or f"scripted status {action.code}", "type": _ERROR_TYPES.get(action.code, "server_error")}
            handler._send_json(action.code, {"error": error}, headers)
            return
        time.sleep(action.delay_s)
        completion = {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "test-model")),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": action.text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": action.completion_tokens, "total_tokens": 5 + action.completion_tokens},
        }
        handler._send_json(200, completion)
