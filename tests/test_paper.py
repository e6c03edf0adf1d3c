"""The rendered paper opens in a real headless browser: every image loads, every internal link resolves, the page
is not blank, and it reads like a paper: no element shows a local path, a progress bar, stderr, a warning or an
object's repr; its headings come in the study's order; no table is wider than the page; every figure has a
caption. A page with a planted violation of each fails the same check. Chromium comes from the Debian packages
(`make browser`); without it the browser tests skip."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.reporting import publish

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
        report.update(driver.execute_script(AUDIT))
        driver.save_screenshot(str(screenshot))
        return report
    finally:
        driver.quit()


#: What the page must not show (publish.LOCAL_PATH, PROGRESS and OBJECT_REPR, and warnings), searched in every
#: element's own text in the browser.
MUST_NOT_SHOW = {"a local path": publish.LOCAL_PATH.pattern, "a progress bar": publish.PROGRESS.pattern,
                 "an object repr": publish.OBJECT_REPR.pattern, "a warning": r"\b[A-Z]\w*Warning\b[:(]"}

AUDIT = """
const shows = %s;
// the appendix's folded runs are part of the page: open them so that their tables and figures are measured
document.querySelectorAll('details').forEach(d => { d.open = true; });
const out = {shown: [], stderr: 0, progress_elements: 0, headings: [], tables: [], figures: [], width: 0};
out.width = document.documentElement.clientWidth;
// every element whose own text (its text nodes, not its children's) shows what it must not
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement;
  if (!el || el.closest('style, script')) continue;
  for (const [what, pattern] of Object.entries(shows)) {
    const m = new RegExp(pattern).exec(n.textContent);
    if (m) out.shown.push([what, el.tagName, n.textContent.slice(Math.max(0, m.index - 60), m.index + 80)]);
  }
}
out.stderr = document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length;
out.progress_elements = document.querySelectorAll('progress').length;
out.headings = [...document.querySelectorAll('h1, h2')].map(h => [h.tagName, h.innerText.replace(/\\u00b6/g, '').trim()]);
for (const t of document.querySelectorAll('table')) {
  const r = t.getBoundingClientRect();
  const cell = t.querySelector('td, th');
  out.tables.push({right: r.right, left: r.left, width: r.width, scroll: t.scrollWidth,
                   wraps: cell ? getComputedStyle(cell).whiteSpace !== 'nowrap' : true,
                   head: t.innerText.slice(0, 60)});
}
for (const img of document.querySelectorAll('img')) {
  const fig = img.closest('figure');
  const cap = fig ? fig.querySelector('figcaption') : null;
  out.figures.push({caption: cap ? cap.innerText.trim() : '', src: img.src.slice(0, 40)});
}
return out;
""".replace("%s", __import__("json").dumps(MUST_NOT_SHOW))


def section_number(heading: str) -> tuple[str, ...] | None:
    """``3. Title`` -> ('3',); ``5.2 Title`` -> ('5', '2'); ``A.3 Title`` -> ('A', '3'); ``Appendix A. ...`` ->
    ('A',); unnumbered -> None."""
    m = re.match(r"^(?:Appendix\s+)?([A-Z]|\d+)(?:\.(\d+))?\.?\s", heading)
    return None if m is None else tuple(g for g in m.groups() if g)


def page_problems(report: dict) -> list[str]:
    """What keeps the page from reading like a paper (empty: none), from :data:`AUDIT`'s report."""
    problems = [f"{tag} element shows {what}: {text!r}" for what, tag, text in report["shown"]]
    if report["stderr"]:
        problems.append(f"{report['stderr']} stderr outputs")
    if report["progress_elements"]:
        problems.append(f"{report['progress_elements']} <progress> elements")
    # headings in the study's order: the title, sections 1, 2, 3, ... (each once), their numbered subsections
    # in order, then the appendix (A, A.1, A.2, ...), then unnumbered end matter (data terms, citation)
    h1 = [t for tag, t in report["headings"] if tag == "H1"]
    for t in sorted({t for t in h1 if h1.count(t) > 1}):
        problems.append(f"section heading {t!r} appears {h1.count(t)} times")
    expected, section, sub, ended = 1, None, 0, False
    for tag, text in report["headings"][1:]:
        num = section_number(text)
        if tag == "H1":
            if num is None:
                ended = True
                continue
            if ended:
                problems.append(f"section {text!r} comes after the end matter")
            if num[0].isdigit():
                if section == "A" or int(num[0]) != expected:
                    problems.append(f"section {text!r} out of order: expected section {expected}"
                                    + (" before the appendix" if section == "A" else ""))
                expected = int(num[0]) + 1
            section, sub = num[0], 0
        elif num is not None and len(num) == 2:
            if num[0] != section or int(num[1]) != sub + 1:
                problems.append(f"subsection {text!r} out of order: in section {section}, after {sub}")
            sub = int(num[1])
    if expected == 1:
        problems.append("no numbered sections")
    # no table wider than the page (where the browser lays it out), and cells that wrap
    for t in report["tables"]:
        if t["right"] > report["width"] + 1 or t["scroll"] > t["width"] + 1:
            problems.append(f"table {t['head']!r} is wider than the page ({t['right']:.0f} px > {report['width']} px)")
        if not t["wraps"]:
            problems.append(f"table {t['head']!r} does not wrap (white-space: nowrap)")
    for f in report["figures"]:
        if len(f["caption"]) < 12 or not f["caption"].startswith("Figure"):
            problems.append(f"figure {f['src']!r} has no caption")
    return problems


