"""spl batch and spl eval trust only what they can check: bad manifest values are that row's error,
file-system faults one line, foreign files never replaced, resumed rows verified, eval inputs checked."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from test_hardening_parsing import batch, one_line

from spl_sdk.cli import main


def row(rid: str = "r", **kw) -> dict:
    return {"task": "refine", "id": rid, "image": "photo.png", "edited": "photo.png", **kw}


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


# ---------------------------------------------------------------- manifest values (class 4)
def test_manifest_values_become_that_rows_error(tmp_path, photo_file):
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join([json.dumps(row("good")), json.dumps(row("nul", image="pho\u0000to.png")),
                                   '{"task": "refine", "id": "big", "image": "photo.png", "edited": '
                                   '"photo.png", "seed": 1e400}',
                                   json.dumps(row("inf", seed=float("inf"))),
                                   json.dumps(row("prompt", target_prompt={"a": 1}))]))
    run = batch(manifest, tmp_path / "out")
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    got = records(tmp_path / "out")
    assert got["good"]["status"] == "ok"
    assert got["nul"]["error"] == "the image path holds a NUL byte."
    assert "seed 'inf' is not a whole number" in got["big"]["error"]
    assert "seed 'inf' is not a whole number" in got["inf"]["error"]
    assert got["prompt"]["error"] == "target_prompt must be text, not dict."
    from spl_sdk.jobs.results import Journal

    assert len(Journal(tmp_path / "out" / "results.jsonl").latest(strict=True)) == 5  # eval trusts it

    long = tmp_path / "m.csv"
    long.write_text(f"task,id,image,edited,note\nrefine,good,photo.png,photo.png,x\n"
                    f"refine,long,photo.png,photo.png,{'x' * 131_073}\n")
    run = batch(long, tmp_path / "out_csv")
    assert run.exit_code == 2, run.output
    got = records(tmp_path / "out_csv")
    assert got["good"]["status"] == "ok"
    assert got["long"]["error"] == "column 'note' holds more than 131,072 characters (csv's field limit)."

    table = pa.table({"task": ["refine", "refine"], "id": ["good", "inf"], "image": ["photo.png"] * 2,
                      "edited": ["photo.png"] * 2, "seed": [1.0, float("inf")]})
    pq.write_table(table, tmp_path / "m.parquet")
    run = batch(tmp_path / "m.parquet", tmp_path / "out_pq")
    assert run.exit_code == 2, run.output
    got = records(tmp_path / "out_pq")
    assert got["good"]["status"] == "ok" and "is not a whole number" in got["inf"]["error"]


# ---------------------------------------------------------------- file-system faults (class 5)
def test_file_system_faults_on_the_output_are_one_line(tmp_path, photo_file, monkeypatch):
    manifest = jsonl(tmp_path / "m.jsonl", [row()])
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)  # the journal replaced by a folder
    one_line(batch(manifest, out), "results.jsonl' is a folder")
    (tmp_path / "file").write_text("x")  # -o through a file
    one_line(batch(manifest, tmp_path / "file" / "out"), "cannot create the output folder", "file/out")

    real_open = Path.open

    def refuse(self, mode="r", *a, **kw):  # tests run as root: deny the journal's append by hand
        if self.name == "results.jsonl" and mode.startswith("a"):
            raise PermissionError(13, "Permission denied")
        return real_open(self, mode, *a, **kw)

    monkeypatch.setattr(Path, "open", refuse)
    one_line(batch(manifest, tmp_path / "out2"), "cannot write the log", "results.jsonl",
             "Permission denied")
    monkeypatch.undo()

    real_mkdir = Path.mkdir

    def deny(self, *a, **kw):
        if self.name == "denied":
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", deny)
    one_line(batch(manifest, tmp_path / "denied"), "cannot create the output folder", "denied",
             "Permission denied")


# ---------------------------------------------------------------- nothing overwritten (class 8)
def test_batch_never_replaces_an_image_it_did_not_write(tmp_path, photo_file):
    manifest = jsonl(tmp_path / "m.jsonl", [row("mine"), row("theirs")])
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    Image.new("RGB", (5, 5)).save(out / "images" / "theirs.png")
    run = batch(manifest, out)
    assert run.exit_code == 2, run.output
    got = records(out)
    assert got["mine"]["status"] == "ok"
    assert "already exists and was not written by spl batch" in got["theirs"]["error"]
    assert Image.open(out / "images" / "theirs.png").size == (5, 5)
    forced = batch(manifest, out, "--force")
    assert forced.exit_code == 0, forced.output
    assert records(out)["theirs"]["status"] == "ok"
    assert Image.open(out / "images" / "theirs.png").size == (24, 24)


def test_eval_never_overwrites_a_report_without_force(tmp_path, photo_file):
    from spl_sdk.errors import OutputExistsError
    from spl_sdk.metrics.report import check_report, write_rows

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,edited,target_prompt\nphoto.png,photo.png,a photo\n")
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.md").write_text("my notes")
    run = CliRunner().invoke(main, ["eval", str(pairs), "-o", str(report), "--networks", "tiny-random"])
    one_line(run, "summary.md' already exists; use --force")
    assert (report / "summary.md").read_text() == "my notes"
    check_report(["pairs"], report, force=True)  # --force lets it through
    rows = [{"id": "a", "edit_type": "all", "psnr": 1.0}]
    (report / "pairs.csv").write_text("mine")
    with pytest.raises(OutputExistsError):  # and each file is published without clobbering
        write_rows(rows, report / "pairs.csv")
    assert (report / "pairs.csv").read_text() == "mine"
    write_rows(rows, report / "pairs.csv", force=True)
    assert next(csv.DictReader((report / "pairs.csv").open()))["psnr"] == "1.0"
    assert not list(report.rglob("*.spl-tmp"))  # written through a temp file, published whole


# ---------------------------------------------------------------- verified resume (class 9)
def test_resume_redoes_outputs_it_cannot_verify(tmp_path, photo_file):
    manifest = jsonl(tmp_path / "m.jsonl", [row("a"), row("b")])
    out = tmp_path / "out"
    assert batch(manifest, out).exit_code == 0
    image_a, image_b = out / "images" / "a.png", out / "images" / "b.png"
    image_a.write_bytes(image_a.read_bytes()[:-40])  # truncated after the run
    image_b.write_bytes(b"")  # emptied
    run = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(out), "--iterations", "1"])
    assert run.exit_code == 0 and "2 rows to run, 0 already done" in run.stderr, run.output
    assert Image.open(image_a).size == Image.open(image_b).size == (24, 24)

    first = records(out)
    journal = (out / "results.jsonl").read_text()
    (out / "results.jsonl").write_text(journal.replace(str(image_a), str(photo_file)))  # points elsewhere
    image_b.write_bytes(image_a.read_bytes())  # a's output, carrying a's row key, under b's name
    run = CliRunner().invoke(main, ["batch", str(manifest), "-o", str(out), "--iterations", "1"])
    assert run.exit_code == 0 and "2 rows to run, 0 already done" in run.stderr, run.output
    again = records(out)
    assert again["a"]["output"] == str(image_a) and again["a"]["key"] == first["a"]["key"]
    from spl_sdk.imageio import read_metadata

    assert read_metadata(image_b)["row_key"] == first["b"]["key"]
    assert Image.open(photo_file).size == (24, 24)  # the file the record pointed at is untouched


# ---------------------------------------------------------------- spl eval's inputs (class 6)
def test_eval_checks_mappings_run_info_and_journal_records(tmp_path, photo_file):
    manifest, out = jsonl(tmp_path / "m.jsonl", [row("a"), row("b")]), tmp_path / "out"
    assert batch(manifest, out).exit_code == 0
    run = ["eval", str(out), "-o", str(tmp_path / "ev"), "--networks", "tiny-random", "-q"]
    info = json.loads((out / "batch.json").read_text())
    for broken in ("{not json", "[1, 2]", '{"manifest": 5}'):
        (out / "batch.json").write_text(broken)
        one_line(CliRunner().invoke(main, run), "batch.json'")
    (out / "batch.json").write_text(json.dumps(info))

    journal = (out / "results.jsonl").read_text().splitlines()
    bad = json.loads(journal[1])
    bad["index"] = "one"
    (out / "results.jsonl").write_text(journal[0] + "\n" + json.dumps(bad) + "\n")
    one_line(CliRunner().invoke(main, run), "line 2 of the journal", "'index' is str, not int")
    rerun = batch(manifest, out)  # spl batch redoes a row whose record it cannot trust
    assert rerun.exit_code == 0 and records(out)["b"]["index"] == 1

    entry = {"image_path": "a.jpg", "editing_type_id": "1", "original_prompt": "a cat",
             "editing_prompt": "a dog", "mask": [0, 4]}
    mapping = tmp_path / "mapping_file.json"
    for change, message in (({"image_path": 3}, "'image_path' must be a relative file name"),
                            ({"mask": "x"}, "'mask' must be a list of whole numbers"),
                            ({"editing_prompt": None}, "'editing_prompt' must be a text")):
        mapping.write_text(json.dumps({"a": entry | change}))
        one_line(CliRunner().invoke(main, [*run, "--pie-bench", str(mapping)]), "entry 'a' of", message)
        one_line(batch(mapping, tmp_path / "pie"), message)
    mapping.write_text(json.dumps({"a": {k: v for k, v in entry.items() if k != "editing_prompt"}}))
    one_line(CliRunner().invoke(main, [*run, "--pie-bench", str(mapping)]), "'editing_prompt' is missing")


# ---------------------------------------------------------------- smaller (class 10)
def test_refine_rows_refuse_unknown_components_as_spl_refine_does(tmp_path, photo_file):
    manifest = jsonl(tmp_path / "m.jsonl", [row("typo", options={"nosuch": {"x": 1}})])
    run = batch(manifest, tmp_path / "out")
    assert run.exit_code == 2, run.output
    assert "unknown component 'nosuch'" in records(tmp_path / "out")["typo"]["error"]
    single = CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(tmp_path / "o.png"),
                                       "--option", "nosuch.x=1"])
    one_line(single, "unknown component 'nosuch'")


def test_sigterm_stops_a_batch_with_143(tmp_path, photo_file, monkeypatch):
    from spl_sdk.cli.signals import Terminated

    def stopped(*_a, **_k):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr("spl_sdk.jobs.runner.run_batch", stopped)
    run = batch(jsonl(tmp_path / "m.jsonl", [row()]), tmp_path / "out")
    assert run.exit_code == 128 + signal.SIGTERM == 143
    assert run.stderr.startswith("Stopped by SIGTERM; the rows finished so far are recorded")


def test_a_bad_file_value_is_refused_even_when_a_flag_overrides_it(tmp_path, photo_file):
    config = tmp_path / "c.json"
    config.write_text('{"iterations": 0, "color_loss": "cpl"}')
    run = CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(tmp_path / "o.png"),
                                    "--config", str(config), "--iterations", "2"])
    one_line(run, "c.json: invalid configuration: 'iterations' = 0")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("secret", ["sk-proj-Abc123def456GHI789jkl", "hf_AbCdEfGhIjKlMnOpQrStUvWx"])
def test_a_secret_typed_into_a_plain_option_is_not_echoed(tmp_path, photo_file, secret):
    for option in (f"spl.radius={secret}", secret):
        run = CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(tmp_path / "o.png"),
                                        "--option", option])
        line = one_line(run)
        assert secret not in line and "***" in line
    flag = CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(tmp_path / "o.png"),
                                     "--iterations", secret, "--solver", secret])
    assert flag.exit_code == 2 and secret not in flag.output and "'***'" in flag.output
    config = tmp_path / "c.yaml"
    config.write_text(f"iterations: {secret}\n")
    run = CliRunner().invoke(main, ["refine", str(photo_file), str(photo_file), "-o", str(tmp_path / "o.png"),
                                    "--config", str(config)])
    line = one_line(run, "'iterations' = ***")
    assert secret not in line


def test_csv_reader_limit_is_restored(tmp_path):
    """The CSV reader lifts csv's field limit only while it reads (it is process-wide)."""
    from spl_sdk.jobs.manifest import read_manifest

    before = csv.field_size_limit()
    path = tmp_path / "m.csv"
    path.write_text("image,source_prompt,target_prompt\na.png,x,y\n")
    read_manifest(path)
    assert csv.field_size_limit() == before


def test_a_key_in_a_manifest_row_is_not_copied_into_the_results(tmp_path, photo_file):
    key = "sk-row-secret-5b2e7f01c9d3"
    manifest = jsonl(tmp_path / "m.jsonl", [row(image="missing.png", options={"openai": {"api_key": key, "model": "m"}})])
    run = batch(manifest, tmp_path / "out")
    assert run.exit_code == 2, run.output
    rec = records(tmp_path / "out")["r"]
    assert rec["status"] == "error" and rec["options"] == {"openai": {"api_key": "***", "model": "m"}}
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and not any(key.encode() in p.read_bytes() for p in written)
