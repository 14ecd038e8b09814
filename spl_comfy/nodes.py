"""The two nodes: register an edit onto its photo, and refine it (spl_sdk.align / spl_sdk.refine)."""

from __future__ import annotations

from typing import Any

import torch

from spl_comfy.convert import pairs, pick, to_comfy, to_spl

MODES = ["auto", "affine", "flow", "raft", "off"]
CATEGORY = "SPL"


def _one_line(node: str, exc: Exception) -> RuntimeError:
    """A failure as ComfyUI shows it: the node's name and spl-sdk's one sentence."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RuntimeError(f"{node}: {text}")


class SPLAlign:
    """Registers EDITED onto SOURCE (global warp + smooth residual): aligned image, coverage, warp text."""

    CATEGORY = CATEGORY
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("aligned", "coverage", "transform")
    DESCRIPTION = ("Puts an edit that moved (shift, zoom, rotation, a smooth warp, another size) back onto "
                   "its photo's pixels. Coverage is 1 where the edit covers the photo.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 (ComfyUI's name)
        """The node's sockets and widgets, as ComfyUI asks for them."""
        return {"required": {
            "source": ("IMAGE", {"tooltip": "The photo that was edited."}),
            "edited": ("IMAGE", {"tooltip": "The edit, e.g. from an instruction-edit model."}),
            "mode": (MODES, {"default": "auto", "tooltip": "auto: apply only what improves the match."}),
        }}

    def align(self, source: torch.Tensor, edited: torch.Tensor, mode: str = "auto") -> tuple:
        """Align each edit of the batch onto its source."""
        from spl_sdk.align import align, describe

        node = "SPL Align"
        count = pairs(node, source, edited)
        images, masks, lines = [], [], []
        for i in range(count):
            try:
                result = align(to_spl(pick(source, i)), to_spl(pick(edited, i)), mode)
            except Exception as exc:  # ComfyUI shows the raised message in the node
                raise _one_line(node, exc) from None
            images.append(to_comfy(result.image))
            masks.append(result.coverage[0, 0].float().cpu())
            lines.append(describe(result.info))
        return torch.stack(images), torch.stack(masks), "\n".join(lines)


class SPLRefine:
    """Restores SOURCE's structure in EDITED (aligned first): the refined image, at the source's size."""

    CATEGORY = CATEGORY
    FUNCTION = "refine"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    DESCRIPTION = ("Keeps the edit's colors and content and puts the photo's edges and fine structure back "
                   "(structure preservation loss), after aligning the edit to the photo.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 (ComfyUI's name)
        """The node's sockets and widgets, as ComfyUI asks for them."""
        return {
            "required": {
                "source": ("IMAGE", {"tooltip": "The photo that was edited."}),
                "edited": ("IMAGE", {"tooltip": "The edit to repair."}),
                "align": (MODES, {"default": "auto"}),
                "iterations": ("INT", {"default": 100, "min": 1, "max": 10000}),
                "structure_weight": ("FLOAT", {"default": 10000.0, "min": 0.0, "max": 1e8, "step": 100.0,
                                               "tooltip": "Weight of the structure loss (SPL)."}),
                "color_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e8, "step": 100.0,
                                           "tooltip": "Weight of the color loss (CPL); 0 keeps the edit's "
                                                      "colors free."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Where to refine (1 = inside); whole image without it."}),
            },
        }

    def refine(self, source: torch.Tensor, edited: torch.Tensor, align: str = "auto", iterations: int = 100,
               structure_weight: float = 10000.0, color_weight: float = 0.0,
               mask: torch.Tensor | None = None) -> tuple:
        """Refine each edit of the batch against its source."""
        from spl_sdk.plugins import get_plugins
        from spl_sdk.refiner import refine

        node = "SPL Refine"
        count = pairs(node, source, edited)
        if mask is not None and (mask.dim() not in (2, 3)):
            raise ValueError(f"{node}: 'mask' must be a ComfyUI MASK, a (B, H, W) tensor; got {tuple(mask.shape)}.")
        masks = None if mask is None else (mask[None] if mask.dim() == 2 else mask)
        plugins = get_plugins()
        out = []
        for i in range(count):
            options: dict[str, Any] = {"structure_weight": structure_weight}
            if color_weight > 0:
                options.update(color_loss="cpl", color_weight=color_weight)
            if masks is not None:
                options.update(structure_area="masked", color_area="masked")
            try:
                result = refine(to_spl(pick(source, i)), to_spl(pick(edited, i)),
                                mask=None if masks is None else pick(masks, i).float(), align=align,
                                iterations=iterations, plugins=plugins, allow_large=True, **options)
            except Exception as exc:  # ComfyUI shows the raised message in the node
                raise _one_line(node, exc) from None
            out.append(to_comfy(result.image))
        return (torch.stack(out),)
