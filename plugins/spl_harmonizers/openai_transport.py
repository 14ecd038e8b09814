"""HTTP for the openai harmonizer: one chat-completions request under a total deadline, read with a cap.

The openai client bounds each socket read, not the request: a server that sends
one byte every few seconds keeps it waiting forever, and an answer of any size
is read whole. Here every request runs in a worker thread that the caller stops
waiting for at the deadline (``timeout`` seconds after the request began,
whatever the server trickles), the body is read in chunks and abandoned past
``MAX_BODY_BYTES``, and retries of 408/409/429/5xx and connection failures are
counted here, so error messages give the number of requests actually made.
Everything a server sends that is not a chat completion becomes one
:class:`~spl_sdk.errors.HarmonizerError` sentence.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from spl_sdk.errors import HarmonizerError
from spl_sdk.text import neutralize

T = TypeVar("T")

MAX_BODY_BYTES = 1 << 20  # a chat completion of a few dozen words is about 2 KB
MAX_QUOTE = 200  # characters of a server's text quoted in a message
MAX_BACKOFF_S = 20.0
RETRY_STATUSES = frozenset({408, 409, 429})
OFFLINE_HINT = "use --harmonizer offline"


class DeadlineExceeded(Exception):
    """The request did not finish before its deadline."""


class BodyTooLarge(Exception):
    """The answer grew past MAX_BODY_BYTES."""


@dataclass
class HttpReply:
    """Status, headers (lower-case names) and the whole body of one HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Completion:
    """The parts of a chat completion the harmonizer reads."""

    content: str | None
    refusal: str | None
    finish_reason: str | None


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """A server's or model's text made safe to show: control characters escaped, cut at ``limit``."""
    text = neutralize(" ".join(str(text).split()))
    return text if len(text) <= limit else text[:limit] + "..."


def within(deadline: float, work: Callable[[], T]) -> T:
    """``work()`` in a daemon thread; DeadlineExceeded once ``deadline`` (time.monotonic) passes.

    The abandoned thread ends by itself at its own socket timeout; the caller is
    never held past the deadline, whatever the server does.
    """
    box: dict[str, Any] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=run, name="spl-openai-request", daemon=True).start()
    if not finished.wait(max(0.0, deadline - time.monotonic())):
        raise DeadlineExceeded
    if "error" in box:
        raise box["error"]
    return box["value"]


def post_once(url: str, headers: dict[str, str], payload: bytes, deadline: float,
              max_bytes: int = MAX_BODY_BYTES) -> HttpReply:
    """One POST, its body read in chunks that stop at the deadline or past ``max_bytes``."""
    import httpx2

    def work() -> HttpReply:
        remaining = max(0.01, deadline - time.monotonic())
        with httpx2.Client(timeout=httpx2.Timeout(remaining)) as client:
            with client.stream("POST", url, headers=headers, content=payload) as response:
                chunks, size = [], 0
                for chunk in response.iter_bytes():  # decoded: a gzip bomb meets the cap too
                    size += len(chunk)
                    if size > max_bytes:
                        raise BodyTooLarge
                    if time.monotonic() > deadline:
                        raise DeadlineExceeded
                    chunks.append(chunk)
                return HttpReply(response.status_code,
                                 {k.lower(): v for k, v in response.headers.items()}, b"".join(chunks))

    return within(deadline, work)


def backoff(reply: HttpReply | None, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): the server's Retry-After, else exponential."""
    headers = reply.headers if reply is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return min(MAX_BACKOFF_S, max(0.0, float(headers[name]) * scale))
        except (KeyError, ValueError):
            continue
    return min(MAX_BACKOFF_S, 0.5 * 2 ** (retry - 1)) * (0.75 + 0.5 * random.random())


def _retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


