"""``spl --help`` and ``spl plugins`` must not import torch (they stay well under a second)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from spl_sdk.lazy import LazyModule, no_grad
from spl_sdk.plugins import Plugins

# Runs the CLI's own code paths in a fresh interpreter and reports what got imported.
PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from spl_sdk.cli import main
    outputs = {}
    for args in (["--help"], ["plugins"], ["plugins", "--json"]):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            try:
                main(args, prog_name="spl")
            except SystemExit as stop:
                assert not stop.code, (args, stop.code)
        outputs[" ".join(args)] = buffer.getvalue()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers",
                                                                  "openai", "streamlit", "open_clip", "numpy"))
    print(json.dumps({"heavy": heavy, "outputs": outputs}))
""")


@pytest.fixture(scope="module")
def probe() -> dict:
    """The fresh interpreter's report: heavy modules imported and each command's output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPL_")}  # every plug-in loads
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_help_and_plugins_import_no_torch(probe: dict) -> None:
    assert probe["heavy"] == [], f"imported while listing: {probe['heavy'][:10]}"
    assert "plugins" in probe["outputs"]["--help"] and "refine" in probe["outputs"]["--help"]


def test_plugins_lists_every_installed_component(probe: dict) -> None:
    expected = {(row["kind"], row["name"]) for row in Plugins(load_entrypoints=True, env={}).listing()}
    listed = {(row["kind"], row["name"]) for row in json.loads(probe["outputs"]["plugins --json"])}
    assert listed == expected
    assert {("loss", "spl"), ("backbone", "tiny-random-sd15"), ("harmonizer", "openai")} <= listed
    table = probe["outputs"]["plugins"]
    assert all(f"\n{name} " in table for _, name in expected)


def test_lazy_module_imports_on_first_use() -> None:
    module = LazyModule("json")
    assert module.dumps([1]) == "[1]"
    with pytest.raises(AttributeError):
        module.no_such_function  # noqa: B018


def test_no_grad_decorator_disables_gradients() -> None:
    import torch

    @no_grad
    def double(x: torch.Tensor) -> torch.Tensor:
        """Twice x."""
        return x * 2

    out = double(torch.ones(2, requires_grad=True))
    assert not out.requires_grad and double.__doc__ == "Twice x."
