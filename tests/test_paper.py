"""The rendered paper opens in a real headless browser: every image loads, every internal link resolves, and the
page is not blank. Chromium comes from the Debian packages (`make browser`); without it the tests skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from subgroup_values import publish
from subgroup_values.paths import REPO_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                   reason="no chromium/chromedriver here: `make browser` installs them (Debian)")


def browse(html: Path, screenshot: Path) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.set_page_load_timeout(120)
        driver.get(html.resolve().as_uri())
        # chromedriver can hand back a large page before the parser has reached its end (seen once in CI: the
        # DOM held the first notebook only); wait for the whole document before counting what it holds.
        WebDriverWait(driver, 120, poll_frequency=0.5).until(
            lambda d: d.execute_script("return document.readyState") == "complete",
            message=f"{html} did not finish loading in 120 s")
        report = driver.execute_script("""
            const imgs = [...document.images];
            const links = [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
                .filter(h => h.length > 0);
            return {images: imgs.length,
                    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 60)),
                    links: links.length,
                    dangling: links.filter(h => !document.getElementById(decodeURIComponent(h))),
                    title: document.title, text: document.body.innerText.length, state: document.readyState};
        """)
        driver.save_screenshot(str(screenshot))
        return report
    finally:
        driver.quit()


def not_blank(png: Path) -> bool:
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    return img.std() > 0.02


def small_executed_notebooks(folder: Path) -> Path:
    from nbclient import NotebookClient

    folder.mkdir(parents=True)
    for name, title in [("01_build_dataset", "1. Data"), ("05_fairness", "5. Fairness")]:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell("import os"),
                    nbformat.v4.new_markdown_cell(f"# {title}\n\nText with a [link to section two](#nb-05-fairness)."),
                    nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]); plt.title('a figure')"),
                    nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [0.5, 0.25]})")]
        env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        old = dict(os.environ)
        os.environ.update(env)
        try:
            NotebookClient(nb, timeout=120, kernel_name="python3").execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def test_the_paper_stitches_the_notebooks_in_order(tmp_path):
    src = small_executed_notebooks(tmp_path / "nbs")
    html = publish.build_paper(src, tmp_path / "paper.html", "A title", "An abstract.", publish.closing_text())
    text = html.read_text()
    assert text.index("1. Data") < text.index("5. Fairness") and "Contents" in text and "Data terms" in text
    assert "data:image/png;base64" in text and "profile = &#39;smoke&#39;" not in text
    written = publish.publish_notebooks(src, tmp_path / "docs")
    assert [p.name for p in written] == ["01_build_dataset.ipynb", "05_fairness.ipynb"]
    with pytest.raises(FileNotFoundError, match="make all"):
        publish.build_paper(tmp_path / "empty", tmp_path / "x.html", "t", "a", "c")


@needs_browser
def test_the_paper_in_a_headless_browser(tmp_path):
    src = small_executed_notebooks(tmp_path / "nbs")
    html = publish.build_paper(src, tmp_path / "paper.html", "A title", "An abstract.", publish.closing_text())
    report = browse(html, tmp_path / "shot.png")
    assert report["images"] >= 2 and not report["broken"], report
    assert report["links"] >= 2 and not report["dangling"], report
    assert report["title"] == "A title" and not_blank(tmp_path / "shot.png")


@needs_browser
@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_the_rendered_study_in_a_headless_browser(profile, tmp_path):
    html = REPO_ROOT / "docs" / profile / "paper.html"
    if not html.is_file():
        pytest.skip(f"{html} not built: `make paper PROFILE={profile}` (make test builds the smoke one first)")
    report = browse(html, tmp_path / "shot.png")
    assert report["images"] >= 5 and not report["broken"], report
    assert report["links"] >= 5 and not report["dangling"], report
    assert report["text"] > 5000 and not_blank(tmp_path / "shot.png")
