"""Configuration: docs/method.md section 7 defaults, ranges, files in three formats, overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spl_sdk.config import EditConfig, RefineConfig, build_config, field_help, read_config_file
from spl_sdk.errors import ConfigError

# docs/method.md section 7, one row per table line: the pipeline's own fields
METHOD_DEFAULTS = {
    "seed": 0,
    "opt_start": 0.8,
    "structure_loss": "spl", "structure_area": "whole",  # weights: the losses' default_weight
    "color_loss": None, "color_area": "whole",
    "iterations": 100,
    "post_process": True,
}
# ... and those of the components that own them (the edit leaves them None until its plan)
OWNED_DEFAULTS = [
    ("method", "infedit", "steps", 15), ("method", "infedit", "source_guidance", 1.0),
    ("method", "infedit", "target_guidance", 2.0),
    ("attention", "unified", "cross_replace", 0.8), ("attention", "unified", "self_replace", 0.8),
    ("mask-extractor", "cross-attention", "threshold_source", 0.5), ("mask-extractor", "cross-attention", "threshold_target", 0.5),
    ("mask-extractor", "cross-attention", "invert_source", False), ("mask-extractor", "cross-attention", "invert_target", False),
]


@pytest.mark.parametrize("name, value", METHOD_DEFAULTS.items())
def test_design_defaults(name: str, value: object) -> None:
    assert getattr(EditConfig(), name) == value
    if name in RefineConfig.model_fields:
        assert getattr(RefineConfig(), name) == value


@pytest.mark.parametrize("kind, name, field, value", OWNED_DEFAULTS)
def test_design_defaults_of_the_owning_components(plugins, tiny_backbone, kind: str, name: str,
                                                  field: str, value: object) -> None:
    cls = plugins.get(kind, name)
    if kind == "method":  # steps and guidance: the method's sampling, filled in by the plan
        assert getattr(cls().sampling(tiny_backbone), field) == value
        assert getattr(EditConfig(), field) is None
    else:
        assert getattr(cls.Options(), field) == value


def test_every_field_is_described() -> None:
    for cls in (RefineConfig, EditConfig):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"
            assert "[default:" in field_help(cls, name)


@pytest.mark.parametrize("name, value, allowed", [
    ("structure_weight", -1.0, "0 to 1e+08"),
    ("color_weight", -0.5, "0 to 1e+08"),
    ("opt_start", 2.0, "0 to 1"),
    ("steps", 0, "1 to 200"),
    ("iterations", 0, "1 to 10000"),
    ("target_guidance", 31.0, "0 to 30"),
    ("working_size", 4096, "64 to 2048"),
])
def test_out_of_range_names_field_and_range(name: str, value: float, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(EditConfig, **{name: value})
    message = str(info.value)
    assert f"'{name}'" in message and allowed in message and "\n" not in message


def test_choices_and_multiples_are_named() -> None:
    with pytest.raises(ConfigError, match="'solver'.*'fast', 'reference' or 'pyramid'"):
        build_config(RefineConfig, solver="slow")
    with pytest.raises(ConfigError, match="'structure_area'.*'whole' or 'masked'"):
        build_config(RefineConfig, structure_area="inside")
    with pytest.raises(ConfigError, match="'working_size'.*multiple of 8"):
        build_config(EditConfig, working_size=500)


def test_none_words_turn_a_loss_off() -> None:
    assert build_config(RefineConfig, structure_loss="none").structure_loss is None
    assert build_config(RefineConfig, color_loss="off").color_loss is None


def _write(tmp_path: Path, suffix: str) -> Path:
    text = {
        ".json": json.dumps({"structure_weight": 500, "iterations": 7, "color_loss": "cpl"}),
        ".yaml": "structure_weight: 500\niterations: 7\ncolor_loss: cpl\n",
        ".toml": 'structure_weight = 500\niterations = 7\ncolor_loss = "cpl"\n',
    }[suffix]
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_file_formats_load(tmp_path: Path, suffix: str) -> None:
    cfg = build_config(RefineConfig, _write(tmp_path, suffix))
    assert (cfg.structure_weight, cfg.iterations, cfg.color_loss) == (500.0, 7, "cpl")
    assert cfg.solver == "fast"  # untouched fields keep their defaults


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_overrides_beat_the_file_and_none_means_not_given(tmp_path: Path, suffix: str) -> None:
    cfg = build_config(RefineConfig, _write(tmp_path, suffix), iterations=3, structure_weight=None)
    assert cfg.iterations == 3 and cfg.structure_weight == 500.0


def test_unknown_field_is_rejected_in_file_and_options(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("structure_wieght: 5\n")
    for cls in (RefineConfig, EditConfig):
        with pytest.raises(ConfigError, match="typo.yaml: unknown key 'structure_wieght'; did you mean "
                                              "'structure_weight'"):
            build_config(cls, path)
    with pytest.raises(ConfigError, match="unknown field 'bogus'"):
        build_config(RefineConfig, bogus=1)


def test_refine_reads_an_edit_config_file(tmp_path: Path) -> None:
    path = tmp_path / "edit.toml"
    path.write_text('steps = 20\nstructure_weight = 42\n')
    assert build_config(RefineConfig, path).structure_weight == 42.0  # edit-only 'steps' ignored
    assert build_config(EditConfig, path).steps == 20


@pytest.mark.parametrize("name, text, match", [
    ("bad.json", "{not json", "not valid JSON"),
    ("bad.yaml", "a: [1, 2\n", "not valid YAML"),
    ("bad.toml", "a = = 1\n", "not valid TOML"),
    ("run.ini", "[x]\n", r"\.json, \.yaml, \.yml or \.toml"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
])
def test_bad_files_raise_config_error(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        read_config_file(path)
    assert name in str(info.value)


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_config(RefineConfig, tmp_path / "absent.json")


def test_bad_value_in_file_is_rejected_with_range(tmp_path: Path) -> None:
    path = tmp_path / "neg.json"
    path.write_text('{"color_weight": -3}')
    with pytest.raises(ConfigError, match=r"'color_weight' = -3.*0 to 1e\+08"):
        build_config(RefineConfig, path)


def test_steps_beyond_original_steps_are_left_to_the_backbone():
    # steps <= original_steps is an LCM rule: the LCM backbone's schedule refuses it (test_editor.py)
    assert build_config(EditConfig, steps=60).steps == 60
    cfg = build_config(EditConfig, backbone="tiny-random-sd15", steps=60, original_steps=100)
    assert cfg.options == {"backbone/tiny-random-sd15": {"original_steps": 100}}  # the backbone's option


def test_reweight_text_from_the_cli_and_app_is_parsed_by_the_config():
    cfg = build_config(EditConfig, attention="p2p-reweight", reweight="red=2, big = 0.5")
    assert cfg.options == {"attention/p2p-reweight": {"reweight": {"red": 2.0, "big": 0.5}}}
    with pytest.raises(ConfigError, match="word=factor"):
        build_config(EditConfig, reweight="red")


@pytest.mark.parametrize(("field", "old", "new"), [
    ("backbone", "tiny-random", "tiny-random-sd15"), ("backbone", "sd15-random", "random-sd15"),
    ("backbone", "sdxl-random", "random-sdxl"), ("attention", "infedit", "unified")])
def test_names_0_1_used_are_read_and_recorded_as_today_s(field, old, new) -> None:
    assert getattr(EditConfig(**{field: old}), field) == new


def test_options_keys_of_renamed_kinds_and_components_are_recorded_as_today_s() -> None:
    cfg = EditConfig(options={"attention/infedit": {"self_replace": 0.5}, "mask/file": {"x": 1},
                              "postprocess/loss-refine": {"y": 2}, "tiny-random": {"z": 3}})
    assert cfg.options == {"attention/unified": {"self_replace": 0.5}, "mask-extractor/file": {"x": 1},
                           "post-processor/loss-refine": {"y": 2}, "tiny-random-sd15": {"z": 3}}
