"""OpenAI harmonizer: a vision model names the object and picks the style words (docs/method.md section 6).

The composite and the mask go to the chat-completions API as low-detail PNG
data URLs; the answer is parsed into :class:`Answer` (one Literal-typed field
per category, so structured output can only name vocabulary words) and checked
again against the vocabulary. A rejected answer is sent back (cut short) with
the reason, at most ``max_attempts`` times in all. The request itself goes
through :mod:`spl_harmonizers.openai_transport`: ``timeout`` bounds each
request as a whole, 429/5xx/connection errors are retried ``max_retries``
times, and anything that is not a chat completion is one error sentence. The
API key is held by the client only and never appears in a message, log line or repr.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model

from spl_harmonizers.openai_transport import Completion, Endpoint, quote
from spl_harmonizers.stats import check_regions, foreground_mask
from spl_sdk.components import Harmonizer
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import HarmonizerError
from spl_sdk.extras import require
from spl_sdk.harmonize import (
    CATEGORIES,
    VOCABULARY,
    Harmonization,
    VocabularyError,
    vocabulary_text,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-2024-08-06"
MAX_RESENT = 4000  # characters of a rejected answer sent back with the complaint


def _category_field(category: str) -> tuple[Any, Any]:
    kind = Literal[VOCABULARY[category]]  # type: ignore[valid-type]
    if category == "brightness":
        return kind, Field(description="Exactly one brightness word.")
    return kind | None, Field(None, description=f"One {category} word, or null when none fits.")


# one field per category, e.g. brightness: Literal["dazzling", ...]; others may be null
RegionWords = create_model(  # type: ignore[call-overload]
    "RegionWords", __doc__="Style words of one region, at most one per category.",
    **{cat: _category_field(cat) for cat in CATEGORIES})


class Answer(BaseModel):
    """The structured answer the model must give."""

    foreground_object: str = Field(description="The pasted object in one to three plain words.")
    foreground: RegionWords  # type: ignore[valid-type]
    background: RegionWords  # type: ignore[valid-type]


SYSTEM_PROMPT = f"""\
You write the two prompts of an image-harmonization edit. You receive two images:
1. a composite photo in which an object was pasted onto a new background;
2. its foreground mask: white marks the pasted object, black the background.
An editor will change the object's light and color tone so that it fits the
background while every edge stays put. The source prompt describes the object as
it looks now, the target prompt as it should look on this background; they are
built from your words.

Answer with:
- foreground_object: the pasted object in one to three plain words (for example
  "cat", "old man", "sports car"), without any of the style words below.
- foreground: style words for the pasted object's CURRENT look in the composite
  (its own lighting, brightness, color tone, temperature, as it was photographed).
- background: style words for the BACKGROUND's look (its light, brightness,
  weather, season, time of day, color tone, temperature and environment).

Style words, by category (use only these words, spelled exactly like this):
{vocabulary_text()}

Rules: at most one word per category; brightness is always required; set a
category to null when no word clearly fits. Prefer words in which the object
and the background differ: the difference is what the edit changes.
"""


class OpenAIOptions(ComponentOptions):
    """Options of the openai harmonizer (the key comes from here or OPENAI_API_KEY)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    api_key: SecretStr | None = Field(
        None, repr=False, exclude=True,
        description="OpenAI API key; prefer the OPENAI_API_KEY environment variable. Never written out.")
    model: str = Field(DEFAULT_MODEL, description="Vision model that writes the style words.")
    base_url: str | None = Field(
        None, description="API endpoint; unset: OPENAI_BASE_URL or the official endpoint.")
    timeout: float = Field(60.0, gt=0, le=600, description="Seconds to wait for one API call.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Client-side retries of 429, 5xx and connection errors per call.")
    max_attempts: int = Field(
        3, ge=1, le=10, description="Answers to ask for in all when they break the vocabulary.")
    image_size: int = Field(512, ge=64, le=2048, description="Long side in pixels of the images sent.")


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Structured-output rules on a pydantic schema: every property required, no others allowed."""
    for node in [schema, *schema.get("$defs", {}).values()]:
        if node.get("type") == "object":
            node["required"] = list(node.get("properties", {}))
            node["additionalProperties"] = False
            for prop in node.get("properties", {}).values():
                prop.pop("default", None)
    return schema


def response_format() -> dict[str, Any]:
    """The json_schema response format of :class:`Answer`, as ``chat.completions.parse`` sends it."""
    try:
        from openai.lib._parsing import type_to_response_format_param  # the client's own
    except ImportError:  # a private helper that moved: build the same strict schema here
        return {"type": "json_schema", "json_schema": {
            "name": "Answer", "strict": True, "schema": _strict(Answer.model_json_schema())}}
    return dict(type_to_response_format_param(Answer))


def data_url(image: Image.Image, size: int) -> str:
    """The image shrunk to ``size`` px on the long side, as a base64 PNG data URL."""
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def problem(exc: Exception) -> str:
    """What was wrong with an answer, in words the model can act on."""
    if not isinstance(exc, ValidationError):
        return quote(str(exc), 600)
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "answer"
        if err["type"] == "json_invalid":
            parts.append("the answer was not valid JSON")
        elif err["type"] == "literal_error":
            parts.append(f"{where} = {quote(repr(err.get('input')), 80)} is not allowed "
                         f"({err['msg'].replace('Input should be', 'use')})")
        else:
            parts.append(f"{where}: {err['msg']}")
    return quote("; ".join(parts), 600)


def complaint(reason: str) -> str:
    """The follow-up user message that sends a rejected answer's problem back to the model."""
    return (f"Your answer was rejected: {reason}. Answer again in the same JSON format, using only "
            f"the listed words, at most one per category, brightness always included.")


