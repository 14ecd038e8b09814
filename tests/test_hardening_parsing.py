"""Deep nesting, YAML alias bombs and text that is not UTF-8 give one line wherever text is parsed:
config files, --option values, PNG metadata, manifests, the batch journal and spl eval's inputs."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, PngImagePlugin

from spl_sdk.cli import main
from spl_sdk.config import RefineConfig, build_config
from spl_sdk.errors import ConfigError

DEEP = "[" * 5000 + "]" * 5000  # past the parsers' recursion limit
NESTED = "[" * 40 + "]" * 40  # parses, but deeper than any input needs
# 'billion laughs' in a real field: nine levels of nine aliases expand to 9**9 values from 600 bytes
BOMB = "options:\n  spl:\n    radius: [&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(
    f"&{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)) + "]\n"

def one_line(result, *needles: str) -> str:
    """The only line on stderr, after checking the exit status and that it holds ``needles``."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def refine(photo_file: Path, *args: str):
    return CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(photo_file.parent / "o.png"),
                                     "--iterations", "1", "-q", *args])


def batch(manifest: Path, out: Path, *args: str):
    return CliRunner().invoke(main, ["batch", str(manifest), "-o", str(out), "--iterations", "1", "-q", *args])


def refine_row(tmp_path: Path, photo_file: Path, **kw) -> dict:
    return {"task": "refine", "id": "r", "image": str(photo_file), "edited": str(photo_file), **kw}


@pytest.mark.parametrize(("suffix", "text"), [
    (".json", '{"iterations": ' + DEEP + "}"), (".json", '{"iterations": ' + NESTED + "}"),
    (".yaml", "iterations: " + DEEP), (".toml", "iterations = " + DEEP)])
def test_deep_config_files_are_one_line(tmp_path, photo_file, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    one_line(refine(photo_file, "--config", str(path)), f"config file '{path}' is nested more than 32 levels")
    assert not (tmp_path / "o.png").exists()


def test_a_deep_option_value_is_one_line(photo_file):
    one_line(refine(photo_file, "--option", "spl.radius=" + DEEP), "--option value is nested more than")


def test_deep_png_metadata_is_not_a_configuration(tmp_path, photo_file):
    for text in ('{"config": {"iterations": ' + DEEP + "}}", '{"config": {"options": ' + NESTED + "}}"):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("spl_sdk", text)
        Image.new("RGB", (8, 8)).save(tmp_path / "r.png", pnginfo=info)
        one_line(refine(photo_file, "--config", str(tmp_path / "r.png")), "carries no spl-sdk configuration")


def test_yaml_alias_bombs_are_refused_before_validation(tmp_path, photo_file):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="expands its YAML aliases .* past 10,000 values"):
            build_config(RefineConfig, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # bounded: the aliases are counted, never expanded
    one_line(refine(photo_file, "--config", str(path)), "expands its YAML aliases")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(refine_row(tmp_path, photo_file)))
    one_line(batch(manifest, tmp_path / "out", "--config", str(path)), "expands its YAML aliases")
    path.write_text("options: {spl: {radius: &a [1, *a]}}\n")  # an alias inside itself
    with pytest.raises(ConfigError, match="alias that contains itself"):
        build_config(RefineConfig, path)
    path.write_text("color_loss: &c cpl\nstructure_loss: *c\n")  # ordinary aliases still work
    assert build_config(RefineConfig, path).structure_loss == "cpl"


def test_deep_or_undecodable_manifest_lines_are_one_line(tmp_path, photo_file):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(refine_row(tmp_path, photo_file)) + "\n" + '{"options": ' + DEEP + "}\n")
    one_line(batch(manifest, tmp_path / "out"), "line 2 is nested more than 32 levels")
    manifest.write_bytes(json.dumps(refine_row(tmp_path, photo_file)).encode() + b'\n{"id": "caf\xe9"}\n')
    one_line(batch(manifest, tmp_path / "out"), "line 2 is not valid UTF-8 text (byte 11)")
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_bytes(b"task,image,edited,id\nrefine,photo.png,photo.png,caf\xe9\n")
    one_line(batch(csv_manifest, tmp_path / "out"), f"manifest '{csv_manifest}' is not valid UTF-8")


