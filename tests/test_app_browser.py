"""End to end: ``streamlit run apps/studio.py`` on 127.0.0.1 driven by headless Chromium (Playwright).

Needs Debian's chromium at /usr/bin/chromium and the playwright package; CI
installs both with ``.ci/install-browser.sh``. Set SPL_UPDATE_SCREENSHOTS=1 to
refresh docs/screenshots/app.png (the README's picture).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIO = ROOT / "apps" / "studio.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
INSTALL = "bash .ci/install-browser.sh"
PHOTO = ROOT / "apps" / "examples" / "old_man.png"
UPDATE_SCREENSHOT = bool(os.environ.get("SPL_UPDATE_SCREENSHOTS"))
STEPS = "Inference steps (empty = the method's default)"  # the label of the steps field

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The studio served by ``streamlit run`` on a free local port; its URL."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(STUDIO), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"streamlit did not come up on {url}:\n{proc.communicate()[0]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module's tests (playwright's sync API allows one per thread)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (and playwright) with: {INSTALL}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing; install it with: {INSTALL}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_studio(browser, server: str, width: int, height: int):  # noqa: ANN001, ANN201
    """A new page of ``browser`` at the given window size showing the studio, ready for input."""
    pg = browser.new_page(viewport={"width": width, "height": height})
    pg.set_default_timeout(int(os.environ.get("SPL_BROWSER_TIMEOUT_MS", 120_000)))
    pg.goto(server)
    pg.get_by_role("button", name="Run", exact=True).wait_for()
    idle(pg)
    return pg


@pytest.fixture(scope="module")
def page(browser, server: str) -> Iterator[object]:  # noqa: ANN001
    """A headless Chromium page showing the studio, ready for input."""
    pg = open_studio(browser, server, 1400, 1000)
    yield pg
    pg.close()


def idle(pg, timeout: float = 300_000) -> None:  # noqa: ANN001
    """Wait until Streamlit has finished the rerun an action started."""
    try:  # the rerun may start a moment after the action, or be over already
        pg.wait_for_selector("[data-test-script-state='running']", timeout=1_500)
    except Exception:
        pass
    pg.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout)


def fill(pg, label: str, value: str) -> None:  # noqa: ANN001
    """Type into a text or number input found by its label and commit it (Enter)."""
    box = pg.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    idle(pg)


def choose(pg, label: str, option: str) -> None:  # noqa: ANN001
    """Pick ``option`` in the selectbox labeled ``label``."""
    box = pg.locator("[data-testid='stSelectbox']").filter(has_text=label).first.get_by_role("combobox")
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(option)  # typing filters the list (a click near the window's edge may not open it)
    pg.get_by_role("option", name=option, exact=True).click()
    idle(pg)


def no_exception(pg) -> None:  # noqa: ANN001
    assert pg.locator("[data-testid='stException']").count() == 0, pg.locator(
        "[data-testid='stException']").first.inner_text()


# records every text the progress bar shows during a run (the run may pass a phase in a moment):
# on every change of the page, and every 15 ms besides
RECORD_PROGRESS = """() => { window.__phases = new Set();
  const look = () => { for (const e of document.querySelectorAll("[data-testid='stProgress']"))
    window.__phases.add(e.innerText); };
  window.__watch = new MutationObserver(look);
  window.__watch.observe(document.body, {subtree: true, childList: true, characterData: true});
  window.__timer = setInterval(look, 15); }"""


def recorded_progress(pg) -> str:  # noqa: ANN001
    """The progress texts seen since RECORD_PROGRESS, joined; stops recording."""
    return " | ".join(pg.evaluate("() => { clearInterval(window.__timer); window.__watch.disconnect(); "
                                  "return [...window.__phases]; }"))


def test_upload_edit_and_screenshot(page, tmp_path: Path) -> None:  # noqa: ANN001
    pg = page
    pg.locator("[data-testid='stFileUploader'] input[type=file]").first.set_input_files(str(PHOTO))
    idle(pg)
    pg.get_by_text("old_man.png (512×512)").wait_for()
    choose(pg, "Backbone", "tiny-random-sd15")
    fill(pg, "Working size (px, long side; empty = the backbone's default)", "128")
    pg.get_by_text("Sampling", exact=True).click()
    fill(pg, STEPS, "2")
    pg.get_by_text("Optimization", exact=True).click()
    # the README picture keeps the default 100 iterations: SPL then visibly restores the edges
    fill(pg, "Iterations", "100" if UPDATE_SCREENSHOT else "3")
    fill(pg, "Source prompt (describes the photo)", "a grayscale photo of an old man")
    fill(pg, "Target prompt (describes the result)", "a colorful photo of an old man")
    pg.evaluate(RECORD_PROGRESS)
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_role("button", name="Download PNG (settings embedded)").wait_for(timeout=300_000)
    idle(pg)
    no_exception(pg)
    # the module's first run loads the model, so the bar says so (a later run reuses it at once)
    assert re.search(r"Loading the model \(tiny-random-sd15\)", recorded_progress(pg))
    assert pg.locator("[data-testid='stImage'] img").count() >= 3  # photo, after, comparison
    assert pg.get_by_text("Before (left) | After (right)").count() == 1
    shot = tmp_path / "app.png"
    pg.set_viewport_size({"width": 1400, "height": 1800})  # Streamlit scrolls inside its own pane
    idle(pg)
    pg.screenshot(path=str(shot))
    pg.set_viewport_size({"width": 1400, "height": 1000})
    assert shot.stat().st_size > 20_000
    if UPDATE_SCREENSHOT:
        target = ROOT / "docs" / "screenshots" / "app.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_cancel_stops_the_edit_and_the_app_stays_usable(page) -> None:  # noqa: ANN001
    pg = page
    fill(pg, STEPS, "50")
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_text(re.compile(r"Denoising \d+/\d+")).wait_for(timeout=300_000)
    # a second Run cannot be started while this one goes
    assert pg.get_by_role("button", name="Run", exact=True).is_disabled()
    pg.get_by_role("button", name="Cancel", exact=True).click()
    pg.get_by_text("The edit was stopped before it finished").wait_for(timeout=120_000)
    idle(pg)
    no_exception(pg)
    # a new edit runs to the end afterwards
    fill(pg, STEPS, "2")
    fill(pg, "Target prompt (describes the result)", "a sepia photo of an old man")
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_text("→ “a sepia photo of an old man”").wait_for(timeout=300_000)
    idle(pg)
    no_exception(pg)
    assert pg.get_by_text("The edit was stopped before it finished").count() == 0
    assert pg.get_by_role("button", name="Run", exact=True).is_enabled()  # enabled again after it




def test_progress_names_each_phase(page) -> None:  # noqa: ANN001
    pg = page
    fill(pg, STEPS, "4")
    fill(pg, "Iterations", "40")
    fill(pg, "Target prompt (describes the result)", "a golden photo of an old man")
    pg.evaluate(RECORD_PROGRESS)
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_text("→ “a golden photo of an old man”").wait_for(timeout=300_000)
    idle(pg)
    texts = recorded_progress(pg)  # (the loading text: see the module's first run, above)
    assert re.search(r"(Denoising|Loss steps) \d+/4", texts), texts
    assert re.search(r"Refining at full size \d+/\d+", texts), texts
    assert "Step " not in texts  # no bare counts without a phase


def test_weight_field_shows_a_third_party_losses_default(page) -> None:  # noqa: ANN001
    from spl_sdk.plugins import Plugins

    pg = page
    weight = pg.get_by_label("Weight", exact=True).first
    assert weight.get_attribute("placeholder") == "10000 (spl's default)"
    choose(pg, "Loss term", "tv")  # the example plug-in (plugins/examples/spl-example-tv)
    tv = Plugins().loss_term("tv").default_weight
    assert pg.get_by_label("Weight", exact=True).first.get_attribute("placeholder") == f"{tv:g} (tv's default)"
    choose(pg, "Loss term", "spl")
    no_exception(pg)


def test_no_options_for_components_the_run_does_not_use(page) -> None:  # noqa: ANN001
    pg = page
    pg.get_by_text("Component options", exact=True).click()
    idle(pg)
    sidebar = pg.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_text("unified (attention controller)").count() == 1
    choose(pg, "Edit method (empty = the backbone's default)", "flowedit")
    no_exception(pg)  # FlowEdit's own options (unset numbers) get widgets
    assert sidebar.get_by_text("flowedit (edit method)").count() == 1
    assert sidebar.get_by_text("unified (attention controller)").count() == 0
    assert sidebar.get_by_text("Blend threshold").count() == 0
    assert sidebar.get_by_text("uses no attention control").count() == 1
    choose(pg, "Edit method (empty = the backbone's default)", "infedit")
    assert sidebar.get_by_text("unified (attention controller)").count() == 1


def test_drawn_mask_is_used(page) -> None:  # noqa: ANN001
    if importlib.util.find_spec("streamlit_drawable_canvas") is None:
        pytest.skip("drawing needs the optional streamlit-drawable-canvas package "
                    "(pip install 'spl-sdk[draw]'); the upload fallback is tested in test_app.py")
    from PIL import Image

    pg = page
    fill(pg, STEPS, "2")
    pg.get_by_text("Masked area").first.click()
    idle(pg)
    pg.get_by_text("Draw", exact=True).click()
    idle(pg)
    canvas = pg.locator("canvas").last
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()  # the mouse only draws inside the viewport
    box = canvas.bounding_box()
    pg.mouse.move(box["x"] + 100, box["y"] + 100)
    pg.mouse.down()
    for i in range(20):
        pg.mouse.move(box["x"] + 100 + 10 * i, box["y"] + 100 + 5 * i)
    pg.mouse.up()
    idle(pg)
    pg.get_by_role("button", name="Run", exact=True).click()
    pg.get_by_text("Mask used (white = masked area)").wait_for(timeout=300_000)
    idle(pg)
    no_exception(pg)
    src = pg.locator("[data-testid='stImage']").filter(has_text="Mask used").locator("img").last.get_attribute("src")
    data = pg.request.get(src if src.startswith("http") else pg.url.rstrip("/") + src).body()
    mask = np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 127
    assert 0.005 < mask.mean() < 0.5  # the stroke, not the whole image


def in_view(locator) -> bool:  # noqa: ANN001
    """True when the element is at least partly inside the window (Streamlit scrolls its own pane)."""
    return locator.evaluate("e => { const r = e.getBoundingClientRect();"
                            " return r.bottom > 0 && r.top < window.innerHeight && r.height > 0; }")


def test_usable_at_1024_px_with_the_result_in_view(browser, server: str) -> None:  # noqa: ANN001
    pg = open_studio(browser, server, 1024, 768)
    try:
        assert pg.locator("[data-testid='stAppDeployButton']").count() == 0  # toolbarMode minimal
        quick_edit(pg, "a painting of an old man")
        pg.get_by_role("button", name="Download PNG (settings embedded)").wait_for(timeout=60_000)
        # the result sits under the Run button: in view without scrolling after the click
        assert in_view(pg.get_by_text("Result", exact=True).first)
        assert in_view(pg.locator("[data-testid='stImage'] img").nth(1))
        # nothing wider than the window, and every sidebar label fits its box
        assert pg.evaluate("document.documentElement.scrollWidth") <= 1024
        cut = pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stWidgetLabel"] p')]
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent)""")
        assert cut == [], cut
    finally:
        pg.close()


