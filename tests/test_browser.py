"""End to end in a real browser: `emotionnet app`, Chromium with a fake microphone, Playwright.

Chromium plays a generated speech file into its fake audio capture device;
the test presses record, waits, stops, and expects the page to show an
emotion, the probability chart and the timeline. A full-page screenshot goes
to artifacts/browser-app.png (ignored by git).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_env, voiced, write_wav

from emotionnet.labels import LABELS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory) -> Path:
    """A speech file for Chromium's fake capture device: espeak-ng if present, else generated."""
    folder = tmp_path_factory.mktemp("microphone")
    path = folder / "speech.wav"
    espeak = shutil.which("espeak-ng")
    if espeak:
        text = "Hello there. I am recording my voice to see which emotion the model hears in it."
        subprocess.run([espeak, "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    else:
        write_wav(path, np.concatenate([voiced(4.0), np.zeros(8000, np.float32)]))
    return path


@pytest.fixture(scope="module")
def server(tiny_model_file, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "emotionnet", "app", "--port", str(port), "--model", str(tiny_model_file)],
            cwd=REPO, env=cli_env(), stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"emotionnet app did not start:\n{log.read_text()}")
        time.sleep(0.5)
    yield url
    process.terminate()  # the launcher stops the Streamlit server it started
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(fake_microphone):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed (looked for {CHROMIUM})")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_microphone}",
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync",
        ])
        yield browser
        browser.close()


def test_record_in_the_browser_and_see_the_emotion(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 1500})
    page.goto(server)
    record = page.get_by_test_id("stAudioInputActionButton")
    record.wait_for(timeout=120_000)  # the first page load also loads and warms up the model
    assert record.get_attribute("aria-label") == "Record"

    record.click()
    page.wait_for_timeout(4_000)
    assert record.get_attribute("aria-label") == "Stop recording"
    record.click()
    stopped = time.perf_counter()

    metric = page.get_by_test_id("stMetric")
    metric.wait_for(timeout=120_000)
    answered = time.perf_counter() - stopped
    text = metric.inner_text()
    assert "Emotion" in text and any(label in text.split() for label in LABELS) and "confidence" in text

    charts = page.get_by_test_id("stVegaLiteChart")
    charts.nth(1).wait_for(timeout=60_000)
    assert charts.count() == 2  # probabilities, timeline
    assert page.get_by_text("Timeline", exact=True).is_visible()
    timeline = charts.nth(1)
    timeline.locator("canvas, svg").first.wait_for(timeout=30_000)  # drawn by vega in the page
    assert timeline.bounding_box()["height"] > 100
    assert page.get_by_test_id("stAlert").count() == 0  # no errors, no "no speech" warning
    page.get_by_text("Download CSV").wait_for()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser-app.png"
    page.wait_for_timeout(500)
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}\nresult shown {answered:.2f} s after stopping the recording: "
          f"{' '.join(text.split())}")
    page.close()
