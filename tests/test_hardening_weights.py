"""Model folders: safetensors only by default, pickle weights refused unless allowed (with a warning),
any failure inside loading is one line, and library warnings do not bury it."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spl_backbones import loading
from spl_sdk.errors import ModelNotFoundError, SplWarning, UnsafeWeightsError
from spl_sdk.plugins import Plugins
from spl_sdk.weights import allowing_pickle

ROOT = Path(__file__).resolve().parents[1]
BIN_NAMES = {"unet": "diffusion_pytorch_model.bin", "vae": "diffusion_pytorch_model.bin",
             "text_encoder": "pytorch_model.bin"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_backbone) -> Path:
    return tiny_backbone.save_pretrained(tmp_path_factory.mktemp("w") / "model")


@pytest.fixture(scope="module")
def pickled(saved: Path, tmp_path_factory) -> Path:
    """The tiny model with every weight file re-saved as a pickle (.bin), no safetensors left."""
    folder = tmp_path_factory.mktemp("p") / "model"
    shutil.copytree(saved, folder)
    for sub, name in BIN_NAMES.items():
        (st,) = (folder / sub).glob("*.safetensors")
        torch.save(load_file(st), folder / sub / name)
        st.unlink()
    return folder


def _load(folder: Path):
    return Plugins(env={}).backbone("lcm-dreamshaper-v7").load(str(folder), device="cpu")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spl_sdk.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_every_weight_load_asks_for_safetensors(saved, monkeypatch):
    seen: dict[str, dict] = {}
    real = loading.load_part

    def spy(loader, model, subfolder, hint=None, **kw):
        seen[subfolder] = kw
        return real(loader, model, subfolder, hint, **kw)

    monkeypatch.setattr(loading, "load_part", spy)
    _load(saved)
    assert all(seen[s].get("use_safetensors") is True for s in ("unet", "vae", "text_encoder"))


def test_pickle_weights_are_refused_in_one_line(pickled):
    with pytest.raises(UnsafeWeightsError, match=r"holds only pickle weights .*--allow-pickle") as info:
        _load(pickled)
    assert "\n" not in str(info.value)


def test_pickle_weights_load_when_allowed_with_a_warning(pickled, saved, tiny_backbone):
    with allowing_pickle(), pytest.warns(SplWarning, match="pickle files can run code"):
        loaded = _load(pickled)
    emb = tiny_backbone.encode_prompts(["a cat"])
    torch.testing.assert_close(loaded.encode_prompts(["a cat"]), emb, atol=0, rtol=0)
    with pytest.raises(UnsafeWeightsError):  # the permission ends with the block
        _load(pickled)


class _Hostile:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_a_hostile_pickle_is_one_line_and_never_runs(pickled, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(pickled, folder)
    (folder / "unet" / BIN_NAMES["unet"]).write_bytes(pickle.dumps({"w": _Hostile()}))
    monkeypatch.chdir(tmp_path)
    with allowing_pickle(), pytest.warns(SplWarning), \
            pytest.raises(ModelNotFoundError, match=r"could not be loaded .*damaged") as info:
        _load(folder)
    assert "\n" not in str(info.value) and not (tmp_path / "pwned-by-pickle").exists()


def test_a_truncated_safetensors_file_is_one_line(saved, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    (st,) = (folder / "unet").glob("*.safetensors")
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 3])
    with pytest.raises(ModelNotFoundError, match=r"model files in '.*unet' could not be loaded") as info:
        _load(folder)
    assert "\n" not in str(info.value)


def test_cli_errors_are_the_only_line(pickled, saved, tmp_path):
    from click.testing import CliRunner

    from spl_sdk.cli import main

    photo = ROOT / "apps" / "examples" / "old_man.png"
    done = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a red photo", "-o",
                                     str(tmp_path / "o.png"), "--backbone", "lcm-dreamshaper-v7",
                                     "--model", str(pickled), "--device", "cpu"])
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [done.stderr.strip()] and "holds only pickle weights" in done.stderr
    # in a fresh process, with every library imported for real: still one line
    folder = tmp_path / "broken"
    shutil.copytree(saved, folder)
    (st,) = (folder / "vae").glob("*.safetensors")
    st.write_bytes(b"\x00" * 64)
    done = _cli("edit", str(photo), "-s", "a photo", "-t", "a red photo", "-o", str(tmp_path / "o.png"),
                "--backbone", "lcm-dreamshaper-v7", "--model", str(folder), "--device", "cpu")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("Error: model files in") and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("name", ["tiny-random-sd3", "tiny-random-flux"])
def test_flow_model_pickle_weights_are_refused_unless_allowed(name, tmp_path):
    from spl_backbones.tiny_flow import TinyRandomFlux, TinyRandomSD3

    cls = TinyRandomSD3 if name == "tiny-random-sd3" else TinyRandomFlux
    small = cls.load(device="cpu")
    folder = small.save_pretrained(tmp_path / "safe")
    for module, sub in ((small.transformer, "transformer"), (small.vae, "vae")):
        module.save_pretrained(folder / sub, safe_serialization=False)  # .bin beside the safetensors
        for st in (folder / sub).glob("*.safetensors"):
            st.unlink()
    assert any((folder / "transformer").glob("*.bin"))
    with pytest.raises(UnsafeWeightsError, match=r"transformer' holds only pickle weights .*--allow-pickle") as info:
        cls.load(str(folder), device="cpu")
    assert "\n" not in str(info.value)
    with allowing_pickle(), pytest.warns(SplWarning, match="pickle files can run code"):
        loaded = cls.load(str(folder), device="cpu")
    s1, s2 = small.transformer.state_dict(), loaded.transformer.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
