"""report.html: it parses, holds its sections, escapes data texts, needs no network and no
script; rendered in headless Chromium where one is installed."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from training.report import ReportInputs, render, write_report

EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Tags, section ids, the text of every cell, and any URL a tag points at."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.ids, self.cells, self.urls = [], [], [], []
        self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "h2":
            self.ids.append(attrs.get("id"))
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]
        self._in_cell = tag == "td"

    def handle_endtag(self, tag):
        self._in_cell = self._in_cell and tag != "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


def inputs(problem_type=SINGLE_LABEL, windows=None, n=30, seed=0):
    rng = np.random.default_rng(seed)
    texts = [f"text {i}" for i in range(n)]
    texts[3] = EVIL
    summary = {"task": "t<b>", "model": "tiny", "examples": "train 8, dev 30",
               "device": "cpu", "precision": "fp32", "time": "1.0 s"}
    stats = [{"epoch": 1, "step": 2, "train_loss": 0.9, "dev_loss": 0.8, "dev_accuracy": 0.5},
             {"epoch": 2, "step": 4, "train_loss": 0.5, "dev_loss": 0.6, "dev_accuracy": 0.7}]
    if problem_type == REGRESSION:
        labels = rng.uniform(0, 5, n)
        logits = (labels + rng.normal(0, 1, n))[:, None]
        names = None
    elif problem_type == MULTI_LABEL:
        labels = (rng.random((n, 3)) < 0.4).astype(np.float32)
        logits = rng.normal(size=(n, 3)) + 2 * (labels - 0.5)
        names = ["a", "b<i>", "c"]
    else:
        labels = rng.integers(0, 2, n)
        logits = rng.normal(size=(n, 2)) * 3
        logits[3] = [9.0, -9.0] if labels[3] == 1 else [-9.0, 9.0]  # the evil row: sure, wrong
        names = ["neg", "pos"]
    return ReportInputs(summary=summary, results={"eval_accuracy": 0.7}, stats=stats,
                        problem_type=problem_type, label_list=names,
                        logits=logits.astype(np.float32), labels=labels, texts=texts,
                        warnings=["dev has one class only (x<y)"], windows=windows)


def check_page(text: str, sections) -> Page:
    page = Page(text)
    assert "script" not in page.tags and page.urls == []
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert set(sections) <= set(page.ids), page.ids
    assert "<b>" not in text and "x<y" not in text
    return page


def test_classification_page(tmp_path):
    path = write_report(str(tmp_path), inputs())
    with open(path, encoding="utf-8") as f:
        page = check_page(f.read(), ["summary", "notes", "results", "curves", "confusion",
                                     "per-class", "reliability", "mistakes"])
    assert EVIL in page.cells  # shown as text, in a cell
    shown = [c for c in page.cells if c == EVIL or c.startswith("text ")]
    assert shown[0] == EVIL  # the surest mistake comes first
    assert os.listdir(tmp_path) == ["report.html"]


def test_regression_multi_label_and_windows_pages():
    check_page(render(inputs(REGRESSION)), ["scatter", "errors", "curves"])
    page = check_page(render(inputs(MULTI_LABEL)), ["per-label", "reliability", "mistakes"])
    assert "b<i>" in page.cells
    text = render(inputs(windows=list(range(1, 31))))
    page = check_page(text, ["mistakes"])
    assert "windows" in text and "document" in text


def test_no_training_and_no_mistakes():
    r = inputs()
    r.stats, r.logits = [], np.where(np.eye(2)[r.labels] > 0, 5.0, -5.0).astype(np.float32)
    text = render(r)
    assert "evaluation only" in text and "(0 wrong dev rows in all)" in text


def test_renders_in_headless_chromium(tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium installed (apt-get install chromium)")
        pytest.skip("no headless browser installed")
    path = write_report(str(tmp_path), inputs())
    png = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={png}", "--window-size=1200,2000", "file://" + path],
                   check=True, capture_output=True, timeout=90)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
