"""The openai harmonizer with the real openai client against a scripted server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import logging
import time

import pytest
from fake_openai import FakeOpenAI, Reply, answer, error
from PIL import Image, ImageDraw

from spl_harmonizers.openai_harmonizer import DEFAULT_MODEL, Answer, OpenAIHarmonizer
from spl_sdk import Plugins
from spl_sdk.errors import HarmonizerError

KEY = "sk-test-4f8a2c9e7b1d6053"
GOOD = {"foreground_object": "cat",
        "foreground": {"brightness": "dim", "weather": None, "temperature": "warm", "season": None,
                       "time": None, "tone": "golden", "environment": "indoor"},
        "background": {"brightness": "bright", "weather": "snowy", "temperature": "cold",
                       "season": "winter", "time": "daylight", "tone": "white", "environment": "mountain"}}


def bad(**region) -> dict:
    """GOOD with some foreground fields replaced."""
    return GOOD | {"foreground": GOOD["foreground"] | region}


@pytest.fixture
def images() -> tuple[Image.Image, Image.Image]:
    composite = Image.new("RGB", (640, 400), (200, 210, 230))
    ImageDraw.Draw(composite).rectangle((200, 100, 400, 300), fill=(120, 80, 40))
    mask = Image.new("L", (640, 400), 0)
    ImageDraw.Draw(mask).rectangle((200, 100, 400, 300), fill=255)
    return composite, mask


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def harmonizer(server: FakeOpenAI, **options) -> OpenAIHarmonizer:
    return OpenAIHarmonizer(api_key=KEY, base_url=server.base_url, **options)


def test_registered_through_the_entry_point():
    assert Plugins().harmonizer("openai") is OpenAIHarmonizer


def test_valid_answer_and_request_shape(images):
    with FakeOpenAI([answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images)
    assert h.source_prompt == "dim warm golden indoor cat"
    assert h.target_prompt == "bright snowy cold winter daylight white mountain cat"
    (body,) = server.requests
    assert server.paths == ["/v1/chat/completions"]
    assert body["model"] == DEFAULT_MODEL
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    brightness = fmt["json_schema"]["schema"]["$defs"]["RegionWords"]["properties"]["brightness"]
    assert brightness["enum"] == ["dazzling", "bright", "dim", "dull", "shaded", "shadowed"]
    system, user = body["messages"]
    assert system["role"] == "system" and "at most one word per category" in system["content"]
    assert "shadowed" in system["content"] and "grassland" in system["content"]
    parts = [p for p in user["content"] if p["type"] == "image_url"]
    assert len(parts) == 2
    sizes = []
    for part in parts:
        url = part["image_url"]["url"]
        assert part["image_url"]["detail"] == "low"
        assert url.startswith("data:image/png;base64,")
        sizes.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size)
    assert sizes == [(512, 320), (512, 320)]  # downscaled to 512 px on the long side


def test_user_object_word_wins_and_is_sent(images):
    with FakeOpenAI([answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images, object_word="kitten")
    assert h.foreground_object == "kitten" and h.target_prompt.endswith(" kitten")
    assert "kitten" in server.requests[0]["messages"][1]["content"][0]["text"]


def test_out_of_vocabulary_then_valid_answer_sends_the_complaint(images):
    with FakeOpenAI([answer(bad(brightness="sparkly")), answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images)
    assert h.foreground_words[0] == "dim"
    assert len(server.requests) == 2
    follow_up = server.requests[1]["messages"]
    assert follow_up[2]["role"] == "assistant" and "sparkly" in follow_up[2]["content"]
    assert follow_up[3]["role"] == "user"
    assert "foreground.brightness = 'sparkly' is not allowed" in follow_up[3]["content"]


def test_two_words_of_one_category_are_asked_again(images):
    with FakeOpenAI([answer(bad(tone=["red", "blue"])), answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images)
    assert h.source_prompt == "dim warm golden indoor cat"
    assert "foreground.tone" in server.requests[1]["messages"][-1]["content"]


def test_malformed_json_is_asked_again(images):
    with FakeOpenAI([Reply(content='{"foreground_object": "cat", '), answer(GOOD)]) as server:
        harmonizer(server).describe(*images)
    assert "not valid JSON" in server.requests[1]["messages"][-1]["content"]


def test_gives_up_after_max_attempts(images):
    with FakeOpenAI([answer(bad(brightness="sparkly"))]) as server:
        with pytest.raises(HarmonizerError, match="no valid answer in 2 attempts.*sparkly"):
            harmonizer(server, max_attempts=2).describe(*images)
    assert len(server.requests) == 2


def test_missing_brightness_is_rejected():
    assert "brightness" in Answer.model_json_schema()["$defs"]["RegionWords"]["required"]


def test_429_then_success(images):
    with FakeOpenAI([error(429, "Rate limit reached"), answer(GOOD)]) as server:
        h = harmonizer(server).describe(*images)
    assert h.foreground_object == "cat" and len(server.requests) == 2


def test_500_until_give_up_is_bounded_and_names_the_status(images):
    with FakeOpenAI([error(500, "boom")]) as server:
        with pytest.raises(HarmonizerError, match="HTTP 500") as info:
            harmonizer(server, max_retries=2).describe(*images)
    assert len(server.requests) == 3  # one call plus two retries
    assert "3 times" in str(info.value) and KEY not in str(info.value)


def test_other_status_errors_are_not_retried(images):
    with FakeOpenAI([error(404, "The model does not exist")]) as server:
        with pytest.raises(HarmonizerError, match="HTTP 404 .The model does not exist.*model name"):
            harmonizer(server).describe(*images)
    assert len(server.requests) == 1


def test_rejected_key_error_hides_the_key(images):
    with FakeOpenAI([error(401, f"Incorrect API key provided: {KEY}")]) as server:
        with pytest.raises(HarmonizerError, match="HTTP 401") as info:
            harmonizer(server).describe(*images)
    assert KEY not in str(info.value)


def test_timeout(images):
    with FakeOpenAI([Reply(content="{}", delay=5)]) as server:
        began = time.perf_counter()
        with pytest.raises(HarmonizerError, match="did not answer within 0.3 s"):
            harmonizer(server, timeout=0.3, max_retries=0).describe(*images)
    assert time.perf_counter() - began < 4
    assert len(server.requests) == 1


def test_connection_refused(images):
    with FakeOpenAI([]) as server:
        url = server.base_url
    h = OpenAIHarmonizer(api_key=KEY, base_url=url, max_retries=0)
    with pytest.raises(HarmonizerError, match="cannot reach the OpenAI API"):
        h.describe(*images)


def test_refusal_is_a_clear_error(images):
    with FakeOpenAI([Reply(content=None, refusal="I can't help with that.")]) as server:
        with pytest.raises(HarmonizerError, match="refused to describe"):
            harmonizer(server).describe(*images)
    assert len(server.requests) == 1


def test_missing_key():
    with pytest.raises(HarmonizerError, match="set the OPENAI_API_KEY environment variable, or use "
                                              "--harmonizer offline"):
        OpenAIHarmonizer()


def test_key_from_environment(monkeypatch, images):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI([answer(GOOD)]) as server:
        assert OpenAIHarmonizer(base_url=server.base_url).describe(*images).foreground_object == "cat"


def test_invalid_option_is_named_without_the_key():
    with pytest.raises(HarmonizerError, match="max_attempts") as info:
        OpenAIHarmonizer(api_key=KEY, max_attempts=0)
    assert KEY not in str(info.value)
    with pytest.raises(HarmonizerError, match="temprature"):
        OpenAIHarmonizer(api_key=KEY, temprature=0)


def test_key_never_in_repr_options_or_logs(images, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI([answer(bad(brightness="sparkly")), error(500), answer(GOOD)]) as server:
        h = harmonizer(server, model="gpt-test")
        h.describe(*images)
    assert "gpt-test" in repr(h) and KEY not in repr(h)
    assert KEY not in str(h.options) and KEY not in str(vars(h))
    assert "rejected" in caplog.text  # our own log line is there ...
    assert KEY not in caplog.text  # ... and neither it nor the client's debug output shows the key
