"""No result is lost or clobbered: clashing outputs refused before work, writability checked before
the model loads, never-overwrite holds under a race, SIGTERM/SIGHUP clean up, batches resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from test_cli_harmonize import FAST, make_pair, records

from spl_sdk import imageio
from spl_sdk.cli import main
from spl_sdk.errors import ImageError, OutputExistsError


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (120, 60, 30)).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model would load: every check must come before it."""
    from spl_sdk.editor import Editor

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(Editor, "from_config", boom)


def _edit(photo: Path, *args: str):
    return CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a red photo",
                                     "--backbone", "tiny-random-sd15", *args])


def test_save_mask_equal_to_output_is_refused_before_work(tmp_path, photo, no_model):
    out = tmp_path / "out.png"
    result = _edit(photo, "-o", str(out), "--save-mask", str(tmp_path / "sub" / ".." / "out.png"))
    assert result.exit_code == 1
    assert "-o" in result.stderr and "are the same file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_same_file_through_symlink_and_hard_link(tmp_path, photo, no_model):
    out = tmp_path / "out.png"
    (tmp_path / "link.png").symlink_to(out)  # dangling until out is written
    result = _edit(photo, "-o", str(out), "--save-mask", str(tmp_path / "link.png"), "--force")
    assert result.exit_code == 1 and "are the same file" in result.stderr
    Image.new("RGB", (2, 2)).save(out)
    os.link(out, tmp_path / "hard.png")
    result = _edit(photo, "-o", str(out), "--save-mask", str(tmp_path / "hard.png"), "--force")
    assert result.exit_code == 1 and "are the same file" in result.stderr
    assert imageio.same_file(out, tmp_path / "hard.png")
    assert not imageio.same_file(out, tmp_path / "other.png")


def test_unwritable_output_is_refused_before_the_model_loads(tmp_path, photo, no_model):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _edit(photo, "-o", str(tmp_path / "o.png"), "--save-mask", str(blocker / "m.png"))
    assert result.exit_code == 1 and "is a file, not a folder" in result.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders; test_probe_failure_is_one_line covers "
                           "the refusal there by failing the write probe")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(ImageError, match="is not writable"):
        imageio.check_output(folder / "o.png")


def test_probe_failure_is_one_line(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kw):
        if ".spl-probe-" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ImageError, match="folder .* is not writable \\(Permission denied\\)"):
        imageio.check_output(tmp_path / "deep" / "o.png")
    assert not (tmp_path / "deep").exists()  # the check creates nothing


def test_publish_never_overwrites_without_force(tmp_path):
    a, b, final = tmp_path / "a", tmp_path / "b", tmp_path / "final.png"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    imageio.publish(a, final)
    with pytest.raises(OutputExistsError, match="appeared while writing"):
        imageio.publish(b, final)
    assert final.read_bytes() == b"first" and not a.exists()
    imageio.publish(b, final, force=True)
    assert final.read_bytes() == b"second"


def test_racing_writers_only_one_wins(tmp_path):
    final = tmp_path / "race.png"
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    real_save = Image.Image.save

    def slow_save(img, fp, *a, **kw):  # every writer passes the up-front check before any publishes
        barrier.wait(timeout=10)
        return real_save(img, fp, *a, **kw)

    def write(i: int) -> None:
        try:
            imageio.save_image(Image.new("RGB", (4, 4), (i * 40, 0, 0)), final)
            outcomes.append(f"ok{i}")
        except OutputExistsError:
            outcomes.append("exists")

    Image.Image.save = slow_save
    try:
        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        Image.Image.save = real_save
    assert sorted(outcomes)[:5] == ["exists"] * 5 and len(outcomes) == 6
    winner = int([o for o in outcomes if o.startswith("ok")][0][2:])
    assert Image.open(final).getpixel((0, 0)) == (winner * 40, 0, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["race.png"]  # no temp files left


_SLOW_WRITE = """
import signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal, even when the tests run under nohup
from PIL import Image
real = Image.Image.save
def slow(self, fp, *a, **k):
    real(self, fp, *a, **k)
    print("WRITING", flush=True)
    time.sleep(30)
Image.Image.save = slow
from spl_sdk.cli import main
sys.argv = ["spl", "refine", sys.argv[1], sys.argv[1], "-o", sys.argv[2], "--iterations", "1"]
main()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP exists on POSIX only")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_signals_remove_the_temp_file(tmp_path, photo, sig):
    out = tmp_path / "out" / "r.png"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(photo), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.stdout.readline().strip() != "WRITING":
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        assert [p.name for p in out.parent.iterdir()][0].endswith(".spl-tmp")  # mid-write
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + getattr(signal, sig)
    assert f"Stopped by {sig}; no unfinished output was written." in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP exists on POSIX only")
def test_a_command_started_under_nohup_keeps_ignoring_sighup():
    code = ("import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
            "from spl_sdk.cli.signals import exit_cleanly_on_signals; exit_cleanly_on_signals(); "
            "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, "
            "signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_batch_resumes_when_the_record_was_lost(tmp_path):
    # spl harmonize COMPOSITES MASKS runs as spl batch rows: its own output, whose record was lost
    # (killed after writing b.png), is recognized by its metadata and redone in place, no --force
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "b", "cats.png", "woman.png", size=(64, 48))
    args = ["harmonize", str(comps), str(masks), "-o", str(out), *FAST]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = records(out)["b"]
    (out / "results.jsonl").write_text("")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "1 ok, 0 failed, 0 skipped" in again.stderr
    rec = records(out)["b"]
    assert rec["status"] == "ok" and rec["key"] == first["key"] and rec["output"] == first["output"]
    assert rec["source_prompt"] == first["source_prompt"]
    assert "1 skipped" in CliRunner().invoke(main, args).stderr  # and now it is done


def test_batch_never_clobbers_a_foreign_file(tmp_path):
    comps, masks, out = tmp_path / "c", tmp_path / "m", tmp_path / "out"
    make_pair(comps, masks, "a", "woman.png", "cats.png", size=(64, 48))
    (out / "images").mkdir(parents=True)
    Image.new("RGB", (5, 5)).save(out / "images" / "a.png")
    run = CliRunner().invoke(main, ["harmonize", str(comps), str(masks), "-o", str(out), *FAST])
    assert run.exit_code == 1
    rec = records(out)["a"]
    assert rec["status"] == "error" and "was not written by spl batch for this row" in rec["error"]
    assert Image.open(out / "images" / "a.png").size == (5, 5)
