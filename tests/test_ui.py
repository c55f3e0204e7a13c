"""The web page (`facerestore ui`): its two back ends called directly, and the page itself in a
real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) against a real
`python -m facerestore ui` process, in-process and in front of a real tritonserver.

Every server here listens on 127.0.0.1 on a port free at run time and is stopped (its process
group) even when a test fails. Screenshots go to the test's tmp folder."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.serving import png_bytes
from facerestore.cli import build_parser
from runtime.contracts.service import MAX_UPLOAD_BYTES
from runtime.face import FaceOptions
from runtime.imageio import decode_image
from runtime.job import JobReport
from runtime.restorers import RESTORERS
from runtime.restorers.authface import SCHEDULER_NAMES
from runtime.samples import ASTRONAUT, GRACE_HOPPER, NO_FACE
from runtime.serving.serve import free_port
from runtime.ui.backends import LocalBackend, RestoreFailed, TritonBackend
from tests.conftest import started_server, subprocess_env

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NO_BROWSER = "Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)"
PAGE_TIMEOUT = 240   # seconds for one restoration on a busy 2-core CPU
RUN_OVER = re.compile(r"\d+/\d+ (photos|clips|files)\b.* written to")   # the summary line of a finished run


# --- the option declaration ---------------------------------------------------------------------

def test_restore_flags_come_from_the_option_declaration():
    from runtime.restorers.authface.pipeline import SCHEDULERS

    args = build_parser().parse_args(["restore"])
    for spec in RESTORERS.values():
        for option in spec.options:
            assert getattr(args, option.name) == option.default, option.name
    assert set(SCHEDULER_NAMES) == set(SCHEDULERS)
    args = build_parser().parse_args(["restore", "--model", "authface", "--conditioning-scale", "0.5"])
    assert args.conditioning_scale == 0.5
    with pytest.raises(ValueError, match="fidelity must be in"):
        RESTORERS["safm"].options[0].check(1.5)


def test_served_options_are_the_ensemble_inputs():
    backend = TritonBackend("http://127.0.0.1:1/")
    assert (backend.url, backend.protocol) == ("127.0.0.1:1", "http")
    assert [o.name for o in backend.options("safm")] == ["fidelity"]
    assert [o.name for o in backend.options("authface")] == ["steps", "seed", "strength"]
    with pytest.raises(ValueError, match="scheme"):
        TritonBackend("ftp://127.0.0.1:1")


# --- the in-process back end ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def local() -> LocalBackend:
    from export.onnx_cache import onnx_dir

    return LocalBackend(allow_untrained=True, locate=onnx_dir)   # the random-init AuthFace too; --backend auto


def test_in_process_back_end_gives_crops_and_paste_masks(local):
    reports = []
    outcome = local.restore(GRACE_HOPPER.name, GRACE_HOPPER.read_bytes(), "safm", {"fidelity": 0.5}, FaceOptions(),
                            lambda fraction, desc: reports.append(desc))
    assert outcome.result.faces == 1 and outcome.filename == "grace_hopper.jpg"
    assert outcome.after.shape == outcome.before.shape == (600, 512, 3)
    assert decode_image(outcome.encoded).size == (512, 600)
    face = outcome.faces[0]
    assert face.before.shape == face.after.shape == face.mask.shape
    side = face.mask.shape[0]
    assert face.mask[side // 2, side // 2, 0] == 255 and face.mask[0, 0, 0] < 8   # blended inside, not at corners
    assert any("DEMO weights" in n for n in outcome.notes)
    assert reports and all(GRACE_HOPPER.name in d for d in reports)


def test_a_new_setting_builds_nothing_again():
    """The page's restorer is built once: another fidelity is bound to the same sessions (no
    reload), and still reaches the network."""
    from export.onnx_cache import onnx_dir

    backend, builds = LocalBackend(locate=onnx_dir), []   # as `ui` makes it (--backend auto: the ONNX cache)
    build = backend._build
    backend._build = lambda restorer: (builds.append(restorer), build(restorer))[1]
    after = {w: backend.restore(GRACE_HOPPER.name, GRACE_HOPPER.read_bytes(), "safm", {"fidelity": w}, FaceOptions(),
                                lambda *a: None) for w in (0.0, 1.0)}
    assert builds == ["safm"]
    assert all(any("DEMO weights" in n for n in o.notes) for o in after.values())   # its notes kept with it
    assert np.abs(after[0.0].after.astype(int) - after[1.0].after.astype(int)).max() > 2


def test_authface_steps_are_reported(local):
    reports = []
    settings = {"scheduler": "ddim", "steps": 2, "seed": 0, "conditioning_scale": 1.0, "strength": None}
    outcome = local.restore(ASTRONAUT.name, ASTRONAUT.read_bytes(), "authface", settings, FaceOptions(),
                            lambda fraction, desc: reports.append((fraction, desc)))
    steps = [d for _, d in reports if "step" in d]
    assert steps == ["astronaut.png: authface step 1/2", "astronaut.png: authface step 2/2"]
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)
    origin = local.provenance("authface", settings)   # an untrained model is said so on the page (its report)
    assert any("UNTRAINED" in n for n in JobReport("authface", local.description, origin).notices())


def test_bad_uploads_are_one_line_errors(local):
    with pytest.raises(RestoreFailed, match=r"^notes\.png: not a readable image"):
        local.restore("notes.png", b"not a photo", "identity", {}, FaceOptions(), lambda *a: None)
    with pytest.raises(RestoreFailed, match=r"^big\.png: .* exceeds the upload limit of 64 MiB"):
        local.restore("big.png", bytes(MAX_UPLOAD_BYTES + 1), "identity", {}, FaceOptions(), lambda *a: None)
    with pytest.raises(RestoreFailed, match=r"^wide\.png: 300x200 = 60000 pixels exceeds the cap of 50000"):
        LocalBackend(max_pixels=50_000).restore("wide.png", png_bytes(np.zeros((200, 300, 3), np.uint8)), "identity",
                                                {}, FaceOptions(), lambda *a: None)
    outcome = local.restore(NO_FACE.name, NO_FACE.read_bytes(), "identity", {}, FaceOptions(), lambda *a: None)
    assert outcome.result.faces == 0 and np.array_equal(outcome.after, outcome.before)


def test_untrained_restorer_is_refused_with_the_reason_unless_allowed():
    settings = {"scheduler": "ddim", "steps": 2, "seed": 0, "conditioning_scale": 1.0, "strength": None}
    with pytest.raises(RestoreFailed, match=r"^astronaut\.png: authface weights are untrained \(.*random init.*"
                                            r"pass --allow-untrained"):
        LocalBackend().restore(ASTRONAUT.name, ASTRONAUT.read_bytes(), "authface", settings, FaceOptions(),
                               lambda *a: None)


# --- the page in a real browser -------------------------------------------------------------------

@contextmanager
def ui_process(log: Path, *args: str) -> Iterator[str]:
    """`python -m facerestore ui` on a free loopback port; yields its URL once it answers, and always
    stops its process group."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "facerestore", "ui", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=subprocess_env(OMP_NUM_THREADS="1"))
    url = f"http://127.0.0.1:{port}/"
    try:
        start = time.monotonic()
        while True:
            assert proc.poll() is None, f"ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() - start < 120, f"ui did not answer in 120 s:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(NO_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))   # no driver download
    yield driver
    driver.quit()


