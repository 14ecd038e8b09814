"""A scripted chat-completions server on 127.0.0.1 for testing the real openai client offline.

respx does not intercept openai 3.x (NOTES.md), so tests talk HTTP to this
server instead: each request gets the next scripted :class:`Reply` (the last
one repeats once the script is used up) and its JSON body is recorded. A reply
may also misbehave: trickle its body a byte at a time, send an HTML page or
broken JSON, or send an answer of any size.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an assistant message, or an HTTP error, optionally after a delay."""

    content: str | None = None  # assistant message text (a chat completion is built around it)
    status: int = 200
    body: Any = None  # raw JSON body instead of a chat completion (errors)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None
    raw: bytes | None = None  # the body as-is (HTML pages, broken JSON) instead of JSON
    content_type: str = "application/json"
    trickle: float = 0.0  # seconds between single bytes of the body (a server that never finishes)
    huge: int = 0  # send this many bytes of filler after the body (an answer of unbounded size)


def answer(obj: Any) -> Reply:
    """A 200 reply whose assistant message is ``obj`` as JSON."""
    return Reply(content=json.dumps(obj))


def error(status: int, message: str = "scripted error") -> Reply:
    """An OpenAI-style error reply; ``retry-after-ms`` keeps the client's retries fast."""
    return Reply(status=status, body={"error": {"message": message, "type": "test", "code": None}},
                 headers={"retry-after-ms": "10"})


def _completion(reply: Reply) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
            "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                         "message": {"role": "assistant", "content": reply.content,
                                     "refusal": reply.refusal}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FakeOpenAI:
    """Context manager running the server in a thread; ``base_url`` goes to ``OpenAI(base_url=...)``."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # wakes handlers still sleeping on a delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict[str, Any], path: str) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.paths.append(path)
            index = min(len(self.requests), len(self.replies)) - 1
            return self.replies[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                reply = fake._next(json.loads(raw or b"{}"), self.path)
                if reply.delay and fake._stop.wait(reply.delay):
                    return
                if reply.raw is not None:
                    data = reply.raw
                else:
                    data = json.dumps(reply.body if reply.body is not None else _completion(reply)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(data) + reply.huge))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self._send(data, reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def _send(self, data: bytes, reply: Reply) -> None:
                if reply.trickle:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        if fake._stop.wait(reply.trickle):
                            return
                else:
                    self.wfile.write(data)
                filler, left = b" " * 65536, reply.huge
                while left > 0 and not fake._stop.is_set():
                    self.wfile.write(filler[:left])
                    left -= len(filler)

        return Handler
