"""The openai harmonizer against a misbehaving server: total deadline, non-completions, huge answers,
honest retry counts and neutralized model text. Uses the real client against tests/fake_openai.py."""

from __future__ import annotations

import json
import time

import pytest
from fake_openai import FakeOpenAI, Reply, answer, error
from test_harmonize_openai import GOOD, KEY, harmonizer

from spl_harmonizers.openai_harmonizer import MAX_RESENT, OpenAIHarmonizer
from spl_sdk.errors import HarmonizerError


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def images():
    from PIL import Image, ImageDraw

    composite = Image.new("RGB", (64, 48), (200, 210, 230))
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((16, 12, 48, 36), fill=255)
    return composite, mask


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and KEY not in text and "\x1b" not in text
    return text


def test_a_trickling_server_is_stopped_at_the_timeout(images):
    with FakeOpenAI([answer(GOOD), Reply(content=json.dumps(GOOD), trickle=0.2)]) as server:
        h = harmonizer(server, timeout=1.0, max_retries=0)
        h.describe(*images)  # imports and first-call set-up done: time the request alone
        began = time.monotonic()
        with pytest.raises(HarmonizerError, match=r"did not answer within 1 s \(1 request\)") as info:
            h.describe(*images)
        elapsed = time.monotonic() - began
    _one_line(info)
    assert 0.9 < elapsed < 3  # the whole call (the body would take 100 s), not each read (0.2 s)


def test_slow_headers_are_bounded_too(images):
    with FakeOpenAI([Reply(content="{}", delay=5)]) as server:
        h = harmonizer(server, timeout=0.5, max_retries=0)
        began = time.monotonic()
        with pytest.raises(HarmonizerError, match="did not answer within 0.5 s"):
            h.describe(*images)
    assert time.monotonic() - began < 3


@pytest.mark.parametrize(("reply", "expected"), [
    (Reply(raw=b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>", content_type="text/html"),
     r"answered with an HTML page \('<!DOCTYPE html>.*check the base URL"),
    (Reply(raw=b'{"choices": [', content_type="application/json"), "answered with text that is not JSON"),
    (Reply(body={"object": "list", "data": []}), "answered JSON that is not a chat completion"),
    (Reply(body={"choices": [{"message": {"content": 42}}]}), "not a chat completion"),
    (Reply(body={"choices": "none"}), "not a chat completion"),
    (Reply(body=[1, 2, 3]), "not a chat completion"),
    (Reply(status=404, raw=b"<html><h1>404 Not Found</h1></html>", content_type="text/html"),
     r"HTTP 404 \(an HTML page\)"),
])
def test_anything_but_a_chat_completion_is_one_line(images, reply, expected):
    with FakeOpenAI([reply]) as server:
        with pytest.raises(HarmonizerError, match=expected) as info:
            harmonizer(server).describe(*images)
    _one_line(info)
    assert len(server.requests) == 1  # not retried


def test_an_answer_of_unbounded_size_is_cut_off_and_not_retried(images):
    with FakeOpenAI([Reply(content=json.dumps(GOOD), huge=50 * 2**20)]) as server:
        with pytest.raises(HarmonizerError, match="sent an answer over 1 MiB") as info:
            harmonizer(server, max_retries=3).describe(*images)
    _one_line(info)
    assert len(server.requests) == 1
    with FakeOpenAI([Reply(status=500, raw=b"x", huge=50 * 2**20)]) as server:
        with pytest.raises(HarmonizerError, match="over 1 MiB"):
            harmonizer(server, max_retries=3).describe(*images)
    assert len(server.requests) == 1


def test_a_long_rejected_answer_is_sent_back_cut_short(images):
    junk = "sparkly " * 20000  # 160 KB of text that is not the JSON asked for
    with FakeOpenAI([Reply(content=junk), answer(GOOD)]) as server:
        assert harmonizer(server).describe(*images).foreground_object == "cat"
    follow_up = server.requests[1]["messages"]
    assert follow_up[2]["role"] == "assistant" and len(follow_up[2]["content"]) == MAX_RESENT
    assert len(follow_up[3]["content"]) < 1000  # the complaint quotes a bounded excerpt


def test_retry_messages_count_requests_made(images):
    with FakeOpenAI([error(500, "boom"), error(503, "busy"), answer(GOOD)]) as server:
        with pytest.raises(HarmonizerError, match=r"HTTP 503 .* 2 times in a row"):
            harmonizer(server, max_retries=1).describe(*images)
    assert len(server.requests) == 2
    with FakeOpenAI([error(429, "slow down")]) as server:
        with pytest.raises(HarmonizerError, match=r"HTTP 429 .* once \(no retries\)"):
            harmonizer(server, max_retries=0).describe(*images)
    assert len(server.requests) == 1
    with FakeOpenAI([]) as server:
        url = server.base_url
    with pytest.raises(HarmonizerError, match=r"cannot reach the OpenAI API .*\(3 requests"):
        OpenAIHarmonizer(api_key=KEY, base_url=url, max_retries=2).describe(*images)


def test_model_text_is_neutralized(images):
    evil = GOOD | {"foreground_object": "cat\x1b[2J\x1b]0;pwned\x07"}
    with FakeOpenAI([answer(evil), answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images)
    assert h.foreground_object == "cat"  # the answer with escape codes was rejected and re-asked
    assert "\\x1b[2J" in server.requests[1]["messages"][-1]["content"]
    with FakeOpenAI([Reply(content=None, refusal="no\x1b[31m way\u202e")]) as server:
        with pytest.raises(HarmonizerError, match=r"refused .*no\\x1b\[31m way\\u202e") as info:
            harmonizer(server).describe(*images)
    _one_line(info)


def test_error_detail_from_the_server_is_neutralized(images):
    with FakeOpenAI([error(400, "bad \x1b[31mmodel\x1b[0m " + "x" * 5000)]) as server:
        with pytest.raises(HarmonizerError, match=r"HTTP 400 \(bad \\x1b\[31mmodel") as info:
            harmonizer(server).describe(*images)
    assert len(_one_line(info)) < 500


def test_the_fallback_schema_matches_the_clients(monkeypatch):
    import builtins

    from spl_harmonizers.openai_harmonizer import response_format

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("title", "description")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    client_own = response_format()
    real_import = builtins.__import__

    def no_private_helper(name, *args, **kwargs):
        if name == "openai.lib._parsing":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_private_helper)
    fallback = response_format()
    assert fallback["json_schema"]["strict"] is True
    assert strip(fallback["json_schema"]["schema"]) == strip(client_own["json_schema"]["schema"])