def test_a_deep_options_column_is_that_rows_error(tmp_path, photo_file):
    manifest = tmp_path / "m.csv"
    manifest.write_text("task,id,image,edited,options\nrefine,good,photo.png,photo.png,\n"
                        f"refine,deep,photo.png,photo.png,{DEEP}\n")
    run = batch(manifest, tmp_path / "out")
    assert run.exit_code == 2, run.output
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "results.jsonl").read_text().splitlines())}
    assert records["good"]["status"] == "ok"
    assert records["deep"]["error"] == "the options column must hold a JSON object."


def test_damaged_journal_lines_are_redone_not_fatal(tmp_path, photo_file):
    manifest, out = tmp_path / "m.jsonl", tmp_path / "out"
    manifest.write_text(json.dumps(refine_row(tmp_path, photo_file)))
    assert batch(manifest, out).exit_code == 0
    journal = out / "results.jsonl"
    (record,) = map(json.loads, journal.read_text().splitlines())
    journal.write_bytes(b"\xff\xfe" + journal.read_bytes()[2:] + ('{"key": ' + DEEP + "}\n").encode())
    again = batch(manifest, out)
    assert again.exit_code == 0 and again.stderr == "", again.output
    (redone,) = map(json.loads, journal.read_text().splitlines())
    assert redone["key"] == record["key"] and redone["status"] == "ok"


def test_eval_inputs_that_are_not_utf8_or_too_deep(tmp_path, photo_file):
    out = tmp_path / "out"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(refine_row(tmp_path, photo_file)))
    assert batch(manifest, out).exit_code == 0
    run = ["eval", str(out), "-o", str(tmp_path / "ev"), "--networks", "tiny-random", "-q"]
    (out / "batch.json").write_bytes(b'{"manifest": "caf\xe9"}')
    one_line(CliRunner().invoke(main, run), "batch.json' is not valid UTF-8 text")
    (out / "batch.json").write_text('{"manifest": ' + DEEP + "}")
    one_line(CliRunner().invoke(main, run), "batch.json' is nested more than 32 levels")
    (out / "batch.json").unlink()
    journal = (out / "results.jsonl").read_bytes()
    (out / "results.jsonl").write_bytes(b'{"id": "caf\xe9"}\n' + journal + b'{"key": "cut off')
    one_line(CliRunner().invoke(main, run), "line 1 of", "is not valid UTF-8 text (byte 11)")
    (out / "results.jsonl").write_bytes(journal + b'{"key": "cut off')  # a crash mid-line is skipped
    from spl_sdk.jobs.results import Journal

    assert len(Journal(out / "results.jsonl").latest(strict=True)) == 1
    mapping = tmp_path / "mapping_file.json"
    mapping.write_bytes(b'{"1": {"image_path": "caf\xe9.jpg"}}')
    one_line(CliRunner().invoke(main, [*run, "--pie-bench", str(mapping)]), "mapping file", "not valid UTF-8")
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes(b"image,edited,target_prompt\nphoto.png,photo.png,caf\xe9\n")
    one_line(CliRunner().invoke(main, ["eval", str(pairs), "-o", str(tmp_path / "ev2"), "--networks",
                                       "tiny-random"]), "is not valid UTF-8")


def test_any_recursion_error_left_is_still_one_line(photo_file, monkeypatch):
    """The last guard: a RecursionError from code that does not parse through spl_sdk.parsing."""
    import spl_sdk.refiner

    def deep(*_a, **_k):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(spl_sdk.refiner, "refine", deep)
    one_line(refine(photo_file), "nested too deeply to read")