def not_blank(png: Path) -> bool:
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    return img.std() > 0.02


#: Cells that make what a real step's notebook shows: a progress bar and a warning on stderr, a printed dict of
#: paths of this machine, the files a plotting call returns, numpy scalars, a wide table with a row-number index.
NOISE = [
    "import warnings, pathlib\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='pairs'):\n    pass\n"
    "warnings.warn('a harmless deprecation', FutureWarning)",
    f"print({{'pairs': pathlib.Path({str(REPO_ROOT / 'data' / 'processed' / 'pairs.csv')!r})}})",
    "import numpy as np\nprint('answers given (share):', {np.int64(1): np.float64(0.25), np.int64(2): 0.75})",
    "[pathlib.Path('figures/smoke/x.png'), pathlib.Path('figures/smoke/x.pdf')]",
    "import pandas as pd\npd.DataFrame({f'a long column name {i}': ['a cell with words that have to wrap ' * 3]"
    " for i in range(16)})",
]


def small_executed_notebooks(folder: Path) -> Path:
    """Four executed notebooks, the shape of a profile's: two sections, the evaluation section's principal run and
    one further run (they read the committed runs of results/default/ for the table)."""
    from nbclient import NotebookClient

    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import os"),
                nbformat.v4.new_markdown_cell("# TITLE\n\nText with a [link to section two](#nb-05-fairness)."),
                nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_markdown_cell("## 1. A numbered part\n\n### A smaller part"),
                nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]); plt.title('a figure')"),
                nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [0.5, 0.25]})"),
                nbformat.v4.new_markdown_cell("## 2. Another numbered part"),
                *map(nbformat.v4.new_code_cell, NOISE)]
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()  # once: the four differ in their titles
    finally:
        os.environ.clear()
        os.environ.update(old)
    for name, title in [("01_build_dataset", "1. Data"), ("05_fairness", "5. Fairness"),
                        ("03_evaluate__base_ood", "3. Evaluation"), ("03_evaluate__base_train", "3. Evaluation")]:
        one = __import__("copy").deepcopy(nb)
        one.cells[1].source = one.cells[1].source.replace("TITLE", title)
        nbformat.write(one, folder / f"{name}.ipynb")
    return folder


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Path:
    return small_executed_notebooks(tmp_path_factory.mktemp("paper") / "nbs")


RESULTS = REPO_ROOT / "results" / "default"