def restore_on_page(driver, url: str, photo: Path, setup: Callable | None = None,
                    progress: set[str] | None = None, also: Path | None = None) -> str:
    """Open the page, upload `photo` (and `also`), call `setup(driver)` (to set options), press
    Restore; the status text once the run is over. Progress lines seen meanwhile are added to
    `progress`."""
    from selenium.common.exceptions import ElementClickInterceptedException, NoSuchElementException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def finished(d) -> bool:
        if progress is not None:
            progress.update(line for line in d.find_element(By.TAG_NAME, "body").text.splitlines()
                            if " step " in line or ": frame " in line)
        return RUN_OVER.search(d.find_element(By.ID, "status").text) is not None

    driver.get(url)
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photos input[type=file]")))
    driver.find_element(By.CSS_SELECTOR, "#photos input[type=file]").send_keys(
        str(photo) if also is None else f"{photo}\n{also}")
    WebDriverWait(driver, 60).until(lambda d: photo.stem in d.find_element(By.ID, "photos").text)
    if setup:
        setup(driver)
    # retried while the page's loading overlay still covers the button
    WebDriverWait(driver, 60, ignored_exceptions=[ElementClickInterceptedException, NoSuchElementException]).until(
        lambda d: d.find_element(By.ID, "restore").click() or True)
    WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.1).until(finished)
    return driver.find_element(By.ID, "status").text


