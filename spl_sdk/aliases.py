"""The one table of old setting names: each writes the option of the component that owns it.

Earlier releases kept twelve settings of particular plug-ins (the attention controller's,
the cross-attention mask extractor's, the LCM schedule's) as top-level configuration
fields, and FlowEdit kept copies of the steps and guidance in its options. Config files,
batch rows, ``--config RESULT.png`` and the old flags still use those names: this table
turns them into what they mean now, so every entry point reads them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from spl_sdk.rawoptions import check_shape
from spl_sdk.words import comma_words, word_factors

# old top-level key -> (config field that names the owning component, its kind, option name)
ALIASES: dict[str, tuple[str, str, str]] = {
    "cross_replace": ("attention", "attention", "cross_replace"),
    "self_replace": ("attention", "attention", "self_replace"),
    "blend_words_source": ("attention", "attention", "blend_words_source"),
    "blend_words_target": ("attention", "attention", "blend_words_target"),
    "reweight": ("attention", "attention", "reweight"),
    "mask_words_source": ("mask_extractor", "mask-extractor", "words_source"),
    "mask_words_target": ("mask_extractor", "mask-extractor", "words_target"),
    "mask_threshold_source": ("mask_extractor", "mask-extractor", "threshold_source"),
    "mask_threshold_target": ("mask_extractor", "mask-extractor", "threshold_target"),
    "mask_invert_source": ("mask_extractor", "mask-extractor", "invert_source"),
    "mask_invert_target": ("mask_extractor", "mask-extractor", "invert_target"),
    "original_steps": ("backbone", "backbone", "original_steps"),
}
# the values earlier releases recorded when the user set nothing: the owners' defaults are the
# same, so such a key is dropped (an unused component never sees an option it may not have)
OLD_DEFAULTS: dict[str, Any] = {
    "cross_replace": 0.8, "self_replace": 0.8, "blend_words_source": [], "blend_words_target": [],
    "reweight": {}, "mask_words_source": [], "mask_words_target": [], "mask_threshold_source": 0.5,
    "mask_threshold_target": 0.5, "mask_invert_source": False, "mask_invert_target": False,
    "original_steps": 50,
}
# (options key, option) of earlier releases that duplicated a configuration field -> that field
OPTION_ALIASES: dict[tuple[str, str], str] = {
    (key, name): name for key in ("flowedit", "method/flowedit")
    for name in ("steps", "source_guidance", "target_guidance")
}


class OldFlags(BaseModel):
    """The old flags' types and help, from which the CLI builds them (each writes an option)."""

    cross_replace: float | None = Field(None, description="Alias of the attention controller's option "
                                        "cross_replace: fraction of steps with cross-attention replacement.")
    self_replace: float | None = Field(None, description="Alias of the attention controller's option "
                                       "self_replace: fraction of steps with self-attention replacement.")
    blend_words_source: list[str] | None = Field(None, description="Alias of the attention controller's "
                                                 "option blend_words_source: local blend words of the source prompt.")
    blend_words_target: list[str] | None = Field(None, description="Alias of the attention controller's "
                                                 "option blend_words_target: local blend words of the target prompt.")
    reweight: dict[str, float] | None = Field(None, description="Alias of the option reweight of "
                                              "--attention p2p-reweight: target words and their attention factors.")
    mask_words_source: list[str] | None = Field(None, description="Alias of the mask extractor's option "
                                                "words_source: source-prompt words that define the mask.")
    mask_words_target: list[str] | None = Field(None, description="Alias of the mask extractor's option "
                                                "words_target: target-prompt words that define the mask.")
    mask_threshold_source: float | None = Field(None, description="Alias of the mask extractor's option "
                                                "threshold_source: threshold of the source word maps.")
    mask_threshold_target: float | None = Field(None, description="Alias of the mask extractor's option "
                                                "threshold_target: threshold of the target word maps.")
    mask_invert_source: bool | None = Field(None, description="Alias of the mask extractor's option "
                                            "invert_source: invert the source mask.")
    mask_invert_target: bool | None = Field(None, description="Alias of the mask extractor's option "
                                            "invert_target: invert the target mask.")
    original_steps: int | None = Field(None, description="Alias of the LCM backbone's option "
                                       "original_steps: original_inference_steps of the LCM schedule.")


def apply_aliases(data: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with every old key written as the option it now is (old defaults dropped).

    ``defaults`` gives the component names (attention, mask_extractor, backbone) used
    when ``data`` does not choose them. A key given by its old name wins over the same
    option in ``data["options"]``: it is the more explicit spelling.
    """
    out = dict(data)
    options = check_shape(out.get("options"))  # also from a list of NAME.FIELD=VALUE texts
    for (key, name), field in OPTION_ALIASES.items():
        fields = options.get(key)
        if isinstance(fields, dict) and name in fields:
            value = fields.pop(name)
            if value is not None and out.get(field) is None:
                out[field] = value
    for old, (chooser, kind, option) in ALIASES.items():
        if old not in out:
            continue
        value = out.pop(old)
        value = word_factors(value) if old == "reweight" else comma_words(value) \
            if isinstance(OLD_DEFAULTS[old], list) else value
        if value is None or value == OLD_DEFAULTS[old]:
            continue
        component = out.get(chooser) or defaults.get(chooser)
        options.setdefault(f"{kind}/{component}", {})[option] = value
    if options or "options" in out:
        out["options"] = options
    return out