def quick_edit(pg, target: str) -> None:  # noqa: ANN001
    """Upload the photo and run a 1-step, 64 px edit on tiny-random-sd15 until its result shows."""
    pg.locator("[data-testid='stFileUploader'] input[type=file]").first.set_input_files(str(PHOTO))
    idle(pg)
    choose(pg, "Backbone", "tiny-random-sd15")
    fill(pg, "Working size (px, long side; empty = the backbone's default)", "64")
    pg.get_by_text("Sampling", exact=True).click()
    fill(pg, STEPS, "1")
    pg.get_by_text("Optimization", exact=True).click()
    fill(pg, "Iterations", "1")
    fill(pg, "Source prompt (describes the photo)", "a photo of an old man")
    fill(pg, "Target prompt (describes the result)", target)
    run = pg.get_by_role("button", name="Run", exact=True)
    run.scroll_into_view_if_needed()
    run.click()
    pg.get_by_text(f"→ “{target}”").wait_for(timeout=300_000)
    idle(pg)
    no_exception(pg)


def box(pg, caption: str) -> dict:  # noqa: ANN001
    """The on-screen box of the image with ``caption`` (Streamlit scrolls its own pane)."""
    return pg.locator("[data-testid='stImage']").filter(has_text=caption).locator("img").first.evaluate(
        "e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height,"
        " right: r.right, bottom: r.bottom}; }")


