"""The live page's server started as a user starts it (`python live.py --no-browser`), driven
through its JSON API and, where Chromium installs, through its page in a real headless browser:
play trains lab5's own runs, pause holds them, a learning rate changes mid-run without a
recompile, drawn points train, Save writes a run folder that make_gifs.py draws and --resume
extends, and every mistake is a 400 with one line while the server goes on."""

from __future__ import annotations

import base64
import json
import math
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import ROOT

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "chrome"))), None)
DRIVER = shutil.which("chromedriver")


def start_server(folder: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, str(ROOT / "live.py"), "--no-browser", "--port", "0", *flags]
    server = subprocess.Popen(argv, cwd=folder, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    assert line.startswith("lab5 live: http://127.0.0.1:"), line
    return server, line.split()[2]


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM, which the server takes as Ctrl-C: it ends cleanly, exit 0 (Windows has no
    SIGTERM to send another process: there it is only ended)."""
    if sys.platform == "win32":
        server.terminate()
        server.wait(timeout=60)
        return
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0


def call(url: str, path: str, body=None) -> tuple[int, dict]:
    """GET (no body) or POST (a body: a dict as JSON, bytes as they are) and the JSON answer."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, data=data, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for(url: str, check, timeout_s: float = 180.0) -> dict:
    """The state once check(state) holds."""
    ends = time.monotonic() + timeout_s
    while time.monotonic() < ends:
        state = call(url, "/api/state")[1]
        if check(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"the session did not get there: {state['status']}, {state['epoch']}")


@pytest.fixture(scope="module")
def eager(tmp_path_factory):
    """A server training GAN eagerly (tiny: no compile to wait for), in a folder of its own."""
    folder = tmp_path_factory.mktemp("live")
    server, url = start_server(folder, "--variant", "gan", "--no-compile")
    yield folder, url
    stop_server(server)


def ratios(state: dict, variant: str = "gan") -> list[float]:
    return [row[variant]["ratio"] for row in state["history"]]


def test_play_trains_the_m_and_pause_holds_the_epoch(eager):
    _, url = eager
    wait_for(url, lambda s: s["status"] == "paused" and s["runs"])
    assert call(url, "/api/control", {"action": "play"})[0] == 200
    state = wait_for(url, lambda s: s["epoch"] >= 8)
    assert call(url, "/api/control", {"action": "pause"})[0] == 200
    held = wait_for(url, lambda s: s["status"] == "paused")["epoch"]
    time.sleep(1.5)
    assert call(url, "/api/state")[1]["epoch"] == held
    found = ratios(state)
    assert all(math.isfinite(r) for r in found) and found[-1] < found[0] / 2 and found[-1] < 3
    view = state["last"][0]  # what the page draws: D(x) on [0, 1] over the window
    assert len(view["landscape"]) == 64 * 64 and view["scale"] == [0.0, 1.0]
    assert len(view["fake"]) == 600 and len(state["runs"][0]["test"]) == 1192


BAD = [
    ("/api/control", b"{not json", "the request's body is not JSON"),
    ("/api/control", {"action": "fly"}, "no action 'fly': the actions are play, pause"),
    ("/api/control", {"action": "set"}, '"set" takes {setting: value, ...}'),
    ("/api/control", {"set": {"colour": 1}}, "no setting colour: the settings are variant"),
    ("/api/control", {"set": {"lr": -1}}, "--lr must be a positive number"),
    ("/api/control", {"set": {"gp_weight": 1}}, "gp_weight is WGAN-GP's setting, not GAN's"),
    ("/api/control", {"set": {"data": "../../etc/passwd"}}, "data '../../etc/passwd': one of"),
    ("/api/control", {"action": "save", "name": "../escape"}, "a saved run's name is 1 to 60"),
    ("/api/data", {"points": [[0, 0], [1, 1], [2, 2]]}, "the drawing has 3 rows"),
    ("/api/data", {"points": [[0, "x"]]}, "drawn points must be up to 100000 [x, y] pairs"),
    ("/api/data", {"name": "pts.exe", "content": ""}, "pts.exe: cannot read '.exe' files"),
    (
        "/api/data",
        {"name": "../../pts.csv", "content": "bm90IGJhc2U2NCE"},
        "an uploaded file's content must be base64",
    ),
    ("/api/data", {"shape": "M"}, 'send {"points": [[x, y], ...]} or {"name": FILE'),
]


@pytest.mark.parametrize("path,body,error", BAD, ids=[b[2][:30] for b in BAD])
def test_a_mistake_is_a_400_with_one_line_and_the_server_goes_on(eager, path, body, error):
    folder, url = eager
    before = call(url, "/api/state")[1]["settings"]
    status, answer = call(url, path, body)
    assert status == 400 and answer["error"].startswith(error) and "\n" not in answer["error"]
    state = call(url, "/api/state")[1]
    assert state["settings"] == before and not (folder.parent / "pts.csv").exists()


def test_nothing_but_the_api_is_served_and_no_path_leaves_it(eager):
    _, url = eager
    host = url.split("//")[1].rstrip("/")
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/runs/../live.py", "/api"):
        request = f"GET {path} HTTP/1.0\r\n\r\n".encode()
        answer = subprocess.run(
            [sys.executable, "-c", RAW_GET, host], input=request, capture_output=True, timeout=30
        ).stdout
        assert answer.startswith(b"HTTP/1.0 404") and b"root:" not in answer, path


RAW_GET = """
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port))) as s:
    s.sendall(sys.stdin.buffer.read())
    sys.stdout.buffer.write(s.recv(65536))
"""


def test_drawn_points_and_an_uploaded_file_train(eager):
    """A file uploaded under a name with a path in it is kept in the session's own folder, not
    beside the server's."""
    folder, url = eager
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi, 300)
    circle = np.c_[np.cos(angle), np.sin(angle)].round(4).tolist()
    status, answer = call(url, "/api/data", {"points": circle})
    assert status == 200 and answer["changed"] == {"data": "drawn"}
    wait_for(url, lambda s: s["runs"] and len(s["runs"][0]["test"]) < 300)
    call(url, "/api/control", {"action": "step"})
    state = wait_for(url, lambda s: s["epoch"] == 1)
    assert math.isfinite(state["last"][0]["ratio"]) and state["settings"]["data"] == "drawn"
    text = "x,y\n" + "\n".join(f"{x},{y}" for x, y in circle)
    upload = {"name": "../../escape.csv", "content": base64.b64encode(text.encode()).decode()}
    status, answer = call(url, "/api/data", upload)
    assert status == 200 and answer["changed"] == {"data": "upload"}
    assert not list(folder.parent.rglob("escape.csv")) and not list(folder.rglob("*.csv"))


