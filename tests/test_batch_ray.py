"""``spl batch --engine ray`` on a local Ray (2 CPUs): the same rows and seeds give the same pixels."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
from PIL import Image

from spl_sdk.config import EditConfig
from spl_sdk.jobs.runner import run_batch

ray = pytest.importorskip("ray", reason="the Ray engine is an extra: pip install 'spl-sdk[ray]'")


def test_an_unreachable_ray_address_fails_fast_in_one_line(tmp_path, example_image, monkeypatch):
    """Ray itself retries a cluster that does not answer for good; spl gives up at a bound."""
    import socket
    import threading

    from click.testing import CliRunner

    from spl_sdk.cli import main
    from spl_sdk.errors import SplError
    from spl_sdk.jobs.ray_engine import check_reachable

    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process, so the address is not used")
    with pytest.raises(SplError, match=r"^cannot reach the Ray cluster at '127.0.0.1:1' within 30 s "
                                       r"\(Connection refused\); check --ray-address"):
        check_reachable("127.0.0.1:1")  # nothing listens: refused before Ray is touched
    # a port that accepts connections but never answers as Ray: ray.init retries it for good
    # (measured: still retrying after 150 s), which this stand-in does for 20 s
    released = threading.Event()

    def retrying(*_a, **_k):
        released.wait(20)
        raise ConnectionError("gave up")

    monkeypatch.setattr(ray, "init", retrying)
    monkeypatch.setenv("SPL_RAY_CONNECT_TIMEOUT", "0.5")
    example_image.resize((32, 32)).save(tmp_path / "a.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"task": "refine", "image": "a.png", "edited": "a.png"}))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        run = CliRunner().invoke(main, ["batch", str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "out"),
                                        "--engine", "ray", "--ray-address", address, "-q"])
    released.set()
    assert run.exit_code == 1, run.output
    assert run.stderr.strip().splitlines() == [
        f"Error: the Ray cluster at '{address}' did not answer within 0.5 s; check --ray-address and "
        f"that the cluster is running (SPL_RAY_CONNECT_TIMEOUT sets the bound)."]


def test_workers_a_local_ray_cannot_place_are_refused(monkeypatch):
    """Ray Data waits for good for GPUs the machine does not have; a local Ray never gets them."""
    from spl_sdk.errors import SplError
    from spl_sdk.jobs import ray_engine

    class LocalRay:  # what run_ray asks of ray before it builds the pipeline
        initialized = False

        def is_initialized(self):
            return self.initialized

        def init(self, **_kw):
            self.initialized = True

        def cluster_resources(self):
            return {"CPU": 2.0, "memory": 1e9}

        def shutdown(self):
            self.initialized = False

        class exceptions:  # the attribute path of ray.exceptions.RayError
            RayError = RuntimeError

    local = LocalRay()
    monkeypatch.setattr(ray_engine, "import_ray", lambda: local)
    with pytest.raises(SplError, match=r"asks for 1 GPUs \(--num-gpus-per-worker\) but the local Ray "
                                       r"started for this run has 0; lower --num-gpus-per-worker"):
        ray_engine.run_ray([], {}, print, num_gpus=1)
    with pytest.raises(SplError, match=r"asks for 4 CPUs \(--num-cpus-per-worker\) .* has 2"):
        ray_engine.run_ray([], {}, print, num_cpus=4)
    assert not local.initialized  # and the Ray it started is shut down again


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
    base = EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=64, steps=1, iterations=2)

    local = run_batch(manifest, tmp_path / "local", base)
    notes: list[str] = []  # what Ray logs about our call (a plain handler, not a muted console)
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: notes.append(record.getMessage())
    logging.getLogger("ray.data").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            remote = run_batch(manifest, tmp_path / "ray", base, engine="ray",
                               ray_options={"concurrency": 2, "num_cpus": 1})
    finally:
        logging.getLogger("ray.data").removeHandler(handler)
    # the current actor-pool API: no deprecation note from Ray, and none of its warnings shown
    assert not [n for n in notes if "deprecated" in n], notes
    assert not [w for w in caught if "ray" in (w.filename or "")], [str(w.message) for w in caught]
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


@pytest.mark.slow  # reuses the module's Ray
def test_harmonize_rows_on_ray_get_the_harmonizer_and_its_key_in_memory(tmp_path, example_image, local_ray):
    """The harmonizer (its API key among its options) reaches the actors; no file of the run holds the key."""
    from fake_openai import FakeOpenAI, answer

    from spl_sdk.harmonizing import HarmonizerChoice

    key = "sk-ray-actor-key-7f3c2a9e"
    example_image.resize((64, 48)).save(tmp_path / "a.png")
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (16, 12, 48, 36))
    mask.save(tmp_path / "a-mask.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"task": "harmonize", "image": "a.png", "mask": "a-mask.png"}),
                                      encoding="utf-8")
    base = EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=64, steps=1, iterations=2)
    reply = {"foreground_object": "cat", "foreground": {"brightness": "dim"}, "background": {"brightness": "bright"}}
    with FakeOpenAI([answer(reply)] * 2) as server:
        choice = HarmonizerChoice("openai", {"openai": {"api_key": key, "base_url": server.base_url,
                                                        "model": "gpt-ray"}})
        remote = run_batch(tmp_path / "m.jsonl", tmp_path / "ray", base, engine="ray", harmonizer=choice,
                           ray_options={"concurrency": 1, "num_cpus": 1})
        local = run_batch(tmp_path / "m.jsonl", tmp_path / "local", base, harmonizer=choice)
    assert remote.ok == local.ok == 1, remote.records
    assert [r["model"] for r in server.requests] == ["gpt-ray", "gpt-ray"]
    assert remote.records[0]["target_prompt"] == "bright cat" and remote.records[0]["key"] == local.records[0]["key"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ray" / "images" / "a.png")),
                          np.asarray(Image.open(tmp_path / "local" / "images" / "a.png")))
    for path in (p for p in (tmp_path / "ray").rglob("*") if p.is_file()):
        assert key.encode() not in path.read_bytes(), path


@pytest.mark.slow  # reuses the module's Ray; the actors fail while they start
def test_a_failing_actor_is_one_line_without_its_traceback(tmp_path, example_image, local_ray, capfd):
    import io
    import logging

    from spl_sdk.errors import SplError

    example_image.resize((32, 32)).save(tmp_path / "a.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "source_prompt": "a photo",
                                                  "target_prompt": "a painting"}))
    base = EditConfig(backbone="no-such-backbone", device="cpu")  # each actor fails to load it
    # Ray's console handlers keep the stream they were made with: give them one to read back
    consoles = [h for name in ("ray", "ray.data") for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler) and "File" not in type(h).__name__]
    streams = [io.StringIO() for _ in consoles]
    old = [h.setStream(s) for h, s in zip(consoles, streams, strict=True)]
    try:
        with pytest.raises(SplError) as failed:
            run_batch(tmp_path / "m.jsonl", tmp_path / "out", base, engine="ray")
    finally:
        for handler, stream in zip(consoles, old, strict=True):
            handler.setStream(stream)
    message = str(failed.value)
    assert message.startswith("the Ray workers failed: unknown backbone 'no-such-backbone'")
    assert "\n" not in message
    printed = capfd.readouterr().err + "".join(s.getvalue() for s in streams)
    assert consoles and "Traceback" not in printed, printed
