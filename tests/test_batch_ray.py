"""``spl batch --engine ray`` on a local Ray (2 CPUs): the same rows and seeds give the same pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from spl_sdk.config import EditConfig
from spl_sdk.jobs.runner import run_batch

ray = pytest.importorskip("ray", reason="the Ray engine is an extra: pip install 'spl-sdk[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for this module (the engine reuses it instead of starting one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.mark.slow  # starting Ray and two actors takes tens of seconds on 2 busy cores
def test_ray_engine_matches_the_in_process_engine(tmp_path, example_image, local_ray):
    example_image.resize((64, 48)).save(tmp_path / "a.png")
    example_image.resize((40, 40)).save(tmp_path / "b.png")
    rows = [{"image": "a.png", "source_prompt": "a photo of a man", "target_prompt": "a painting of a man",
             "seed": 3},
            {"image": "b.png", "source_prompt": "a photo of a man", "target_prompt": "a drawing of a man",
             "options": {"target_guidance": 3.0}},
            {"image": "missing.png", "source_prompt": "a photo", "target_prompt": "a painting"},
            {"task": "refine", "id": "r", "image": "a.png", "edited": "b.png"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    base = EditConfig(backbone="tiny-random", device="cpu", working_size=64, steps=1, iterations=2)

    local = run_batch(manifest, tmp_path / "local", base)
    remote = run_batch(manifest, tmp_path / "ray", base, engine="ray",
                       ray_options={"concurrency": 2, "num_cpus": 1})
    assert (remote.ok, remote.failed) == (local.ok, local.failed) == (3, 1)
    by_id = {r["id"]: r for r in remote.records}
    assert [r["id"] for r in remote.records] == ["a", "b", "missing", "r"]  # manifest order
    assert "does not exist" in by_id["missing"]["error"]
    assert len({r["worker"] for r in remote.records}) >= 1
    for rec in local.records:
        if rec["status"] == "ok":
            name = rec["id"] + ".png"
            assert by_id[rec["id"]]["key"] == rec["key"]
            assert np.array_equal(np.asarray(Image.open(tmp_path / "local" / "images" / name)),
                                  np.asarray(Image.open(tmp_path / "ray" / "images" / name))), name