def test_a_live_change_does_not_recompile_and_save_makes_a_run_that_resumes(tmp_path):
    """Compiled, as a user runs it: lr changed after two epochs reaches the optimiser's state
    with no new graph; Save gives a completed run of the epochs trained, which make_gifs.py
    draws and --resume extends."""
    server, url = start_server(tmp_path, "--variant", "gan", "--root", "saved")
    try:
        wait_for(url, lambda s: s["status"] == "paused" and s["runs"])
        for _ in range(2):
            call(url, "/api/control", {"action": "step"})
        compiled = wait_for(url, lambda s: s["epoch"] == 2)["compiled_graphs"]
        assert call(url, "/api/control", {"set": {"lr": 0.0005}})[1]["restarts"] is False
        call(url, "/api/control", {"action": "step"})
        state = wait_for(url, lambda s: s["epoch"] == 3)
        assert state["compiled_graphs"] == compiled and state["changes"] == [[2, "lr", 0.0005]]
        status, answer = call(url, "/api/control", {"action": "save", "name": "mine"})
        assert status == 200 and answer["saved"] == ["saved/mine"]
    finally:
        stop_server(server)
    saved = tmp_path / "saved" / "mine"
    checkpoint = torch.load(saved / "checkpoint.pt")
    assert checkpoint["epoch"] == 3 and float(checkpoint["state"]["g_opt"]["lr"][0]) == np.float32(
        0.0005
    )
    config = json.loads((saved / "config.json").read_text())
    assert config["epochs"] == 3 and config["lr"] == 0.0005
    assert json.loads((saved / "summary.json").read_text())["status"] == "completed"
    gifs = subprocess.run([sys.executable, ROOT / "plots" / "make_gifs.py", saved], cwd=tmp_path)
    assert gifs.returncode == 0 and (tmp_path / "saved" / "mine.gif").exists()
    resume = [sys.executable, ROOT / "variants" / "gan.py", "--resume", saved, "--epochs", "4"]
    assert subprocess.run(resume, cwd=tmp_path, capture_output=True).returncode == 0
    assert json.loads((saved / "summary.json").read_text())["epochs_done"] == 4


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no chromium and chromedriver on PATH")
def test_in_a_browser_play_moves_the_picture_a_control_sets_and_the_mouse_draws(tmp_path):
    from selenium import webdriver
    from selenium.webdriver import ActionChains

    server, url = start_server(tmp_path, "--variant", "gan", "--no-compile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    try:
        browser.get(url)
        wait_for(url, lambda s: s["status"] == "paused" and s["runs"])
        browser.find_element("id", "play").click()
        pictures = []
        for epoch in (2, 5):
            wait_for(url, lambda s, e=epoch: s["epoch"] >= e)
            time.sleep(0.5)
            png = browser.find_element("css selector", "#panel0 canvas").screenshot_as_png
            pictures.append(np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int))
        browser.find_element("id", "pause").click()
        assert all(picture.std() > 10 for picture in pictures)  # neither blank
        assert np.abs(pictures[0] - pictures[1]).mean() > 1  # the picture moved
        lr = browser.find_element("css selector", "input[data-setting=lr]")
        lr.clear()
        lr.send_keys("0.0003\n")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", lr)
        wait_for(url, lambda s: s["settings"]["lr"] == 0.0003)
        browser.find_element("id", "draw").click()
        canvas = browser.find_element("css selector", "#panel0 canvas")
        stroke = ActionChains(browser).move_to_element_with_offset(canvas, -100, 0).click_and_hold()
        for step in range(40):
            stroke = stroke.move_by_offset(5, 3 if step % 2 else -3)
        stroke.release().perform()
        browser.find_element("id", "use").click()
        state = wait_for(url, lambda s: s["settings"]["data"] == "drawn" and s["runs"])
        assert len(state["runs"][0]["test"]) > 10
    finally:
        browser.quit()
        stop_server(server)
