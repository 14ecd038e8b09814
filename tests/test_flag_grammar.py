"""One flag grammar: repeated and comma lists, one spelling per concept, kebab keys, grouped help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spl_sdk.cli import main
from spl_sdk.cli.plugins import format_table
from spl_sdk.config import EditConfig, RefineConfig, build_config
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import read_metadata


def test_list_flags_repeat_and_split_on_commas(tmp_path, example_image) -> None:
    photo = tmp_path / "p.png"
    example_image.resize((64, 64)).save(photo)
    run = CliRunner().invoke(main, [
        "edit", str(photo), "-s", "a photo of a man with a hat", "-t", "a painting of a man", "-o",
        str(tmp_path / "o.png"), "--backbone", "tiny-random-sd15", "--working-size", "64", "--steps", "1",
        "--iterations", "1", "--structure-area", "masked", "-q",
        "--mask-words-source", "man", "--mask-words-source", "hat,photo"])
    assert run.exit_code == 0, run.output
    config = read_metadata(tmp_path / "o.png")["config"]
    assert config["options"]["cross-attention"]["words_source"] == ["man", "hat", "photo"]  # the option


def test_deprecated_spellings_still_work_and_are_hidden(tmp_path, example_image) -> None:
    photo = tmp_path / "p.png"
    example_image.resize((32, 32)).save(photo)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "r.png"),
                                    "--iters", "2", "-q"])
    assert run.exit_code == 0, run.output
    assert "--iters is deprecated; use --iterations" in run.stderr
    assert read_metadata(tmp_path / "r.png")["config"]["iterations"] == 2
    for command, old in (("refine", "--iters"), ("harmonize", "--backbone-model"), ("edit", "--post-processor ")):
        shown = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
        assert old not in shown, (command, old)
    for command in ("edit", "harmonize"):  # the weights of the backbone: one spelling everywhere
        assert "--model" in CliRunner().invoke(main, [command, "--help"], terminal_width=200).output


def test_config_files_take_the_flag_spelling_and_name_a_typo(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("working-size: 256\nmask-words-source: [cat]\nstructure_weight: 5\n")
    cfg = build_config(EditConfig, good)
    assert (cfg.working_size, cfg.structure_weight) == (256, 5)
    assert cfg.options == {"mask-extractor/cross-attention": {"words_source": ["cat"]}}  # an old key: the option
    assert build_config(RefineConfig, good).structure_weight == 5  # edit keys dropped by refine
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"workin-size": 256}))
    with pytest.raises(ConfigError, match="unknown key 'workin-size'; did you mean 'working-size'\\?"):
        build_config(EditConfig, bad)


def test_help_is_grouped_into_sections_with_examples() -> None:
    shown = CliRunner().invoke(main, ["edit", "--help"], terminal_width=120).output
    for title in ("Input/output", "Losses", "Model", "Sampling", "Attention", "Masks", "Examples:"):
        assert title in shown, title
    assert shown.index("Masks") < shown.index("--mask-words-source") < shown.index("Examples:")
    assert shown.count("spl edit photo.png") >= 2
    assert "Examples:" in CliRunner().invoke(main, ["refine", "--help"]).output


@pytest.mark.parametrize(("command", "panels"), [
    ("batch", ("Input/output", "Engine", "Losses", "Model", "Sampling", "Masks")),
    ("eval", ("Input/output", "Scoring", "Model"))])
def test_batch_and_eval_help_are_grouped_with_examples(command: str, panels: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(main, [command, "--help"], terminal_width=120).output
    for title in (*panels, "Examples:"):
        assert f"─ {title} " in shown or title == "Examples:" and title in shown, title
    assert shown.count(f"spl {command} ") >= 3 and shown.index("Examples:") > shown.index("--output")


@pytest.mark.parametrize("width", [50, 80, 140])
def test_plugins_table_fits_the_terminal(width: int) -> None:
    rows = [{"name": "lcm-dreamshaper-v7", "kind": "attention controller", "package": "spl-sdk",
             "version": "0.1.0", "summary": "A long summary " * 8}]
    table = format_table(rows, width=width)
    assert max(len(line) for line in table.splitlines()) < width
    assert "A long summary" in table
