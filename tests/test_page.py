"""The page of `rnnzoo serve` in a real headless browser: Debian's chromium through its
chromedriver (Selenium), against real servers of a tagging and a translation checkpoint.

A person's path: open the page, type a sentence, submit; the answer appears, and the heatmap
has one row per word (tagging: words x tags; translation: output tokens x source tokens).
A screenshot of each is kept under $RNNZOO_ARTIFACTS (or pytest's temporary folder). Without
a browser the tests skip and say why; .ci/run installs chromium and chromium-driver and sets
RNNZOO_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .test_serve import start_server, stop, train_checkpoint, wait_ready

CHROMIUM = os.environ.get("RNNZOO_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RNNZOO_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    for path, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not Path(path).is_file():
            missing = f"no browser for the page test: {path} not found (apt-get install {package})"
            if os.environ.get("RNNZOO_REQUIRE_BROWSER"):  # CI (.ci/run) installs one: a skip there would hide a failure
                pytest.fail(missing)
            pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,1400"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """task -> the URL of a real `rnnzoo serve` of a checkpoint of that task (both start side by side)."""
    root = tmp_path_factory.mktemp("page")
    started = {task: start_server(train_checkpoint(task, root / task)) for task in ("tagging", "translation")}
    try:
        yield {task: wait_ready(server).url for task, server in started.items()}
    finally:
        for server in started.values():
            stop(server)


def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RNNZOO_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def submit(browser, url: str, text: str, heatmap: str):
    """Open the page, type `text`, submit; the heatmap canvas named `heatmap`, once drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "task").text not in ("", "…"))
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "submit").click()
    return WebDriverWait(browser, 60).until(shown.presence_of_element_located(
        (By.CSS_SELECTOR, f'canvas.heatmap[data-name="{heatmap}"]')))


def test_the_page_tags_a_sentence_and_draws_its_tag_probabilities(browser, pages, tmp_path):
    from selenium.webdriver.common.by import By

    sentence = "the big cat sat on a mat"
    canvas = submit(browser, pages["tagging"], sentence, "tag probabilities")
    answer = browser.find_element(By.ID, "answer-text").text
    assert answer.split()[0].startswith("the/") and len(answer.split()) == 7
    tags = browser.execute_script("return fetch('/info').then(r => r.json()).then(i => i.vocab_sizes.tags)")
    assert int(canvas.get_attribute("data-rows")) == 7 and int(canvas.get_attribute("data-cols")) == tags
    assert len(browser.find_elements(By.CSS_SELECTOR, ".tokens .token")) == 7
    gate = browser.find_element(By.CSS_SELECTOR, 'canvas.heatmap[data-name="lstm.layer0.forward.input_gate"]')
    assert (gate.get_attribute("data-rows"), gate.get_attribute("data-cols")) == ("7", "16")  # words x hidden units
    browser.save_screenshot(str(artifacts(tmp_path) / "page_tagging.png"))


def test_the_page_translates_and_draws_the_attention(browser, pages, tmp_path):
    from selenium.webdriver.common.by import By

    canvas = submit(browser, pages["translation"], "a b c d e", "attention")
    reply = browser.execute_script(
        "return fetch('/api/predict', {method: 'POST', body: JSON.stringify({text: 'a b c d e'})}).then(r => r.json())")
    answer = reply["answer"]
    assert browser.find_element(By.ID, "answer-text").text.startswith(answer["translation"])
    assert int(canvas.get_attribute("data-rows")) == len(answer["target_tokens"])
    assert int(canvas.get_attribute("data-cols")) == len(answer["source_tokens"]) == 5
    browser.save_screenshot(str(artifacts(tmp_path) / "page_translation.png"))