def labels_cut(pg) -> list[str]:  # noqa: ANN001
    """Visible widget and button labels whose text does not fit their box."""
    return pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stWidgetLabel"] p, button p')]
        .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > 0)
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => e.textContent)""")


def test_source_and_result_side_by_side_in_view_at_1400x900(browser, server: str, tmp_path: Path) -> None:  # noqa: ANN001
    pg = open_studio(browser, server, 1400, 900)
    try:
        quick_edit(pg, "a watercolor of an old man")
        pg.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollTo(0, 0)")
        source, result = box(pg, "Source: old_man.png"), box(pg, "Result")
        for b in (source, result):  # wholly inside the window, without scrolling, and large
            assert b["y"] >= 0 and b["bottom"] <= 900 and b["x"] >= 0 and b["right"] <= 1400, b
            assert b["w"] >= 400, b
        assert abs(source["y"] - result["y"]) < 2 and result["x"] >= source["right"]  # side by side
        # the comparison below uses the page's width, not half of it
        pg.get_by_text("Side by side", exact=True).click()
        idle(pg)
        assert box(pg, "Before | After")["w"] > 1.5 * result["w"]
        pg.screenshot(path=str(tmp_path / "studio-1400x900.png"))  # to look at when it fails
    finally:
        pg.close()


def test_usable_at_800_px_with_a_collapsible_sidebar(browser, server: str, tmp_path: Path) -> None:  # noqa: ANN001
    pg = open_studio(browser, server, 800, 1000)
    try:
        quick_edit(pg, "an oil painting of an old man")
        assert pg.evaluate("document.documentElement.scrollWidth") <= 800
        assert labels_cut(pg) == []
        main, sidebar = pg.locator("[data-testid='stMain']"), pg.locator("[data-testid='stSidebar']")
        if sidebar.is_visible() and sidebar.bounding_box()["width"] > 50:  # shown: it folds away
            width = main.bounding_box()["width"]
            sidebar.hover()
            pg.locator("[data-testid='stSidebarCollapseButton'] button").click()
            pg.wait_for_timeout(800)
            assert main.bounding_box()["width"] > width
        pg.screenshot(path=str(tmp_path / "studio-800.png"))
        for caption in ("Source: old_man.png", "Result"):
            b = box(pg, caption)
            assert b["w"] >= 250 and b["right"] <= 800, (caption, b)
        assert labels_cut(pg) == []
        # the sidebar opens again for the settings
        pg.locator("[data-testid='stExpandSidebarButton']").click()
        pg.get_by_text("Settings", exact=True).wait_for()
        assert labels_cut(pg) == []
    finally:
        pg.close()
