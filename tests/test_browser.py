"""runs/index.html opened from the file system in a real, headless Chromium: every image
loads, every card's numbers are its summary's, and a screenshot is saved. Skips, saying why,
where there is no Chromium and chromedriver (.ci/run installs Debian's)."""

import shutil
from urllib.parse import unquote

import pytest

from plots.page import write_index
from tests.run_folders import build_runs

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "chrome"))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1200,2400",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


def test_the_page_loads_every_image_and_shows_the_summaries(browser, tmp_path):
    summaries = build_runs(tmp_path)
    page = write_index(tmp_path)
    browser.get(page.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images, i => [i.getAttribute('src'),"
        " i.complete && i.naturalWidth > 0])"
    )
    expected = sorted(
        p.relative_to(tmp_path).as_posix()
        for p in [*tmp_path.rglob("*.gif"), *tmp_path.rglob("curves.png")]
    )
    assert sorted(unquote(src) for src, _ in images) == expected
    assert [src for src, loaded in images if not loaded] == []
    cards = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.card'), c => [c.dataset.run,"
        " Array.from(c.querySelectorAll(':scope > table td.number'),"
        " td => [td.dataset.key, td.dataset.value, td.textContent])])"
    )
    assert {unquote(name) for name, _ in cards} == set(summaries)
    for name, numbers in cards:
        final = summaries[unquote(name)]["final"]
        shown = {key: float(value) for key, value, _ in numbers}
        assert shown["w1"] == final.get("w1", final.get("w1_mean"))
        assert shown["precision"] == final.get("precision", final.get("precision_mean"))
    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
