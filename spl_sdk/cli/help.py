"""``--help`` in sections (input/output, losses, model, sampling, attention, masks) with examples.

rich-click draws the panels; it imports rich only when help is shown, so commands
stay fast to import (``spl --help`` lists every command).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rich_click

# section -> parameter names (click destinations), in the order the panels appear
SECTIONS: dict[str, tuple[str, ...]] = {
    "Input/output": ("source_prompt", "target_prompt", "output", "out_dir", "mask_file", "mask", "save_mask",
                     "config_file", "force", "quiet", "verbose", "as_json", "prompts_only"),
    "Engine": ("engine", "ray_address", "concurrency", "num_gpus", "num_cpus"),
    "Scoring": ("compare", "pie_bench", "networks"),
    "Harmonizer": ("harmonizer_name", "object_word", "timeout", "max_attempts"),
    "Losses": ("structure_loss", "structure_weight", "structure_area", "color_loss", "color_weight",
               "color_area", "cpl", "iterations", "solver", "opt_start", "post_process",
               "post_processors"),
    "Model": ("backbone", "model", "device", "dtype", "cpu_offload", "method", "option_texts"),
    "Sampling": ("working_size", "steps", "original_steps", "source_guidance", "target_guidance", "seed"),
    "Attention": ("attention", "cross_replace", "self_replace", "blend_words_source",
                  "blend_words_target", "reweight"),
    "Masks": ("edit_area", "mask_extractor", "mask_words_source", "mask_threshold_source", "mask_invert_source",
              "mask_words_target", "mask_threshold_target", "mask_invert_target"),
}
command = rich_click.command  # a click command whose help shows the panels of @sections


def sections(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Group a command's options into :data:`SECTIONS` panels (the rest go under "Options").

    Apply it above the option decorators and below ``@command(epilog=...)``.
    """
    present = {p.name for p in getattr(fn, "__click_params__", [])}
    for title in reversed(SECTIONS):
        names = [n for n in SECTIONS[title] if n in present]
        if names:
            fn = rich_click.option_panel(title, options=names)(fn)
    return fn


def epilog(*examples: str) -> str:
    """The ``Examples:`` block closing a command's help."""
    return "Examples:\n\n" + "\n\n".join(f"  {e}" for e in examples)