def test_the_paper_stitches_the_notebooks_in_order(executed, tmp_path):
    src = executed
    html = publish.build_paper(src, tmp_path / "paper.html", "A title", "An abstract.", publish.closing_text(),
                               results=RESULTS)
    text = html.read_text()
    # the page numbers its sections in the study's order; the further run is in the appendix
    assert (text.index("1. Data") < text.index("2. Evaluation") < text.index("3. Fairness")
            < text.index("Appendix A.") < text.index("A.1 Run base_train") < text.index("Data terms"))
    assert "Contents" in text and "3.1 A numbered part" in text and "3.2 Another numbered part" in text
    assert "data:image/png;base64" in text and "profile = &#39;smoke&#39;" not in text
    # the evaluation section's table of runs, from the committed runs' metrics (numbers written by code)
    base = __import__("json").loads((RESULTS / "base_ood" / "metrics.json").read_text())
    acc = next(r for r in base["by_subset"] if r["subset"] == "all" and r["metric"] == "accuracy")
    from subgroup_values.core.claims import fmt_ci

    assert 'class="sv-runs"' in text and fmt_ci(acc["estimate"], acc["lo"], acc["hi"]) in text
    assert 'href="#nb-03-evaluate-base-train"' in text
    # a further run of the evaluation notebook keeps its headings and outputs, not the narrative shown in §2
    appendix = text[text.index('id="nb-03-evaluate-base-train"'):]
    assert "Its narrative is §2&#39;s" in appendix or "Its narrative is §2's" in appendix
    assert "link to section two" not in appendix and "A.1.1 A numbered part" in appendix
    # folded: the run's heading stays, its notebook opens on demand (or when a link leads into it)
    assert appendix.index('<details class="sv-run-body">') < appendix.index("A.1.1 A numbered part")
    assert appendix.index("</details>") < appendix.index('id="end-matter"') and "svOpenTarget" in text
    # what a reader must not see: stderr, progress bars, local paths, reprs; the files a plot wrote
    for bad in ("FutureWarning", "it/s]", str(REPO_ROOT), "PosixPath", "np.int64", "figures/smoke/x.png"):
        assert bad not in text, bad
    assert "pairs: data/processed/pairs.csv" in text and "answers given (share): 1: 0.25, 2: 0.75" in text
    # every figure inside a <figure> with its caption
    assert text.count("<figure") == text.count('<figcaption class="sv-caption">Figure') == 4
    assert "Figure 1. A figure (§1, A numbered part)." in text
    written = publish.publish_notebooks(src, tmp_path / "docs")
    assert [p.name for p in written] == ["01_build_dataset.ipynb", "03_evaluate__base_ood.ipynb",
                                         "05_fairness.ipynb", "03_evaluate__base_train.ipynb"]
    assert not any(o.get("name") == "stderr" for c in nbformat.read(written[0], as_version=4).cells
                   for o in c.get("outputs", []))
    with pytest.raises(FileNotFoundError, match="make all"):
        publish.build_paper(tmp_path / "empty", tmp_path / "x.html", "t", "a", "c")


def test_outputs_lose_progress_bars_paths_and_reprs():
    bar = "\rpairs:  13%|█▎        | 27/214 [00:00<00:00, 267.86it/s]\rpairs: 100%|██████████| 214/214 [00:00<00:00]"
    assert publish.clean_text(f"kept line\n{bar}\n") == "kept line\n"
    assert publish.clean_text("{'pairs': '/work/x/data/processed/pairs.csv', 'n': np.int64(3)}") == \
        "pairs: data/processed/pairs.csv, n: 3"
    assert publish.clean_text("[PosixPath('figures/default/a.png')]") == "figures/default/a.png"
    assert publish.local_paths_out("/home/u/.venv/lib/python3.11/site-packages/tqdm/auto.py:21") == "tqdm/auto.py:21"
    assert publish.clean_text('{\n "seconds": 1.5,\n "resumed_from": null\n}') == "seconds: 1.5\nresumed_from: none"
    assert publish.clean_text("a sentence {with braces} stays") == "a sentence {with braces} stays"
    html = ('<table class="dataframe"><thead><tr><th></th><th>qid</th></tr></thead><tbody>'
            "<tr><th>0</th><td>Q1</td></tr><tr><th>1</th><td>Q2</td></tr></tbody></table>")
    cleaned = publish._html_table_without_range_index(html)
    assert "<th>0</th>" not in cleaned and "<td>Q1</td>" in cleaned and "<th>qid</th>" in cleaned
    named = html.replace("<th>0</th>", "<th>Q</th>")
    assert publish._html_table_without_range_index(named).count("<th>") == 4  # a named index is data: kept
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("stream", name="stderr", text="FutureWarning: x"),
        nbformat.v4.new_output("display_data", data={"text/html": "<progress value='3' max='9'></progress>"}),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")])
    publish.clean_outputs(cell)
    assert [o.get("text") for o in cell.outputs] == ["done\n"]
    assert publish.figure_titles("ax.set(xlabel='x', title='A title')\nfig.suptitle(f'B {run}')") == ["A title", "B"]
    assert publish.figure_names("plots.save(fig, 'headroom', d)\nplots.save(fig, f'eval_{run}_vs_paper', d)\n"
                                "plots.save(fig, 'a' if x else f'b{x}', d)") == ["headroom", "eval_*_vs_paper", "a"]
    assert publish._described("eval_*_vs_paper") == publish.FIGURE_CAPTIONS["eval_*_vs_paper"]
    assert publish._described("headroom") and not publish._described("no_such_figure")