class OpenAIHarmonizer(Harmonizer):
    """Asks an OpenAI vision model (structured output) for the object and the style words."""

    name = "openai"
    Options = OpenAIOptions

    def __init__(self, options: OpenAIOptions | None = None, **fields: Any) -> None:
        try:  # keyword fields (OpenAIHarmonizer(model=...)) are the older spelling of options=
            opts = OpenAIOptions.model_validate({**dict(options or {}), **fields})
        except ValidationError as exc:
            bad = ", ".join(f"{'.'.join(map(str, e['loc']))} ({e['msg'].lower()})" for e in exc.errors())
            raise HarmonizerError(f"invalid openai harmonizer option: {bad}; see "
                                  f"'spl plugins openai'.") from None
        openai = require("openai", "openai", "the openai harmonizer")  # on use: listing needs no openai

        key = (opts.api_key.get_secret_value() if opts.api_key else "") or os.environ.get("OPENAI_API_KEY", "")
        if not key.strip():
            raise HarmonizerError("no OpenAI API key: set the OPENAI_API_KEY environment variable, "
                                  "or use --harmonizer offline.")
        self._key = SecretStr(key)
        self.settings = opts.model_copy(update={"api_key": None})
        super().__init__(self.settings)
        self.client = openai.OpenAI(api_key=key, base_url=opts.base_url, timeout=opts.timeout,
                                    max_retries=opts.max_retries)

    def __repr__(self) -> str:
        s = self.settings
        return (f"{type(self).__name__}(model={s.model!r}, base_url={str(self.client.base_url)!r}, "
                f"timeout={s.timeout}, max_retries={s.max_retries}, max_attempts={s.max_attempts})")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.get_secret_value(), "***")

    def messages(self, composite: Image.Image, mask: Image.Image,
                 object_word: str | None) -> list[dict[str, Any]]:
        """System prompt plus one user message with the composite and the mask at low detail."""
        text = "Image 1: the composite. Image 2: its foreground mask (white = pasted object)."
        if object_word:
            text += f" The pasted object is: {object_word}."
        size = self.settings.image_size
        mask = mask.convert("L").resize(composite.size, Image.Resampling.BILINEAR)
        images = [{"type": "image_url", "image_url": {"url": data_url(img, size), "detail": "low"}}
                  for img in (composite.convert("RGB"), mask)]
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": [{"type": "text", "text": text}, *images]}]

    def describe(self, composite: Image.Image, mask: Image.Image,
                 object_word: str | None = None) -> Harmonization:
        """Ask the model, re-asking with the reason when an answer breaks the vocabulary rules."""
        check_regions(foreground_mask(mask, composite.size))
        messages = self.messages(composite, mask, object_word)
        attempts = self.settings.max_attempts
        reason = ""
        for attempt in range(1, attempts + 1):
            completion = self._ask(messages)
            try:
                return self._harmonization(completion, object_word)
            except (ValidationError, VocabularyError) as exc:
                reason = self._scrub(problem(exc))
                log.info("openai harmonizer: answer %d/%d rejected: %s", attempt, attempts, reason)
                if completion.content is not None:  # sent back, cut short: never an unbounded answer
                    messages = [*messages, {"role": "assistant", "content": completion.content[:MAX_RESENT]}]
                messages = [*messages, {"role": "user", "content": complaint(reason)}]
        raise HarmonizerError(
            f"the model '{quote(self.settings.model)}' gave no valid answer in {attempts} attempts "
            f"(last problem: {reason}); raise max_attempts, try another model (--option openai.model=...), "
            f"or use --harmonizer offline.")

    def endpoint(self) -> Endpoint:
        """The chat-completions URL and headers of this harmonizer's client, with its limits."""
        headers = {k: v for k, v in {**self.client.default_headers, **self.client.auth_headers}.items()
                   if isinstance(v, str)}
        return Endpoint(url=str(self.client.base_url).rstrip("/") + "/chat/completions",
                        headers=headers, timeout=self.settings.timeout,
                        max_retries=self.settings.max_retries, model=self.settings.model)

    def _ask(self, messages: list[dict[str, Any]]) -> Completion:
        """One API call (with its transient-failure retries) under the total deadline."""
        body = {"model": self.settings.model, "messages": messages, "response_format": response_format()}
        try:
            return self.endpoint().complete(body)
        except HarmonizerError as exc:
            raise HarmonizerError(self._scrub(str(exc))) from None

    def _harmonization(self, completion: Completion, object_word: str | None) -> Harmonization:
        if completion.refusal:
            raise HarmonizerError(f"the model refused to describe the image "
                                  f"({quote(self._scrub(completion.refusal))}); use --harmonizer offline.")
        if completion.finish_reason == "content_filter":
            raise HarmonizerError("the OpenAI content filter stopped the answer for this image; "
                                  "use --harmonizer offline for it.")
        if completion.finish_reason == "length":
            raise VocabularyError("the answer was cut off (too long); answer with the JSON object only")
        if not completion.content:
            raise VocabularyError("the answer was empty")
        answer = Answer.model_validate_json(completion.content)
        fg, bg = answer.foreground.model_dump(), answer.background.model_dump()
        try:
            return Harmonization(
                foreground_object=(object_word or "").strip() or answer.foreground_object,
                foreground_words=[w for w in fg.values() if w],
                background_words=[w for w in bg.values() if w])
        except ValidationError as exc:  # re-validation against the vocabulary (docs/method.md section 6)
            raise VocabularyError("; ".join(e["msg"].removeprefix("Value error, ")
                                            for e in exc.errors())) from None
