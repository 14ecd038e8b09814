"""``spl batch`` on tiny-random-sd15: outputs, results table, per-row failures, resumption, kill safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.imageio import read_metadata

FAST = ["--backbone", "tiny-random-sd15", "--working-size", "64", "--steps", "1", "--iterations", "2"]


def _photos(tmp_path: Path, example_image: Image.Image) -> None:
    example_image.resize((64, 48)).save(tmp_path / "a.png")
    example_image.resize((48, 64)).rotate(90, expand=True).save(tmp_path / "b.png")
    example_image.resize((40, 40)).save(tmp_path / "c.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _edit(image: str, target: str = "a painting of a man", **kw) -> dict:
    return {"image": image, "source_prompt": "a photo of a man", "target_prompt": target, **kw}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _batch(manifest: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["batch", str(manifest), "-o", str(out), *FAST, *extra])


def test_rows_run_failures_are_recorded_and_a_rerun_redoes_only_what_changed(tmp_path, example_image):
    import pyarrow.parquet as pq

    _photos(tmp_path, example_image)
    rows = [_edit("a.png", seed=1), _edit("broken.png"),
            _edit("b.png", options={"structure_area": "masked", "mask_words_source": ["dog"]}),
            {"task": "refine", "id": "fixed", "image": "a.png", "edited": "c.png"}]
    manifest, out = _manifest(tmp_path / "m.jsonl", rows), tmp_path / "out"
    run = _batch(manifest, out)
    assert run.exit_code == 2, run.output  # some rows failed, the others went on
    records = {r["id"]: r for r in _records(out)}
    assert [r["index"] for r in _records(out)] == [0, 1, 2, 3]
    assert records["a"]["status"] == "ok" and Image.open(records["a"]["output"]).size == (64, 48)
    assert records["fixed"]["status"] == "ok" and Image.open(out / "images" / "fixed.png").size == (64, 48)
    assert "not an image Pillow can read" in records["broken"]["error"]
    assert "'dog' is not in the source prompt" in records["b"]["error"]
    assert all("\n" not in (r["error"] or "") for r in records.values())
    assert records["a"]["timings"]["total"] > 0 and records["a"]["seconds"] > 0
    meta = read_metadata(out / "images" / "a.png")
    assert meta["row_key"] == records["a"]["key"] and meta["config"]["seed"] == 1
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert [(t["id"], t["status"], t["error"]) for t in table] == \
        [(r["id"], r["status"], r["error"]) for r in _records(out)]
    assert table[0]["seconds_total"] == records["a"]["timings"]["total"]

    # fix one row, change another's options: those two run again, the failed one is retried
    before = (out / "images" / "a.png").stat().st_mtime_ns
    rows[1] = _edit("c.png", id="broken")
    rows[3]["options"] = {"iterations": 3}
    _manifest(manifest, rows)
    again = _batch(manifest, out)
    assert again.exit_code == 2 and "3 rows to run, 1 already done" in again.output
    after = {r["id"]: r for r in _records(out)}
    assert len(_records(out)) == 4 and after["broken"]["status"] == "ok"
    assert after["a"] == records["a"] and (out / "images" / "a.png").stat().st_mtime_ns == before
    assert after["fixed"]["key"] != records["fixed"]["key"]


def test_a_lost_record_is_redone_even_when_its_output_exists(tmp_path, example_image):
    _photos(tmp_path, example_image)
    manifest, out = _manifest(tmp_path / "m.jsonl", [_edit("a.png"), _edit("c.png")]), tmp_path / "out"
    assert _batch(manifest, out).exit_code == 0
    first = _records(out)
    reference = np.asarray(Image.open(out / "images" / "c.png"))
    (out / "results.jsonl").write_text(json.dumps(first[0]) + "\n")  # the record of c is lost
    assert (out / "images" / "c.png").exists()
    run = _batch(manifest, out)
    assert run.exit_code == 0 and "1 rows to run, 1 already done" in run.output
    assert [r["id"] for r in _records(out)] == ["a", "c"]
    assert np.array_equal(np.asarray(Image.open(out / "images" / "c.png")), reference)


def test_quiet_and_plain_progress(tmp_path, example_image):
    _photos(tmp_path, example_image)
    manifest, out = _manifest(tmp_path / "m.jsonl", [{"task": "refine", "image": "a.png", "edited": "c.png"}]), \
        tmp_path / "out"
    run = _batch(manifest, out)
    assert run.exit_code == 0 and "[1/1] a ok | 1 ok, 0 failed" in run.output and "rows/min" in run.output
    quiet = _batch(manifest, tmp_path / "out2", "--quiet")
    assert quiet.exit_code == 0 and quiet.output == ""


def test_user_errors_are_one_line(tmp_path):
    run = CliRunner().invoke(main, ["batch", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "o")])
    assert run.exit_code == 1 and run.output.strip().count("\n") == 0 and "does not exist" in run.output


def test_ray_engine_without_ray_names_the_extra(tmp_path, monkeypatch, example_image):
    _photos(tmp_path, example_image)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    manifest = _manifest(tmp_path / "m.jsonl", [_edit("a.png")])
    run = _batch(manifest, tmp_path / "out", "--engine", "ray")
    assert run.exit_code == 1 and "pip install 'spl-sdk[ray]'" in run.output
    assert run.output.strip().count("\n") == 0


@pytest.mark.slow  # a fresh interpreter imports torch and loads the backbone
def test_killing_a_run_loses_at_most_the_rows_in_flight(tmp_path, example_image):
    _photos(tmp_path, example_image)
    rows = [_edit(name, target=f"a {style} of a man", seed=i) for i, (name, style) in
            enumerate([("a.png", "painting"), ("b.png", "drawing"), ("c.png", "sketch"),
                       ("a.png", "statue")])]
    manifest, out, ref = _manifest(tmp_path / "m.jsonl", rows), tmp_path / "out", tmp_path / "ref"
    cmd = [sys.executable, "-m", "spl_sdk.cli", "batch", str(manifest), "-o", str(out), *FAST, "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    journal = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = journal.read_text().count("\n")
    assert 1 <= done_before < len(rows)

    resumed = _batch(manifest, out)
    assert resumed.exit_code == 0, resumed.output
    assert f"{done_before} already done" in resumed.output
    records = _records(out)
    assert [r["id"] for r in records] == ["a", "b", "c", "a-2"]  # every row exactly once
    assert len({r["key"] for r in records}) == 4 and all(r["status"] == "ok" for r in records)
    assert not list((out / "images").glob(".*spl-tmp"))
    assert _batch(manifest, ref).exit_code == 0  # an uninterrupted run gives the same pixels
    for r in records:
        name = Path(r["output"]).name
        assert np.array_equal(np.asarray(Image.open(out / "images" / name)),
                              np.asarray(Image.open(ref / "images" / name))), name


def test_out_of_memory_becomes_the_rows_one_line_reason(tmp_path, monkeypatch, example_image):
    import torch

    from spl_sdk.jobs.manifest import read_manifest
    from spl_sdk.jobs.worker import RowWorker

    _photos(tmp_path, example_image)
    row = read_manifest(_manifest(tmp_path / "m.jsonl", [_edit("a.png")]))[0]

    def boom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(RowWorker, "_edit", boom)
    record = RowWorker({}).process({"row": row.to_dict(), "key": "k", "config": {},
                                    "output": str(tmp_path / "o.png")})
    assert record["status"] == "error" and record["output"] is None
    assert record["error"].startswith("out of memory") and "\n" not in record["error"]


def test_the_terminal_bar_shows_rows_done_failed_and_rate():
    import io

    from spl_sdk.jobs.progress import BatchProgress

    stream = io.StringIO()
    bar = BatchProgress(3, stream=stream, tty=True)
    bar({"id": "a", "status": "ok"})
    bar({"id": "b", "status": "error", "error": "image 'b.png' does not exist; check the path."})
    bar.close()
    text = stream.getvalue()
    assert "2/3" in text and "ok=1" in text and "failed=1" in text
    assert "row/s" in text or "s/row" in text  # tqdm's rate
    assert "failed b: image 'b.png' does not exist" in text


def test_a_second_run_on_the_same_outdir_is_refused(tmp_path, example_image):
    import fcntl

    _photos(tmp_path, example_image)
    manifest, out = _manifest(tmp_path / "m.jsonl", [_edit("a.png")]), tmp_path / "out"
    out.mkdir()
    with open(out / ".spl-batch.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running spl batch holds it
        run = _batch(manifest, out)
    assert run.exit_code == 1 and "another spl batch is writing" in run.output
    assert not (out / "results.jsonl").exists()
