"""The Streamlit studio driven by AppTest: controls from EditConfig, uploads, edits, examples, harmonize."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from streamlit.testing.v1 import AppTest

from spl_apps import compare
from spl_apps.examples import EXAMPLES
from spl_sdk.config import EditConfig

STUDIO = Path(__file__).resolve().parents[1] / "apps" / "studio.py"
METHOD_DEFAULTS = {  # docs/method.md section 7, as the user first sees them
    "seed": 0, "opt_start": 0.8, "structure_weight": None, "structure_area": "whole",
    "color_weight": None, "color_area": "whole", "iterations": 100, "post_process": True,
}
# the method's settings: empty boxes, which the method fills (infedit 15 steps, guidance 1 / 2)
METHOD_OWNED = ("steps", "source_guidance", "target_guidance")
# the mask extractor's own options, drawn beside its choice (docs/method.md section 7)
MASK = "opt.mask-extractor/cross-attention."
MASK_DEFAULTS = {"words_source": "", "threshold_source": 0.5, "threshold_target": 0.5,
                 "invert_source": False, "invert_target": False}
FAST = {"cfg.backbone": "tiny-random-sd15", "cfg.working_size": 128, "cfg.steps": 2, "cfg.iterations": 3}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a missing model fails at once instead of retrying
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def png(size: tuple[int, int] = (128, 96), seed: int = 0) -> bytes:
    """A small photo-like PNG: smooth gradients plus a bright disc (edges to keep)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = ((x - w * 0.6) ** 2 + (y - h * 0.5) ** 2 < (h * 0.25) ** 2).astype(np.float32)
    rgb = np.stack([x / w, y / h, 0.5 + 0.5 * disc], -1) * 255
    rgb += np.random.default_rng(seed).normal(0, 4, rgb.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def mask_png(size: tuple[int, int] = (128, 96)) -> bytes:
    """White rectangle on black: the pasted object of a composite."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    return buf.getvalue()


def start() -> AppTest:
    at = AppTest.from_file(str(STUDIO), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def settle(at: AppTest, values: dict) -> AppTest:
    """Set widgets by key, then rerun once."""
    for k, v in values.items():
        at.get_by_key(k).set_value(v)
    return at.run()


def messages(at: AppTest) -> str:
    return " | ".join(str(e.value) for e in [*at.error, *at.exception])


def result_metadata(at: AppTest, slot: str) -> dict:
    out = at.session_state[f"{slot}.result"]
    return json.loads(Image.open(io.BytesIO(out.png)).info["spl_sdk"])


# ------------------------------------------------------------------ controls
def test_controls_have_editconfig_defaults_ranges_and_help() -> None:
    at = start()
    fields = EditConfig.model_fields
    defaults = EditConfig()
    # mask widgets appear only once a masked area is chosen
    with pytest.raises(KeyError):
        at.get_by_key(MASK + "words_source")
    seen = {}
    for name, info in fields.items():
        if name.startswith("mask_") or name == "options":  # options: one widget per option below
            continue
        w = at.get_by_key(f"cfg.{name}")
        # a weight's help adds the chosen loss's own default (the field's text names spl's and cpl's)
        assert w.help == info.description or name.endswith("_weight") and w.help.startswith(
            info.description), name
        seen[name] = w.value
        for meta in info.metadata:  # ranges come from the pydantic metadata
            if hasattr(meta, "ge") and hasattr(w, "min"):
                assert float(w.min) == float(meta.ge), name
            if hasattr(meta, "le") and hasattr(w, "max"):
                assert float(w.max) == float(meta.le), name
    for name, value in METHOD_DEFAULTS.items():
        if name in seen:
            assert seen[name] == value, name
    for name in METHOD_OWNED:
        assert seen[name] is None and getattr(defaults, name) is None, name
    assert seen["structure_loss"] == defaults.structure_loss == "spl"
    assert at.toggle(key="cfg.structure_loss.on").value is True
    assert at.toggle(key="cfg.color_loss.on").value is (defaults.color_loss is not None) is False
    assert seen["backbone"] == defaults.backbone and seen["working_size"] == defaults.working_size
    assert seen["model"] == "" and defaults.model is None
    # choosing a masked area shows the extractor's words, thresholds and inverts with their defaults
    at = settle(at, {"cfg.structure_area": "masked"})
    for name, value in MASK_DEFAULTS.items():
        assert at.get_by_key(MASK + name).value == value, name
    assert at.get_by_key("cfg.mask_extractor").value == defaults.mask_extractor
    from spl_masks.extractors import CrossAttentionMask

    assert at.get_by_key(MASK + "words_target").help == \
        CrossAttentionMask.Options.model_fields["words_target"].description
    # and back: hidden again
    at = settle(at, {"cfg.structure_area": "whole"})
    with pytest.raises(KeyError):
        at.get_by_key(MASK + "threshold_target")


def test_plugin_choices_come_from_the_plugin_manager() -> None:
    from spl_sdk.plugins import Plugins

    plugins = Plugins()
    at = start()
    for key, kind in (("cfg.backbone", "backbone"), ("cfg.attention", "attention"),
                      ("cfg.structure_loss", "loss")):
        assert set(plugins.names(kind)) <= set(at.selectbox(key=key).options), key
    # post-processors: a pick-list of the installed ones, in the order picked
    picker = at.multiselect(key="cfg.post_processors")
    assert picker.value == ["loss-refine"] and set(picker.options) == set(plugins.names("post-processor"))
    assert "tiny-random-sd15" in at.selectbox(key="cfg.backbone").options
    at = settle(at, {"page": "Harmonize"})
    options = at.selectbox(key="harm.harmonizer").options
    assert [o.split(" — ")[0] for o in options] == plugins.names("harmonizer")
    assert at.selectbox(key="harm.harmonizer").value == "offline"


def test_weight_field_shows_the_chosen_losses_own_default() -> None:
    from spl_sdk.plugins import Plugins

    plugins = Plugins()
    at = start()
    weight = at.number_input(key="cfg.structure_weight")
    assert weight.value is None and weight.proto.placeholder.startswith("10000 (spl")
    assert weight.max == EditConfig.model_fields["structure_weight"].metadata[-1].le  # the whole range
    at = settle(at, {"cfg.structure_loss": "tv"})  # the example third-party plug-in
    tv_default = plugins.loss_term("tv").default_weight
    weight = at.number_input(key="cfg.structure_weight")
    assert weight.proto.placeholder == f"{tv_default:g} (tv's default)"
    assert f"Empty: {tv_default:g}, the default of 'tv'" in weight.help
    at = settle(at, {"cfg.structure_weight": 1e7})  # far beyond a slider's useful range
    assert at.number_input(key="cfg.structure_weight").value == 1e7 and not at.error


def test_options_and_attention_settings_only_for_components_in_use() -> None:
    at = start()
    at = settle(at, {"cfg.backbone": "tiny-random-sd15"})  # its default method, infedit, uses attention
    assert at.slider(key="opt.attention/unified.blend_threshold").value == 0.3
    assert at.get_by_key("opt.attention/unified.cross_replace") is not None  # the controller's option
    at = settle(at, {"cfg.method": "flowedit"})  # FlowEdit drives no attention controller
    for hidden in ("opt.attention/unified.blend_threshold", "opt.attention/unified.cross_replace"):
        with pytest.raises(KeyError):
            at.get_by_key(hidden)
    assert any("uses no attention control" in str(c.value) for c in at.sidebar.caption)
    assert "attention controller" not in " ".join(str(m.value) for m in at.sidebar.markdown)
    at = settle(at, {"cfg.method": ""})  # back to the default method: the settings come back
    assert at.slider(key="opt.attention/unified.blend_threshold").value == 0.3


def test_option_widgets_come_from_the_selected_components_options() -> None:
    from spl_sdk.plugins import Plugins

    plugins = Plugins()
    at = start()
    spl_radius = at.number_input(key="opt.loss/spl.radius")
    info = plugins.loss_term("spl").Options.model_fields["radius"]
    assert (spl_radius.value, spl_radius.min, spl_radius.max) == (5, 1, 64)
    assert spl_radius.help == info.description
    # a profile's value is named where the widget keeps the component's default
    residual = at.get_by_key("opt.loss/spl.residual")
    assert residual.value == "centered"
    assert residual.help.endswith("Profile paper uses 'expanded' while this stays at its default.")
    assert at.slider(key="opt.attention/unified.blend_threshold").value == 0.3
    with pytest.raises(KeyError):  # no masked area: the mask extractor is not used
        at.get_by_key("opt.mask-extractor/cross-attention.eps")
    at = settle(at, {"cfg.structure_area": "masked"})
    assert at.number_input(key="opt.mask-extractor/cross-attention.eps").value == pytest.approx(1e-2)
    # a changed value survives hiding its component and comes back
    at = settle(at, {"opt.mask-extractor/cross-attention.eps": 1e-3, "cfg.structure_area": "whole"})
    at = settle(at, {"cfg.structure_area": "masked"})
    assert at.number_input(key="opt.mask-extractor/cross-attention.eps").value == pytest.approx(1e-3)
    # loading an example puts every setting, options included, back to its default
    at.button(key="example.marshmallow").click().run()
    assert at.number_input(key="opt.mask-extractor/cross-attention.eps").value == pytest.approx(1e-2)
    assert not at.exception


def test_harmonizer_option_widgets_reach_the_harmonizer() -> None:
    from fake_openai import FakeOpenAI, answer

    at = start()
    at = settle(at, {"page": "Harmonize"})
    with pytest.raises(KeyError):  # offline has no options
        at.get_by_key("opt.harmonizer/offline.model")
    at = settle(at, {"harm.harmonizer": "openai"})
    assert at.text_input(key="opt.harmonizer/openai.model").value == "gpt-4o-2024-08-06"
    assert at.number_input(key="opt.harmonizer/openai.timeout").value == 60.0
    at.file_uploader(key="harm.upload").set_value(("composite.png", png(seed=1), "image/png")).run()
    at.file_uploader(key="harm.mask_upload").set_value(("mask.png", mask_png(), "image/png")).run()
    reply = {"foreground_object": "ball", "foreground": {"brightness": "dim"},
             "background": {"brightness": "bright"}}
    with FakeOpenAI([answer(reply)]) as server:
        at = settle(at, {"opt.harmonizer/openai.model": "gpt-app", "opt.harmonizer/openai.api_key": "sk-app-1234",
                         "opt.harmonizer/openai.base_url": server.base_url})
        at.button(key="harm.describe").click().run()
    assert not at.exception and not at.error, messages(at)
    assert [r["model"] for r in server.requests] == ["gpt-app"]
    assert at.text_input(key="harm.target_prompt").value == "bright ball"


@pytest.mark.slow
def test_changed_option_widget_reaches_the_edit() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("photo.png", png(), "image/png"))
    at = settle(at, {**FAST, "cfg.post_process": False, "edit.source_prompt": "a photo of a ball",
                     "edit.target_prompt": "a photo of a red ball", "opt.loss/spl.radius": 3})
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    options = result_metadata(at, "edit")["config"]["options"]
    assert options["spl"] == {"radius": 3, "eps": 1e-4, "residual": "centered"}  # the changed value, the rest defaults
    assert options["unified"]["blend_threshold"] == 0.3


def test_random_seed_button_draws_a_new_seed() -> None:
    at = start()
    at.button(key="seed.random").click().run()
    first = at.number_input(key="cfg.seed").value
    at.button(key="seed.random").click().run()
    second = at.number_input(key="cfg.seed").value
    assert first != second  # two draws from 2**32 seeds
    assert not at.exception


# ------------------------------------------------------------------ uploads and errors
def test_bad_upload_shows_a_clear_message() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("holiday.png", b"this is not an image", "image/png"))
    at.run()
    assert not at.exception
    text = messages(at)
    assert "holiday.png" in text and "not an image" in text
    assert "/tmp" not in text  # names the user's file, not the temp copy
    at.button(key="edit.run").click().run()
    assert "Upload a photo or load an example first" in " ".join(w.value for w in at.warning)


def test_missing_weights_say_so_and_offer_tiny_random(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPL_STUDIO_MODEL_FOLDERS", "1")  # the operator allows server-side folders
    at = start()
    at.file_uploader(key="edit.upload").set_value(("p.png", png(), "image/png"))
    at = settle(at, {"edit.source_prompt": "a photo", "edit.target_prompt": "a red photo"})
    at.button(key="edit.run").click().run()  # the default backbone: no weights here, no network
    assert not at.exception
    assert len(at.error) == 1 and "no" in at.error[0].value.lower()
    # offer 1: a local folder
    at = settle(at, {"edit.folder": "/nonexistent/folder/of/weights"})
    at.button(key="edit.use_folder").click().run()
    assert at.text_input(key="cfg.model").value == "/nonexistent/folder/of/weights"
    at.button(key="edit.run").click().run()
    assert "/nonexistent/folder/of/weights" in messages(at)
    # offer 2: tiny-random-sd15
    at.button(key="edit.use_tiny").click().run()
    assert at.selectbox(key="cfg.backbone").value == "tiny-random-sd15"
    assert at.text_input(key="cfg.model").value == ""


def test_stopped_run_is_reported_and_page_stays_usable() -> None:
    at = start()
    at.session_state["edit.pending"] = True  # what an interrupted run leaves behind
    at.run()
    assert "stopped before it finished" in " ".join(i.value for i in at.info)
    at.run()
    assert not at.info and not at.exception


# ------------------------------------------------------------------ edits
@pytest.mark.slow
def test_upload_prompts_run_result_and_download(monkeypatch: pytest.MonkeyPatch) -> None:
    from spl_apps import resources
    from spl_sdk.editor import Editor

    loads = []
    original = Editor.from_config.__func__
    monkeypatch.setattr(Editor, "from_config",
                        classmethod(lambda cls, *a, **k: loads.append(a) or original(cls, *a, **k)))
    resources.editors().clear()  # spl_sdk.editor_cache, kept once per server (st.cache_resource)
    at = start()
    at.file_uploader(key="edit.upload").set_value(("photo.png", png(), "image/png"))
    at = settle(at, {**FAST, "edit.source_prompt": "a photo of a blue ball",
                     "edit.target_prompt": "a photo of a red ball", "run.previews": True})
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    captions = [c for img in at.image for c in img.captions]
    assert "Result" in captions and "Before (left) | After (right)" in captions
    download = at.get_by_key("edit.download")
    assert download.label.startswith("Download PNG")
    meta = result_metadata(at, "edit")
    assert meta["source_prompt"] == "a photo of a blue ball"
    assert meta["config"]["backbone"] == "tiny-random-sd15" and meta["config"]["steps"] == 2
    out = at.session_state["edit.result"]
    assert out.image.size == (128, 96) and out.mask is None
    # moving the comparison slider redraws without running the edit again
    at = settle(at, {"edit.compare.amount": 20})
    assert at.session_state["edit.result"] is out and not at.exception
    # a second edit reuses the model loaded for the first (st.cache_resource)
    at = settle(at, {"edit.target_prompt": "a photo of a green ball"})
    at.button(key="edit.run").click().run()
    assert result_metadata(at, "edit")["target_prompt"] == "a photo of a green ball"
    assert len(loads) == 1


def test_an_instruction_backbone_runs_from_the_target_prompt_alone() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("photo.png", png((64, 64)), "image/png"))
    at = settle(at, {**FAST, "cfg.backbone": "tiny-random-kontext", "cfg.working_size": 64,
                     "edit.target_prompt": "make it night"})
    # the method reads no source prompt, so the page shows no box for it
    assert "edit.source_prompt" not in [t.key for t in at.text_input]
    assert at.text_input(key="edit.target_prompt").label.startswith("Instruction")
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    meta = result_metadata(at, "edit")
    assert meta["config"]["method"] == "instruct" and meta["target_prompt"] == "make it night"
    # a two-prompt backbone shows and asks for the source prompt again
    at = settle(at, {"cfg.backbone": "tiny-random-sd15"})
    assert at.text_input(key="edit.source_prompt").label.startswith("Source prompt")
    at.button(key="edit.run").click().run()
    assert any("Type both prompts" in str(w.value) for w in at.warning)


@pytest.mark.slow
def test_masked_example_loads_with_one_click_and_runs() -> None:
    at = start()
    at.button(key="example.marshmallow").click().run()
    assert at.text_input(key="edit.source_prompt").value == "a white marshmallow on a stick"
    assert at.text_input(key="edit.target_prompt").value == "a pink marshmallow on a stick"
    assert at.toggle(key="cfg.color_loss.on").value is True
    assert at.radio(key="cfg.color_area").value == "masked"
    assert at.text_input(key=MASK + "words_source").value == "marshmallow"
    assert at.checkbox(key=MASK + "invert_target").value is True
    at = settle(at, {**FAST, "cfg.post_process": False})
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    out = at.session_state["edit.result"]
    assert out.mask is not None and out.mask.size == out.image.size == (512, 512)
    assert "Mask used (white = masked area)" in [c for img in at.image for c in img.captions]
    meta = result_metadata(at, "edit")
    assert meta["config"]["options"]["cross-attention"]["words_target"] == ["marshmallow"]
    assert meta["config"]["color_area"] == "masked"
    # another example resets the mask settings to the defaults
    at.button(key="example.old_man").click().run()
    assert at.toggle(key="cfg.color_loss.on").value is False
    assert "edit.result" not in at.session_state


@pytest.mark.slow
def test_uploaded_user_mask_restricts_the_edit() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("photo.png", png(), "image/png"))
    at = settle(at, {**FAST, "edit.source_prompt": "a photo of a ball", "cfg.post_process": False,
                     "edit.target_prompt": "a photo of a green ball", "cfg.structure_area": "masked"})
    at = settle(at, {"edit.mask_source": "Upload a mask"})
    at.file_uploader(key="edit.mask_upload").set_value(("m.png", mask_png(), "image/png")).run()
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    out = at.session_state["edit.result"]
    expected = np.asarray(Image.open(io.BytesIO(mask_png())).convert("L"))
    assert np.abs(np.asarray(out.mask, dtype=int) - expected).max() <= 1
    assert not [w for w in at.warning if "selects nothing" in str(w.value)]
    # an all-black mask restricts the loss to nothing: the page says so, as the CLI does
    black = io.BytesIO()
    Image.new("L", (128, 96), 0).save(black, format="PNG")
    at.file_uploader(key="edit.mask_upload").set_value(("black.png", black.getvalue(), "image/png")).run()
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    assert [w for w in at.warning if "the mask selects nothing" in str(w.value)]
    assert at.session_state["edit.result"].notes


@pytest.mark.slow
def test_a_masked_edit_area_keeps_the_photo_outside_the_drawn_mask() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("photo.png", png(), "image/png"))
    # no loss is masked: the edit area alone asks for the mask
    at = settle(at, {**FAST, "edit.source_prompt": "a photo of a ball", "cfg.post_process": False,
                     "edit.target_prompt": "a photo of a green ball", "cfg.edit_area": "masked"})
    at = settle(at, {"edit.mask_source": "Upload a mask"})
    at.file_uploader(key="edit.mask_upload").set_value(("m.png", mask_png(), "image/png")).run()
    at.button(key="edit.run").click().run()
    assert not at.exception and not at.error, messages(at)
    out = np.asarray(at.session_state["edit.result"].image.convert("RGB"), dtype=int)
    photo = np.asarray(Image.open(io.BytesIO(png())).convert("RGB"), dtype=int)
    far = np.ones(photo.shape[:2], bool)
    far[24 - 2:72 + 2, 32 - 2:96 + 2] = False  # the mask's rectangle and the feather band around it
    np.testing.assert_array_equal(out[far], photo[far])
    assert np.abs(out[30:66, 38:90] - photo[30:66, 38:90]).mean() > 1  # inside: edited


@pytest.mark.slow
def test_harmonize_page_writes_prompts_and_harmonizes() -> None:
    at = start()
    at = settle(at, {**FAST, "cfg.post_process": False, "page": "Harmonize"})
    assert at.button(key="harm.describe").disabled
    at.file_uploader(key="harm.upload").set_value(("composite.png", png(seed=1), "image/png")).run()
    at.file_uploader(key="harm.mask_upload").set_value(("mask.png", mask_png(), "image/png")).run()
    at.text_input(key="harm.object").set_value("ball").run()
    at.button(key="harm.describe").click().run()
    assert not at.exception and not at.error, messages(at)
    source = at.text_input(key="harm.source_prompt").value
    target = at.text_input(key="harm.target_prompt").value
    assert source.endswith("ball") and target.endswith("ball")
    at.button(key="harm.run").click().run()  # the harmonizer's prompts: its answer is recorded
    assert not at.exception and not at.error, messages(at)
    meta = result_metadata(at, "harm")
    assert meta["harmonizer"] == "offline" and meta["harmonization"]["target_prompt"] == target
    assert meta["harmonization"]["foreground_object"] == "ball"
    at.text_input(key="harm.target_prompt").set_value("bright " + target.split(" ", 1)[1]).run()
    at.button(key="harm.run").click().run()
    assert not at.exception and not at.error, messages(at)
    meta = result_metadata(at, "harm")
    assert meta["harmonization"] is None  # prompts typed over the harmonizer's: none recorded
    cfg = meta["config"]
    assert (cfg["structure_loss"], cfg["structure_area"], cfg["color_loss"], cfg["color_area"]) == (
        "spl", "whole", "cpl", "masked")
    assert meta["target_prompt"].startswith("bright ")
    # the page shows the mask as uploaded (the edit used its inverse, the background)
    out = at.session_state["harm.result"]
    assert np.asarray(out.mask)[48, 64] > 245 and np.asarray(out.mask)[2, 2] < 10
    assert "as uploaded" in out.mask_caption


def _with_kept_result(at: AppTest) -> AppTest:
    """Pretend an edit ran: a kept result in the edit slot."""
    from spl_apps.runner import RunOutput

    img = Image.new("RGB", (128, 96))
    at.session_state["edit.result"] = RunOutput(source=img, image=img, mask=None, png=b"", metadata={},
                                                timings={})
    return at.run()


def test_a_new_or_failed_upload_clears_the_old_result() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("a.png", png(), "image/png")).run()
    at = _with_kept_result(at)
    assert "edit.result" in at.session_state
    at.file_uploader(key="edit.upload").set_value(("b.png", png(seed=2), "image/png")).run()
    assert "edit.result" not in at.session_state
    at = _with_kept_result(at)
    at.file_uploader(key="edit.upload").set_value(("c.png", b"not an image", "image/png")).run()
    assert "edit.result" not in at.session_state and "not an image" in messages(at)


def test_tiny_photos_and_odd_masks_are_warned_about() -> None:
    at = start()
    at.file_uploader(key="edit.upload").set_value(("tiny.png", png((40, 30)), "image/png")).run()
    assert any("only 40×30 px" in w.value for w in at.warning)
    at = settle(at, {"page": "Harmonize"})
    at.file_uploader(key="harm.upload").set_value(("composite.png", png(seed=1), "image/png")).run()
    at.file_uploader(key="harm.mask_upload").set_value(("m.png", mask_png((64, 64)), "image/png")).run()
    assert any("another aspect ratio" in w.value for w in at.warning), [w.value for w in at.warning]


def test_fitted_masks_warn_when_empty_full_or_of_another_shape() -> None:
    from spl_apps.uploads import read_fitted_mask

    def data(value: int, size: tuple[int, int] = (128, 96)) -> bytes:
        buf = io.BytesIO()
        Image.new("L", size, value).save(buf, format="PNG")
        return buf.getvalue()

    mask, notes = read_fitted_mask("m.png", mask_png(), (128, 96))
    assert mask.size == (128, 96) and notes == []
    assert "empty" in " ".join(read_fitted_mask("m.png", data(0), (128, 96))[1])
    assert "all white" in " ".join(read_fitted_mask("m.png", data(255), (128, 96))[1])
    mask, notes = read_fitted_mask("m.png", mask_png((50, 50)), (128, 96))
    assert mask.size == (128, 96) and "another aspect ratio" in notes[0]
    assert read_fitted_mask("m.png", mask_png((64, 48)), (128, 96))[1] == []  # same ratio, smaller


# ------------------------------------------------------------------ pieces without Streamlit
def test_comparison_images_are_computed_offline() -> None:
    before = Image.new("RGB", (100, 40), (0, 0, 0))
    after = Image.new("RGB", (50, 20), (200, 100, 0))  # resized to the before image
    w = compare.wipe(before, after, 0.3)
    assert w.size == (100, 40) and w.getpixel((10, 20)) == (0, 0, 0) and w.getpixel((90, 20)) == (200, 100, 0)
    assert compare.blend(before, after, 0.5).getpixel((50, 20)) == (100, 50, 0)
    assert compare.side_by_side(before, after, gap=4).size == (204, 40)
    assert compare.difference(before, after).getpixel((0, 0)) == (255, 127, 0)


def test_examples_exist_and_mask_words_are_in_their_prompts() -> None:
    kinds = {e.kind for e in EXAMPLES}
    assert {"Recoloring", "Relighting", "Season change", "Masked edit"} <= kinds
    for e in EXAMPLES:
        assert e.path.is_file(), e.path
        EditConfig(**e.settings)
        words = e.settings.get("options", {}).get("mask-extractor/cross-attention", {})
        for word in words.get("words_source", []):
            assert word in e.source_prompt.split()
        for word in words.get("words_target", []):
            assert word in e.target_prompt.split()


def test_spl_app_runs_streamlit_on_the_studio_script() -> None:
    from spl_sdk.cli import main

    result = CliRunner().invoke(main, ["app", "--print-command", "--headless", "--server.port", "8765",
                                       "--server.address", "0.0.0.0", "--", "--theme.base", "dark"])
    assert result.exit_code == 0, result.output
    words = result.output.split()
    assert words[1:4] == ["-m", "streamlit", "run"] and Path(words[4]) == STUDIO
    line = " ".join(words)
    assert "--server.port 8765" in line and "--server.address 0.0.0.0" in line
    assert "--server.headless true" in line and line.endswith("--theme.base dark")
    assert "--client.toolbarMode minimal" in line  # no Deploy button


def test_unset_numeric_options_get_empty_number_fields() -> None:
    at = start()
    at = settle(at, {"cfg.backbone": "tiny-random-sd15", "cfg.method": "flowedit"})
    assert not at.exception, [e.value for e in at.exception]
    window = at.number_input(key="opt.method/flowedit.n_max")
    assert window.value is None  # unset: scaled from the backbone family's published window
    at = settle(at, {"opt.method/flowedit.n_max": 2})
    assert at.session_state["opt.method/flowedit.n_max"] == 2 and not at.exception


# ------------------------------------------------------------------ refine page
def photo_and_edit(size: tuple[int, int] = (128, 128)) -> tuple[bytes, bytes]:
    """The bundled old man at ``size`` and an 'edit' of it: tinted and shifted 2 px (an edit's drift)."""
    from PIL import ImageChops

    image = Image.open(EXAMPLES[0].path).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    edit = ImageChops.offset(Image.blend(image, Image.new("RGB", size, (200, 60, 40)), 0.3), 2, 1)
    out = []
    for picture in (image, edit):
        buf = io.BytesIO()
        picture.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out[0], out[1]


def test_refine_page_gives_the_pixels_of_the_refine_recipe() -> None:
    from spl_sdk.config import RefineConfig
    from spl_sdk.refiner import refine

    at = start()
    at = settle(at, {"page": "Refine"})
    assert not at.exception and at.button(key="refine.run").disabled  # nothing uploaded yet
    with pytest.raises(KeyError):  # the edit's model and sampling settings are not on this page
        at.get_by_key("cfg.backbone")
    source_png, edit_png = photo_and_edit()
    at.file_uploader(key="refine.upload").set_value(("photo.png", source_png, "image/png"))
    at.file_uploader(key="refine_edit.upload").set_value(("edit.png", edit_png, "image/png"))
    at = settle(at, {"refine.cfg.align": "affine", "refine.cfg.iterations": 5,
                     "refine.cfg.color_loss": "cpl"})
    assert "1000 (cpl's default)" == at.number_input(key="refine.cfg.color_weight").proto.placeholder
    at.button(key="refine.run").click().run()
    assert not at.exception and not at.error, messages(at)
    kept = at.session_state["refine.result"]
    # the same inputs through the one recipe: the same pixels
    source = Image.open(io.BytesIO(source_png)).convert("RGB")
    edited = Image.open(io.BytesIO(edit_png)).convert("RGB")
    expected = refine(source, edited, config=RefineConfig(align="affine", iterations=5, color_loss="cpl"))
    assert np.array_equal(np.asarray(kept.image), np.asarray(expected.image))
    assert kept.metadata["config"] == expected.metadata()["config"]
    assert kept.metadata["alignment"] == expected.alignment
    meta = json.loads(Image.open(io.BytesIO(kept.png)).info["spl_sdk"])  # the download embeds it
    assert meta["config"]["align"] == "affine" and meta["edited"] == "edit.png"
    captions = [c for img in at.image for c in img.captions]
    assert "Refined" in captions and "Before (left) | After (right)" in captions
    # a new edit upload drops the old result
    at.file_uploader(key="refine_edit.upload").set_value(("other.png", png(seed=3), "image/png"))
    at = at.run()
    assert "refine.result" not in at.session_state and not at.exception


def test_a_message_stays_until_the_input_changes_and_speaks_the_studios_words() -> None:
    from spl_apps.runner import phase_text
    from spl_apps.wording import for_studio

    at = start()
    at.file_uploader(key="edit.upload").set_value(("p.png", png(), "image/png"))
    at = at.run()
    at.button(key="edit.run").click().run()  # no prompts yet
    assert any("Type both prompts" in w.value for w in at.warning)
    at = at.run()  # a rerun with the same input keeps it
    assert any("Type both prompts" in w.value for w in at.warning)
    at = settle(at, {"edit.target_prompt": "a red photo"})  # the input changed: the message is stale
    assert not any("Type both prompts" in w.value for w in at.warning)
    # core sentences name the studio's settings, not CLI flags
    said = for_studio("out of memory at working size 512; try --cpu-offload, a smaller --working-size, "
                      "or --device cpu.")
    assert "--" not in said and "“Working size”" in said and "“CPU offload”" in said
    missing = for_studio("copy that folder here and pass `--model /path/to/x` (model= in Python).")
    assert "--model" not in missing and "Model setting" in missing and "Python" not in missing
    assert phase_text("steps", 3, 15) == "Denoising 3/15" and phase_text("injection", 1, 3) == "Loss steps 1/3"
    assert phase_text("post-processing loss-refine", 40, 100) == "Refining at full size (loss-refine) 40/100"