def test_a_published_notebook_names_the_survey_file_it_was_given_without_this_machines_folders(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('wvs_file = ""'),
        nbformat.v4.new_code_cell('# Parameters\nwvs_file = "/work/shared/wvs7/WVS_7.csv"\nrun = "results/x"\n',
                                  metadata={"tags": ["injected-parameters"]})])
    (tmp_path / "src").mkdir()
    nbformat.write(nb, tmp_path / "src" / "08_headroom.ipynb")
    [out] = publish.publish_notebooks(tmp_path / "src", tmp_path / "docs")
    cells = nbformat.read(out, as_version=4).cells
    assert cells[1].source == '# Parameters\nwvs_file = "WVS_7.csv"\nrun = "results/x"\n'
    assert not publish.LOCAL_PATH.search(out.read_text())


def test_the_abstract_states_the_findings_from_the_claims(tmp_path):
    from subgroup_values.core import claims

    # the page's own words (the question, the figures' descriptions) state no finding: those come from claims
    for text in (publish.QUESTION, *publish.FIGURE_CAPTIONS.values()):
        assert claims.typed_findings(text) == [], text

    have = claims.read_profile_claims(RESULTS)
    text = publish.abstract_text(RESULTS, ["data.counts", "evaluation.base_ood.vs_uniform.accuracy.all"])
    assert have["data.counts"].sentence in text and "Not computed" not in text
    text = publish.abstract_text(RESULTS, ["data.counts", "headroom.no_such_claim"])
    assert "Not computed in this profile: `headroom.no_such_claim`" in text


@needs_browser
def test_the_paper_in_a_headless_browser(executed, tmp_path):
    html = publish.build_paper(executed, tmp_path / "paper.html", "A title", "An abstract.",
                               publish.closing_text(), results=RESULTS)
    report = browse(html, tmp_path / "shot.png")
    assert report["images"] >= 2 and not report["broken"], report
    assert report["links"] >= 2 and not report["dangling"], report
    assert report["title"] == "A title" and not_blank(tmp_path / "shot.png")
    assert page_problems(report) == []


#: One violation of each kind, planted into a clean page: the check must name every one.
PLANTED = {
    "a local path": '<div class="jp-OutputArea-output"><pre>/work/someone/.venv/lib/python3.11/x.py</pre></div>',
    "a progress bar": '<div class="jp-OutputArea-output"><pre>pairs:  42%|████      | 84/200 [00:01&lt;00:02, '
                      "55.1it/s]</pre></div>",
    "an object repr": "<pre>[PosixPath('figures/default/a.png')]</pre>",
    "a warning": "<pre>tqdm/auto.py:21: TqdmWarning: IProgress not found</pre>",
    "stderr outputs": '<div class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.stderr">x</div>',
    "no caption": "<div><img src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                  "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='></div>",
    "wider than the page": "<table><tr>" + "".join(f"<td style='white-space: nowrap'>a long unbreakable cell {i}"
                                                   "</td>" for i in range(30)) + "</tr></table>",
    "out of order": "<h1>2. A section again</h1>",
    "appears 2 times": "<h1>Data terms</h1>",
}


@needs_browser
def test_the_check_fails_on_a_planted_violation(executed, tmp_path):
    html = publish.build_paper(executed, tmp_path / "paper.html", "A title", "An abstract.",
                               publish.closing_text(), results=RESULTS)
    text = html.read_text()
    planted = tmp_path / "planted.html"
    planted.write_text(text.replace("</body>", "".join(PLANTED.values()) + "</body>"))
    problems = page_problems(browse(planted, tmp_path / "shot.png"))
    for what in PLANTED:
        assert any(what in p for p in problems), (what, problems)
    # and a section that leaves the study's order, alone, is named as such
    moved = text.replace(">3. Fairness", ">4. Fairness")
    assert moved != text
    problems = page_problems(browse(_write(tmp_path / "moved.html", moved), tmp_path / "shot.png"))
    assert problems and all("out of order" in p for p in problems), problems


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


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
    assert page_problems(report) == [], f"{html} does not read like a paper: rebuild it with `make paper`"