def shown_images(driver, elem_id: str, count: int) -> list[tuple[int, int]]:
    """(naturalWidth, naturalHeight) of the images under #elem_id once `count` of them have loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth)"
              ".map(i => [i.naturalWidth, i.naturalHeight])")
    WebDriverWait(driver, 60).until(lambda d: len(d.execute_script(script, f"#{elem_id} img")) >= count)
    return [tuple(s) for s in driver.execute_script(script, f"#{elem_id} img")]


def check_restored_on_page(driver, url: str, photo: Path, faces_shown: int, screenshot: Path) -> str:
    """Restore `photo` from the page; the slider shows before and after at the photo's size."""
    from selenium.webdriver.common.by import By

    status = restore_on_page(driver, url, photo)
    driver.save_screenshot(str(screenshot))
    assert "1/1 photos written" in status, status
    size = Image.open(photo).size
    assert shown_images(driver, "compare", 2) == [size, size]
    assert len(shown_images(driver, "faces", faces_shown)) == faces_shown
    downloads = driver.find_element(By.ID, "downloads").text
    assert photo.stem in downloads and "report" in downloads
    assert "Traceback" not in driver.page_source
    return status


@pytest.fixture(scope="module")
def local_page(tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    with ui_process(log, "--allow-untrained") as url:   # the random-init AuthFace too
        assert "Running on local URL:  http://127.0.0.1:" in log.read_text()   # loopback by default
        yield url


def test_page_restores_a_photo_in_process(browser, local_page, tmp_path):
    status = check_restored_on_page(browser, local_page, GRACE_HOPPER, 3, tmp_path / "ui-in-process.png")
    assert "DEMO weights" in status   # the untrained-model note reaches the page
    print(f"screenshot: {tmp_path / 'ui-in-process.png'}")


def test_page_shows_an_error_for_a_non_image(browser, local_page, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is a text file, not a photo")
    status = restore_on_page(browser, local_page, bogus)
    browser.save_screenshot(str(tmp_path / "ui-error.png"))
    assert "0/1 photos written" in status
    assert "notes.png: not a readable image" in status
    assert "Traceback" not in browser.page_source


def test_page_shows_authface_steps_while_they_run(browser, local_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def authface_12_steps(driver) -> None:
        next(b for b in driver.find_elements(By.CSS_SELECTOR, "#restorer label") if b.text == "authface").click()
        steps = WebDriverWait(driver, 30).until(  # the option group appears once the server answers the change
            ec.visibility_of_element_located((By.CSS_SELECTOR, "#authface-steps input")))
        steps.clear()
        steps.send_keys("12")

    seen: set[str] = set()
    status = restore_on_page(browser, local_page, ASTRONAUT, authface_12_steps, seen)
    browser.save_screenshot(str(tmp_path / "ui-authface.png"))
    assert "1/1 photos written to the downloads with authface" in status and "UNTRAINED" in status, status
    assert seen and all(re.match(r"astronaut\.png: authface step \d+/12", line) for line in seen), seen


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 2 s H.264 clip made here (Grace Hopper's photo panned and zoomed, 12 frames at 6 fps,
    256x192) with a synthesised stereo AAC track."""
    from benchmarks.video import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "hopper.mp4", GRACE_HOPPER, frames=12, fps=6, size=(256, 192))


def check_restored_clip(clip: Path, restored: Path, faces: int) -> None:
    """The restored clip has the input's frames, times and audio packets (stream copy) and
    its faces changed (restored, not copied)."""
    from tests.clips import decoded_frames, stream_packets

    (frames_in, times_in), (frames_out, times_out) = decoded_frames(clip), decoded_frames(restored)
    assert len(frames_out) == len(frames_in) == 12 and times_out == times_in and faces == 12
    assert stream_packets(restored, "audio") == stream_packets(clip, "audio")
    assert np.abs(frames_out[6].astype(int) - frames_in[6]).mean() > 0.2


def test_page_restores_a_clip_and_a_photo_in_process(browser, local_page, clip, tmp_path):
    """A clip and a photo in one run, the shipped SaFM: the summary counts both and the frames,
    progress counts frames, the restored clip plays on the page and downloads with its audio."""
    from selenium.webdriver.common.by import By

    seen: set[str] = set()
    status = restore_on_page(browser, local_page, clip, also=GRACE_HOPPER, progress=seen)
    browser.save_screenshot(str(tmp_path / "ui-clip.png"))
    assert "2/2 files (1 photo, 1 clip: 12 frames) written to the downloads with safm (13 faces" in status, status
    assert "hopper.mp4: 12 frames, 12 faces (1 face tracks)" in status and "copied: audio aac" in status, status
    assert any(re.search(r"hopper\.mp4: frame \d+/12", line) for line in seen), seen
    assert shown_images(browser, "compare", 2) == [(256, 192), (256, 192)]   # the clip's middle frame
    downloads = browser.find_element(By.ID, "downloads").text
    assert "hopper\n.mp4" in downloads and "grace_hopper\n.jpg" in downloads and "report" in downloads, downloads
    src = browser.find_element(By.CSS_SELECTOR, "#clip video").get_attribute("src")   # what the page plays
    assert src and src.endswith("hopper.mp4"), src
    restored = tmp_path / "restored.mp4"
    with urllib.request.urlopen(src, timeout=30) as answer:
        restored.write_bytes(answer.read())
    check_restored_clip(clip, restored, 12)
    assert "Traceback" not in browser.page_source


@pytest.fixture(scope="module")
def triton_server(engines, tmp_path_factory):
    """A real tritonserver (bundled, CPU) serving only the SaFM ensemble, on the session's ONNX files."""
    from export.triton_repo import render_repo

    work = tmp_path_factory.mktemp("ui-triton")
    render_repo("cpu", work / "repo", engines, ["safm"])
    server = started_server(work / "repo")
    yield server
    server.stop()


def test_page_restores_a_photo_through_triton(browser, triton_server, tmp_path):
    from selenium.webdriver.common.by import By

    with ui_process(tmp_path / "ui.log", "--triton", f"grpc://{triton_server.grpc_url}") as url:
        status = check_restored_on_page(browser, url, ASTRONAUT, 2, tmp_path / "ui-triton.png")
        restorers = browser.find_element(By.ID, "restorer").text
    assert "round trip" in status and triton_server.grpc_url in status
    assert "safm" in restorers and "authface" not in restorers   # only the ensembles the server has ready


def test_triton_back_end_restores_a_clip(triton_server, clip, tmp_path):
    """The page's served back end: the clip's frames through the server, muxed back with its audio."""
    reports = []
    outcome = TritonBackend(f"grpc://{triton_server.grpc_url}").restore_clip(
        clip.name, clip, tmp_path / "hopper.mp4", "safm", {"fidelity": 0.5}, FaceOptions(),
        lambda fraction, desc: reports.append((fraction, desc)))
    assert outcome.encoded is None and outcome.after.shape == outcome.before.shape == (192, 256, 3)
    assert outcome.result.video["frames"] == 12 and "copied: audio aac" in outcome.notes[0]
    check_restored_clip(clip, tmp_path / "hopper.mp4", outcome.result.faces)
    assert [f for f, _ in reports] == sorted(f for f, _ in reports) and reports[-1][1] == "hopper.mp4: frame 12/12"
