"""The ComfyUI node pack (spl_comfy) against ComfyUI's node contract: types, batches, ranges, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from moved_edits import DRIFTS, blurred, moved, photo, psnr_interior, recolor
from PIL import Image

import spl_comfy
from spl_comfy.convert import to_comfy
from spl_sdk.imageio import pil_to_tensor

ROOT = Path(__file__).resolve().parents[1]
SIZE = (160, 112)
COMFY_TYPES = {"IMAGE", "MASK", "STRING", "INT", "FLOAT", "BOOLEAN"}


def comfy(img: Image.Image) -> torch.Tensor:
    """A PIL image as one ComfyUI IMAGE item (H, W, 3) in [0, 1]."""
    return torch.from_numpy(np.asarray(img, np.float32) / 255)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two sources, their clean edits and the edits moved, as ComfyUI IMAGE batches."""
    srcs = [photo(n, SIZE) for n in ("cats.png", "woman.png")]
    clean = [blurred(recolor(s), 1.0) for s in srcs]
    drifted = [moved(c, DRIFTS[k]) for c, k in zip(clean, ("shift", "zoom-in"), strict=True)]
    return tuple(torch.stack([comfy(i) for i in group]) for group in (srcs, clean, drifted))


def test_mappings_and_declarations_follow_the_contract() -> None:
    assert set(spl_comfy.NODE_CLASS_MAPPINGS) == set(spl_comfy.NODE_DISPLAY_NAME_MAPPINGS) == {"SPLAlign", "SPLRefine"}
    assert spl_comfy.NODE_DISPLAY_NAME_MAPPINGS == {"SPLAlign": "SPL Align", "SPLRefine": "SPL Refine"}
    for cls in spl_comfy.NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional"}
        for kind, _options in (*spec["required"].values(), *spec.get("optional", {}).values()):
            assert (isinstance(kind, list) and all(isinstance(k, str) for k in kind)) or kind in COMFY_TYPES
        assert all(t in COMFY_TYPES for t in cls.RETURN_TYPES) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls(), cls.FUNCTION)) and cls.CATEGORY == "SPL"
    assert spl_comfy.NODE_CLASS_MAPPINGS["SPLRefine"].INPUT_TYPES()["optional"]["mask"][0] == "MASK"


def test_align_node_runs_a_batch_of_two(batch) -> None:
    sources, clean, drifted = batch
    node = spl_comfy.NODE_CLASS_MAPPINGS["SPLAlign"]()
    aligned, coverage, text = getattr(node, node.FUNCTION)(sources, drifted, "auto")
    assert aligned.shape == (2, SIZE[1], SIZE[0], 3) and aligned.dtype == torch.float32
    assert coverage.shape == (2, SIZE[1], SIZE[0]) and float(coverage.min()) >= 0 and float(coverage.max()) == 1
    assert float(aligned.min()) >= 0 and float(aligned.max()) <= 1
    assert len(text.splitlines()) == 2 and all(re.search(r"zoom \d\.\d+", ln) for ln in text.splitlines())
    for i in range(2):  # each moved edit is back on its photo
        as_pil = [Image.fromarray((t[i].numpy() * 255).round().astype(np.uint8)) for t in (aligned, drifted, clean)]
        assert psnr_interior(as_pil[0], as_pil[2]) > psnr_interior(as_pil[1], as_pil[2]) + 5


def test_refine_node_runs_a_batch_of_two_with_one_source_and_a_mask(batch) -> None:
    sources, clean, _ = batch
    cats = Image.fromarray((clean[0].numpy() * 255).round().astype(np.uint8))
    drifted = torch.stack([comfy(moved(cats, DRIFTS[k])) for k in ("shift", "rotate")])  # two edits of one photo
    node = spl_comfy.NODE_CLASS_MAPPINGS["SPLRefine"]()
    mask = torch.zeros(1, SIZE[1], SIZE[0])
    mask[:, :, SIZE[0] // 2:] = 1
    (image,) = getattr(node, node.FUNCTION)(sources[:1], drifted, "auto", 10, 10000.0, 0.0, mask=mask)
    assert image.shape == (2, SIZE[1], SIZE[0], 3) and image.dtype == torch.float32
    assert float(image.min()) >= 0 and float(image.max()) <= 1
    assert not torch.equal(image[0], image[1])  # two edits, two results
    # the left half (outside the mask) stays the aligned edit; the right half was refined
    (plain,) = node.refine(sources[:1], drifted[:1], "auto", 10, 10000.0, 0.0)
    assert not torch.allclose(plain[0][:, SIZE[0] // 2 + 8:], image[0][:, SIZE[0] // 2 + 8:], atol=0)


def test_errors_are_raised_with_the_node_name_and_one_sentence(batch) -> None:
    sources, clean, _ = batch
    align = spl_comfy.NODE_CLASS_MAPPINGS["SPLAlign"]()
    other = torch.stack([comfy(photo("marshmallow.jpg", SIZE))] * 2)
    with pytest.raises(RuntimeError, match=r"^SPL Align: cannot align EDITED to SOURCE") as info:
        align.align(sources, other, "auto")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="batch has 2 images and the edited batch 3"):
        align.align(sources, torch.cat([clean, clean[:1]]), "auto")
    with pytest.raises(ValueError, match="must be a ComfyUI IMAGE"):
        align.align(sources[0], clean, "auto")
    refine = spl_comfy.NODE_CLASS_MAPPINGS["SPLRefine"]()
    with pytest.raises(RuntimeError, match=r"^SPL Refine: .*'iterations'"):
        refine.refine(sources, clean, "off", 0, 10000.0, 0.0)


def test_conversion_round_trips() -> None:
    image = torch.rand(1, 24, 32, 3)
    back = to_comfy(pil_to_tensor(Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))))
    assert back.shape == (24, 32, 3) and torch.allclose(back, image[0], atol=1 / 255 + 1e-6)


def test_documented_workflow_uses_the_nodes_as_declared() -> None:
    text = (ROOT / "docs" / "comfyui.md").read_text(encoding="utf-8")
    workflow = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    ours = {k: v for k, v in workflow.items() if v["class_type"] in spl_comfy.NODE_CLASS_MAPPINGS}
    assert {v["class_type"] for v in ours.values()} == {"SPLRefine"}
    for node in ours.values():
        spec = spl_comfy.NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()
        declared = {**spec["required"], **spec.get("optional", {})}
        assert set(node["inputs"]) <= set(declared) and set(spec["required"]) <= set(node["inputs"])
        for value in node["inputs"].values():  # links point at nodes of the workflow
            if isinstance(value, list):
                assert str(value[0]) in workflow
    assert any("Kontext" in v["class_type"] or v["class_type"] == "ReferenceLatent" for v in workflow.values())