@dataclass
class Endpoint:
    """Where and how to ask: the chat-completions URL, headers with the key, limits."""

    url: str
    headers: dict[str, str]
    timeout: float
    max_retries: int
    model: str

    def complete(self, body: dict[str, Any]) -> Completion:
        """POST ``body``, retrying transient failures; the parsed completion or one HarmonizerError."""
        payload = json.dumps(body).encode()
        made = 0
        while True:
            made += 1
            reply: HttpReply | None = None
            try:
                reply = post_once(self.url, self.headers, payload, time.monotonic() + self.timeout)
            except DeadlineExceeded:
                raise HarmonizerError(
                    f"the OpenAI API did not answer within {self.timeout:g} s ({_requests(made)}); "
                    f"raise the timeout or {OFFLINE_HINT}.") from None
            except BodyTooLarge:
                raise HarmonizerError(
                    f"the server at {self._where()} sent an answer over {MAX_BODY_BYTES // 2**20} MiB, "
                    f"which is not a chat completion; check the base URL (OPENAI_BASE_URL) or "
                    f"{OFFLINE_HINT}.") from None
            except Exception as exc:  # connection refused, DNS, TLS, reset mid-answer
                if made <= self.max_retries:
                    time.sleep(backoff(None, made))
                    continue
                raise HarmonizerError(
                    f"cannot reach the OpenAI API at {self._where()} ({_requests(made)}: "
                    f"{quote(type(exc).__name__)}); check the network or OPENAI_BASE_URL, or "
                    f"{OFFLINE_HINT}.") from None
            if 200 <= reply.status < 300:
                return self._completion(reply)
            if _retryable(reply.status) and made <= self.max_retries:
                time.sleep(backoff(reply, made))
                continue
            raise self._status_error(reply, made)

    def _where(self) -> str:
        return quote(self.url.removesuffix("/chat/completions"))

    def _status_error(self, reply: HttpReply, made: int) -> HarmonizerError:
        detail = error_detail(reply)
        if reply.status == 401:
            return HarmonizerError("the OpenAI API rejected the API key (HTTP 401); check "
                                   f"OPENAI_API_KEY, or {OFFLINE_HINT}.")
        if _retryable(reply.status):
            what = "rate limit or quota" if reply.status == 429 else "server error"
            times = f"{made} times in a row" if made > 1 else "once (no retries)"
            return HarmonizerError(f"the OpenAI API answered HTTP {reply.status} ({what}: {detail}) "
                                   f"{times}; try again later or {OFFLINE_HINT}.")
        return HarmonizerError(f"the OpenAI API refused the request with HTTP {reply.status} "
                               f"({detail}); check the model name '{quote(self.model)}' or {OFFLINE_HINT}.")

    def _completion(self, reply: HttpReply) -> Completion:
        """The completion in a 2xx body, or one sentence on what the server sent instead."""
        try:
            data = json.loads(reply.body)
        except ValueError:
            kind = "an HTML page" if _looks_like_html(reply) else "text that is not JSON"
            raise HarmonizerError(
                f"the server at {self._where()} answered with {kind} ('{quote(_text(reply.body), 80)}'), "
                f"not a chat completion; check the base URL (OPENAI_BASE_URL, usually ending in /v1) "
                f"or {OFFLINE_HINT}.") from None
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content, refusal = message.get("content"), message.get("refusal")
            finish = choice.get("finish_reason")
            if not (isinstance(content, (str, type(None))) and isinstance(refusal, (str, type(None)))):
                raise TypeError
        except (KeyError, IndexError, TypeError, AttributeError):
            raise HarmonizerError(
                f"the server at {self._where()} answered JSON that is not a chat completion "
                f"(no choices[0].message with text content: '{quote(_text(reply.body), 80)}'); check "
                f"the base URL (OPENAI_BASE_URL) or {OFFLINE_HINT}.") from None
        return Completion(content=content, refusal=refusal, finish_reason=finish if isinstance(finish, str) else None)


def _requests(made: int) -> str:
    return f"{made} request{'s' if made != 1 else ''}"


def _text(body: bytes) -> str:
    return body[:2000].decode("utf-8", "replace")


def _looks_like_html(reply: HttpReply) -> bool:
    return "html" in reply.headers.get("content-type", "") or _text(reply.body).lstrip()[:1] == "<"


def error_detail(reply: HttpReply) -> str:
    """The 'message' of an OpenAI-style error body, else the start of the body, quoted safely."""
    try:
        data = json.loads(reply.body)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        message = None
    if not message:
        text = _text(reply.body).strip()
        message = ("an HTML page" if _looks_like_html(reply) else text) or "no details"
    return quote(str(message))
