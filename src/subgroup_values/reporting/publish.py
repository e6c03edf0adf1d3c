"""The study in one readable page, and its executed notebooks where people read them.

    python -m subgroup_values.reporting.publish --profile default        (make paper)

1. The executed notebooks of a profile (``build/notebooks/<profile>/``, written by ``make all``) are copied to
   ``docs/<profile>/notebooks/`` (GitHub renders them; README links there), with widget state and execution
   timing metadata dropped so that they stay small and stable.
2. ``docs/<profile>/paper.html``: one HTML document stitched from those notebooks with nbconvert (the HTML
   exporter Jupyter itself uses; figures are embedded PNGs, so the page needs nothing beside it), laid out as a
   paper: the title, an abstract that states the findings (the sentences of the profile's claims,
   ``results/<profile>/claims/``, the same claims as README's first screen: written by code, never typed), the
   contents, the study's sections in its order and numbered by the page (:data:`BODY`; one evaluation section,
   the principal run of notebook 3, with every run of notebook 3 as a table from their ``metrics.json``), an
   appendix with the other runs' notebooks, then the data terms and the citation. Code cells are folded away
   by default (``--show-code`` keeps them).

   Outputs are shown as a reader wants them (:func:`clean_outputs`, also in the copies of step 1): no stderr
   (warnings, progress bars), no progress-bar lines or widgets, paths of this machine made relative, object reprs
   (``PosixPath(...)``, ``np.int64(...)``, printed dicts) as words, row-number index columns dropped. Every
   figure gets a numbered caption (its title from the cell, else its subsection); tables wrap to the page (CSS).
   The runner keeps the libraries' progress bars and known harmless warnings out of the notebooks in the first
   place (``runner.quiet_kernel_environment``); this cleaning catches the rest and older notebooks.

Why nbconvert rather than Jupyter Book or Quarto: it is already a dependency (papermill uses it), it needs no
extra toolchain on Binder or these machines, and one self-contained HTML file is what a reader opens.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
from html import escape as html_escape
from pathlib import Path

import nbformat

from ..core.paths import REPO_ROOT

#: The executed notebooks in the study's order: the body's sections first, then the further runs.
ORDER = ["01_build_dataset", "02_value_landscape", "03_evaluate__base_ood", "04_finetune", "05_fairness",
         "06_open_ended", "08_headroom", "07_paper_comparison",
         "03_evaluate__base_train", "03_evaluate__base_ood_generate", "03_evaluate__base_ood_refusals",
         "03_evaluate__base_ood_marginals", "03_evaluate__sft_ood", "03_evaluate__sft_train",
         "03_evaluate__sft_ood_generate", "03_evaluate__sft_ood_refusals", "03_evaluate__sft_ood_marginals",
         "04_finetune__sft_distribution", "03_evaluate__sft_distribution_ood",
         "03_evaluate__sft_distribution_ood_marginals"]
#: The paper's sections, in the study's order (one notebook each). The evaluation section is the principal run of
#: notebook 3 (the base model on the OOD subgroups) with every run of notebook 3 as a table; the other runs and any
#: further notebook go to the appendix.
BODY = ["01_build_dataset", "02_value_landscape", "03_evaluate__base_ood", "04_finetune", "05_fairness",
        "06_open_ended", "08_headroom", "07_paper_comparison"]
EVALUATION = "03_evaluate__base_ood"
# (subgroup_values_reuse: the mark of a target reuse.py wrote from the committed copy; the copy stays as it was)
DROP_METADATA = ("widgets", "execution", "papermill", "subgroup_values_reuse")


def executed_notebooks(src: Path) -> list[Path]:
    """The profile's executed notebooks in the study's order (those that exist)."""
    found = {p.stem: p for p in Path(src).glob("*.ipynb") if not p.stem.endswith((".partial", ".failed"))}
    return [found[s] for s in ORDER if s in found] + sorted(p for s, p in found.items() if s not in ORDER)


# ---- outputs as a reader sees them: no stderr, progress bars, local paths or object reprs ---------------------------

#: A progress bar's line (tqdm: ``42%|████      | 84/200 [00:01<00:02, 55.1it/s]``).
PROGRESS = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+|\[\d+:\d+<[\d:?]+,|\d+(?:\.\d+)?\s*(?:it/s|s/it|examples/s)\]"
                      r"|<progress[\s>]")
#: A path of this machine: absolute with a user or system prefix, a virtual environment, site-packages.
LOCAL_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|mnt|opt|var|private)/\S+|(?<![\w])\.venv\b|"
                        r"site-packages|[A-Za-z]:\\\\Users\\\\")
#: A Python object's repr where a reader expects words or a table.
OBJECT_REPR = re.compile(r"\b(?:Posix|Windows)Path\(|\bnp\.(?:int|float|str_|bool_|True_|False_)\w*\(?|"
                         r"object at 0x[0-9a-f]+|<Figure size|\{'[^'\n]{1,80}': ")
_REPO_DIRS = "data|results|figures|models|build|docs|configs|notebooks|src|benchmarks|scripts|tests"
_IN_REPO = re.compile(rf"(?<![\w.])/(?:[^\s'\"/]+/)+?(?=(?:{_REPO_DIRS})/)")
_SITE = re.compile(r"(?:(?<![\w.])/?(?:[^\s'\"/]+/)*)?(?:\.venv/)?(?:lib/python[\d.]+/)?site-packages/")
_OTHER_ABS = re.compile(r"(?<![\w.])/(?:work|home|root|tmp|Users|mnt|opt|var|private)/(?:[^\s'\"/]+/)*")
_WRAPPED = re.compile(r"\b(?:Posix|Windows)?Path\((['\"])(.*?)\1\)|\bnp\.\w+\(([^()]*)\)|\bnp\.(True|False)_\b")


def local_paths_out(text: str) -> str:
    """``text`` with this machine's paths made relative: inside the repository from its root
    (``/work/x/results/a.csv`` -> ``results/a.csv``), installed packages from site-packages, anything else to
    its last part."""
    text = text.replace(str(REPO_ROOT) + "/", "")
    text = _SITE.sub("", text)
    text = _IN_REPO.sub("", text)
    text = _OTHER_ABS.sub("", text)
    return re.sub(r"(?<![\w])\.venv/(?:bin/)?", "", text)


def _unwrap(m: re.Match) -> str:
    if m.group(2) is not None:
        return repr(m.group(2))
    if m.group(4) is not None:
        return m.group(4)
    return m.group(3)


def _words(value, lines: bool = False, indent: str = "") -> str:
    """A parsed literal in words: a dict as ``key: value`` (one per line with ``lines``), a list comma-separated."""
    if isinstance(value, dict):
        if lines:
            return "\n".join(f"{indent}{_words(k)}:\n{_words(v, True, indent + '  ')}"
                             if isinstance(v, dict) and v else f"{indent}{_words(k)}: {_words(v)}"
                             for k, v in value.items())
        return ", ".join(f"{_words(k)}: {_words(v)}" if not isinstance(v, (dict, list, tuple))
                         else f"{_words(k)} ({_words(v)})" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_words(v) for v in value)
    if value is None:
        return "none"
    return str(value)


def _parse_literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return json.loads(text)  # JSON (null, true, false); raises ValueError when it is neither


def _literal_spans(text: str):
    """(start, end) of each balanced ``{...}``/``[...]`` that starts a Python literal."""
    i = 0
    while i < len(text):
        if text[i] in "{[" and re.match(r"[{\[]\s*(?:['\"{\[(\d-]|np\.|None|True|False)", text[i:i + 8]):
            depth, j, quote = 0, i, None
            while j < len(text):
                ch = text[j]
                if quote:
                    if ch == "\\":
                        j += 1
                    elif ch == quote:
                        quote = None
                elif ch in "'\"":
                    quote = ch
                elif ch in "{[(":
                    depth += 1
                elif ch in "}])":
                    depth -= 1
                    if depth == 0:
                        yield i, j + 1
                        break
                j += 1
            i = j + 1
        else:
            i += 1


def readable(text: str) -> str:
    """Object reprs as words: ``PosixPath('a')`` -> ``a``, ``np.int64(5)`` -> ``5``, a dict or list literal ->
    ``key: value, ...`` (what a reader wants from a printed dict); other text is kept."""
    text = _WRAPPED.sub(_unwrap, text)
    out, last = [], 0
    for a, b in list(_literal_spans(text)):
        try:
            value = _parse_literal(text[a:b])
        except ValueError:
            continue
        out += [text[last:a], _words(value, lines="\n" in text[a:b])]
        last = b
    return "".join(out) + text[last:]


def _no_progress(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p and not PROGRESS.search(p)]
        if parts or not line:
            lines.append(parts[-1] if parts else line)
    return "\n".join(lines)


def clean_text(text: str) -> str:
    """A stream or plain-text output as the page shows it: no progress bars, local paths or object reprs."""
    return readable(local_paths_out(_no_progress(text)))


def _html_table_without_range_index(html: str) -> str:
    """A DataFrame's HTML without its integer index column (0, 1, 2, ... or any integers under an unnamed
    header: row numbers, not data) and with local paths made relative."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(local_paths_out(html), "html.parser")
    for table in soup.find_all("table"):
        head, body = table.find("thead"), table.find("tbody")
        if head is None or body is None or len(head.find_all("tr")) != 1:
            continue
        first = head.find("tr").find(["th", "td"])
        rows = body.find_all("tr", recursive=False)
        index = [r.find(["th", "td"]) for r in rows]
        if (first is None or first.get_text(strip=True) or not rows
                or not all(c is not None and c.name == "th" and re.fullmatch(r"-?\d+", c.get_text(strip=True))
                           for c in index)):
            continue
        first.decompose()
        for c in index:
            c.decompose()
    return str(soup)


def _is_paths_only(text: str) -> bool:
    """A cell's value that only lists the files it wrote (``[PosixPath('figures/x.png'), ...]``)."""
    return bool(re.fullmatch(r"\s*\[?\s*(?:(?:Posix|Windows)Path\([^()]*\)\s*,?\s*)+\]?\s*", text))


def clean_outputs(cell: nbformat.NotebookNode) -> None:
    """Outputs of an executed cell as a reader should see them, in place: stderr (warnings, progress bars) and
    the trainer's progress widget dropped, progress-bar lines, local paths and object reprs removed from text,
    row-number index columns dropped from tables."""
    kept = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            if out.get("name") == "stderr":
                continue
            out["text"] = clean_text(out.get("text", ""))
            if not out["text"].strip():
                continue
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
            plain = data.get("text/plain", "")
            plain = "".join(plain) if isinstance(plain, list) else plain
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            if "<progress" in html:
                continue  # the trainer's progress widget (its losses are the next cell's table and figure)
            rich = [k for k in data if k not in ("text/plain",)]
            if not rich and _is_paths_only(plain):
                continue  # the files a plotting call wrote: the figure itself is shown
            if plain:
                data["text/plain"] = clean_text(plain)
            if html:
                data["text/html"] = _html_table_without_range_index(html)
            if not data:
                continue
        kept.append(out)
    if "outputs" in cell:
        cell["outputs"] = kept


def _clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for key in DROP_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in DROP_METADATA:
            cell.metadata.pop(key, None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            # the values a run was given: a file outside the checkout (the survey file) by its name only
            cell.source = local_paths_out(cell.source)
        clean_outputs(cell)
    return nb


def publish_notebooks(src: Path, dest: Path) -> list[Path]:
    """Copy the executed notebooks (cleaned) to ``dest``; returns the written paths."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in executed_notebooks(src):
        out = dest / path.name
        nbformat.write(_clean(nbformat.read(path, as_version=4)), out)
        written.append(out)
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip()[2:].splitlines()[0].strip()
    return fallback


def _unnumbered(title: str) -> str:
    """A heading without its own number (``3. Zero-shot`` -> ``Zero-shot``): the page numbers its sections."""
    return re.sub(r"^\s*(?:[A-Z]\.)?\d+(?:\.\d+)*\.?\s+", "", title).strip()


# ---- figures: each with a caption ------------------------------------------------------------------------------------

#: What a figure shows, in words, for the figures whose cell gives them no title of their own (by the name
#: ``plots.save`` stores them under; ``*`` is a run's name). No numbers: those are in the figure.
FIGURE_CAPTIONS = {
    "landscape_*_divisive_question": "The answers of each subgroup of one stratum to the most divisive question "
                                     "(first) and to the least divisive one (second)",
    "eval_*_vs_paper": "Accuracy and NMAE on the OOD subgroups: this run beside the models the paper reports "
                       "(reported numbers)",
    "finetune_loss": "The training loss (completion tokens) at each logged optimizer step",
    "fairness_consensus_divergent": "Per-attribute accuracy of the base and the fine-tuned model, on consensus and "
                                    "on divergent pairs, with intervals",
    "fairness_subgroup_scatter": "Each subgroup's accuracy and NMAE, base model against the fine-tune (dashed: "
                                 "no change)",
    "open_ended_judge_validation": "The judge on pairs whose better answer is known, with intervals (dashed: "
                                   "chance)",
    "open_ended_readback": "How far the free-text answers, read back onto the survey's scale, are from the survey "
                           "(TV with intervals; dashed: the noise floor)",
    "headroom": "Each predictor's TV to the subgroup's answer distribution, with intervals, on all and on "
                "divergent pairs, paper protocol (dotted: the noise floor; dashed: uniform; models in colour)",
    "headroom_disjoint": "The same on the respondent-disjoint protocol: each predictor's TV with intervals "
                         "(dotted: the noise floor; dashed: uniform; models in colour)",
}


def figure_names(source: str) -> list[str]:
    """The names a code cell saves its figures under (``plots.save(fig, NAME, ...)``; an f-string's fields as
    ``*``), in the order of the calls."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "save" and len(node.args) >= 2:
            arg = node.args[1]
            if isinstance(arg, ast.IfExp):
                arg = arg.body
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                names.append("".join(v.value if isinstance(v, ast.Constant) else "*" for v in arg.values))
    return sorted(set(names), key=names.index)


def _described(name: str) -> str:
    import fnmatch

    for pattern, text in FIGURE_CAPTIONS.items():
        if fnmatch.fnmatchcase(name, pattern) or name == pattern:
            return text
    return ""


def figure_titles(source: str) -> list[str]:
    """The titles a code cell gives its figures (``set_title``, ``suptitle``, ``title=``), as written; an f-string's
    fields are left out."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []

    def text(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            s = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            return re.sub(r"\s*\(\s*\)|\s+$", "", re.sub(r"\s{2,}", " ", s)).strip(" ,:-") or None
        return None

    titles = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in ("set_title", "suptitle", "title") and node.args:
            t = text(node.args[0])
            if t:
                titles.append(t)
        for kw in node.keywords:
            if kw.arg == "title":
                t = text(kw.value)
                if t:
                    titles.append(t)
    seen = set()
    return [t for t in titles if not (t in seen or seen.add(t))]


def _caption_output(number: int, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={
        "text/html": f'<figcaption class="sv-caption">Figure {number}. {html_escape(text)}</figcaption>'})


def _add_captions(cell: nbformat.NotebookNode, where: tuple[str, str], count: list[int]) -> None:
    """After each figure of ``cell`` its caption: a number, the title the cell gives it (else the subsection's
    heading), and where it stands (``where``: the section's number and the subsection's heading)."""
    images = [k for k, o in enumerate(cell.get("outputs", [])) if "image/png" in o.get("data", {})
              or "image/svg+xml" in o.get("data", {})]
    if not images:
        return
    section, subsection = where
    title = "; ".join(figure_titles(cell.source))
    title = title[:1].upper() + title[1:]
    names = figure_names(cell.source)
    described = [_described(n) for n in names]
    place = f"§{section}" + (f", {subsection}" if subsection else "")
    new = []
    for k, out in enumerate(list(cell.outputs)):
        new.append(out)
        if k in images:
            count[0] += 1
            i = images.index(k)
            own = (described[i] if len(described) == len(images)
                   else described[0] if len(described) == 1 else "")  # one name saved in a loop: all alike
            text = (own or title or subsection or "Figure").rstrip(".")
            panel = (f", figure {i + 1} of {len(images)}"
                     if len(images) > 1 and not (own and len(described) == len(images)) else "")
            if own and title and title not in own:
                text = f"{text}: {title}"
            new.append(_caption_output(count[0], f"{text} ({place}{panel})."))
    cell.outputs = new


# ---- the evaluation runs as a table -------------------------------------------------------------------------------

def _run_words(config: dict) -> str:
    """A run of notebook 3 in the study's words, from its recorded configuration."""
    adapter = config.get("adapter") or ""
    name = Path(adapter).name if adapter else ""
    model = Path(config.get("model") or "").name
    who = ("the base model" if not adapter else "the modal fine-tune (SFT)" if name == "sft"
           else "the distribution fine-tune (SFT)" if name == "sft_distribution" else f"adapter {name}")
    split = {"ood": "OOD subgroups", "train": "training subgroups"}.get(config.get("split"), config.get("split"))
    scoring = ("option log-probabilities" if config.get("scoring") == "logprob"
               else f"generated replies (up to {config.get('max_new_tokens')} new tokens)")
    template = {"persona_user": "", "marginals": ", the subgroup's marginals in the prompt"}.get(
        config.get("template"), f", template {config.get('template')}")
    sample = ""
    if config.get("qids"):
        sample = ", a seeded sample of the refusal-sensitive items' pairs"
    elif config.get("limit"):
        sample = ", a seeded sample of pairs"
    return f"{model}, {who}; {split}, {scoring}{template}{sample}"


def runs_table(res_dir: Path, runs: list[str], appendix: dict[str, str]) -> str:
    """The runs of notebook 3 as an HTML table: what each is, its pairs, and accuracy, NMAE and TV on all pairs
    with the 95% BCa intervals over questions its ``metrics.json`` records."""
    from ..core.claims import fmt_ci

    head = ("<tr><th>run</th><th>what it is</th><th>pairs</th><th>questions</th><th>accuracy</th>"
            "<th>NMAE (lower is better)</th><th>TV (lower is better)</th></tr>")
    rows = []
    for run in runs:
        path = Path(res_dir) / run / "metrics.json"
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        by = {r["metric"]: r for r in m.get("by_subset", []) if r.get("subset") == "all"}

        def cell(metric, by=by):
            r = by.get(metric)
            return "" if r is None else html_escape(fmt_ci(r["estimate"], r.get("lo"), r.get("hi")))

        label = f'<a href="#{appendix[run]}">{html_escape(run)}</a>' if run in appendix else html_escape(run)
        rows.append(f"<tr><td>{label}</td><td>{html_escape(_run_words(m.get('config', {})))}</td>"
                    f"<td>{m.get('pairs', '')}</td><td>{m.get('questions', '')}</td><td>{cell('accuracy')}</td>"
                    f"<td>{cell('nmae')}</td><td>{cell('tv')}</td></tr>")
    if not rows:
        return ""
    return (f'<table class="sv-runs">\n<caption>Every evaluation run of this profile (notebook 3; intervals: 95% '
            f"BCa over questions, as each run's <code>metrics.json</code> records them). A run's name links to its "
            f"notebook in the appendix.</caption>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


# ---- the page ---------------------------------------------------------------------------------------------------------

def _notebook_cells(path: Path, level: int, number: str, heading: str, anchor: str, show_code: bool,
                    figures: list[int], told: dict[str, str] | None = None) -> list[nbformat.NotebookNode]:
    """One notebook as cells of the page: its heading (``level``, ``number``), its cells with the headings
    renumbered under it, figures captioned. ``told`` (text -> where): narrative the page has already shown, which a
    further run of the same notebook keeps only the headings of."""
    nb = _clean(nbformat.read(path, as_version=4))
    note = ""
    if told and any(c.cell_type == "markdown" and c.source.strip() in told for c in nb.cells):
        where = next(told[c.source.strip()] for c in nb.cells if c.source.strip() in told)
        note = f" Its narrative is {where}'s; here are its headings and outputs."
    marker = ' class="sv-run"' if level > 1 else ""
    cells = [nbformat.v4.new_markdown_cell(f'<a id="{anchor}"{marker}></a>\n\n{"#" * level} {number} {heading}\n\n'
                                           f"*Notebook `{path.name}`.*{note}")]
    current = (number.rstrip("."), "")
    sub = 0
    for k, cell in enumerate(nb.cells[1:]):  # the first cell is the Colab/setup cell
        cell = copy.deepcopy(cell)
        cell["id"] = f"{_slug(path.stem)}-{k}"
        if cell.cell_type == "markdown":
            if told is not None and cell.source.strip() in told:
                cell.source = "\n".join(line for line in cell.source.splitlines() if line.startswith("#"))
            lines = cell.source.lstrip().splitlines()
            if lines and lines[0].startswith("# "):
                lines = lines[1:]  # its title is the section's
            out = []
            for line in lines:
                m = re.match(r"^(#{2,5})\s+(.*)$", line)
                if m:
                    depth = len(m.group(1)) - 1 + level
                    text = m.group(2).strip()
                    if len(m.group(1)) == 2:
                        sub += 1 if re.match(r"^\d+\.\s", text) else 0
                        plain = _unnumbered(text)
                        text = f"{number.rstrip('.')}.{sub} {plain}" if re.match(r"^\d+\.\s", m.group(2)) else plain
                        current = (number.rstrip("."), plain)
                    line = f"{'#' * min(depth, 6)} {text}"
                out.append(line)
            cell.source = "\n".join(out)
            if not cell.source.strip():
                continue
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            _add_captions(cell, current, figures)
            if not show_code:
                cell.metadata["jupyter"] = {"source_hidden": True}
                cell.metadata.setdefault("tags", []).append("remove_input")
        cells.append(cell)
    return cells


def combined_notebook(paths: list[Path], title: str, abstract: str, closing: str, show_code: bool = False,
                      results: Path | None = None) -> nbformat.NotebookNode:
    """One notebook that reads as a paper: title, abstract, contents, the study's sections in order (numbered by
    the page; the evaluation section holds every run of notebook 3 as a table), an appendix with the other runs'
    notebooks, then the closing (data terms, citation). Every figure gets a numbered caption."""
    book = nbformat.v4.new_notebook()
    by_stem = {p.stem: p for p in paths}
    body = [by_stem[s] for s in BODY if s in by_stem]
    appendix = [p for p in paths if p not in body]
    toc, cells, figures, told = [], [], [0], {}
    anchors = {p.stem: f"nb-{_slug(p.stem)}" for p in paths}
    app_anchor = {p.stem.split("__", 1)[1]: anchors[p.stem] for p in appendix if p.stem.startswith("03_evaluate__")}
    if EVALUATION in by_stem:
        app_anchor[EVALUATION.split("__", 1)[1]] = anchors[EVALUATION]
    for n, path in enumerate(body, 1):
        nb = nbformat.read(path, as_version=4)
        heading = _unnumbered(_title(nb, path.stem))
        toc.append(f"- [{n}. {heading}](#{anchors[path.stem]})")
        part = _notebook_cells(path, 1, f"{n}.", heading, anchors[path.stem], show_code, figures)
        told.update((c.source.strip(), f"§{n}") for c in nb.cells if c.cell_type == "markdown" and c.source.strip())
        if path.stem == EVALUATION and results is not None:
            runs = [s.split("__", 1)[1] for s in ORDER if s.startswith("03_evaluate__")]
            runs += sorted(p.stem.split("__", 1)[1] for p in paths
                           if p.stem.startswith("03_evaluate__") and p.stem.split("__", 1)[1] not in runs)
            table = runs_table(Path(results), runs, app_anchor)
            if table:
                part.insert(1, nbformat.v4.new_markdown_cell(f"## The runs\n\n{table}"))
        cells += part
    if appendix:
        cells.append(nbformat.v4.new_markdown_cell('<a id="appendix"></a>\n\n# Appendix A. The further runs\n\n'
                                                   "Each further run's executed notebook, in the study's order."))
        toc.append("- [Appendix A. The further runs](#appendix)")
        for k, path in enumerate(appendix, 1):
            nb = nbformat.read(path, as_version=4)
            heading = _unnumbered(_title(nb, path.stem))
            if "__" in path.stem:
                run = path.stem.split("__", 1)[1]
                metrics = Path(results) / run / "metrics.json" if results is not None else None
                if metrics is not None and metrics.is_file():
                    heading = f"Run {run}: {_run_words(json.loads(metrics.read_text()).get('config', {}))}"
                else:
                    heading = f"Run {run}: {heading}"
            toc.append(f"  - [A.{k} {heading}](#{anchors[path.stem]})")
            cells += _notebook_cells(path, 2, f"A.{k}", heading, anchors[path.stem], show_code, figures, told)
    book.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{abstract}\n\n## Contents\n\n" + "\n".join(toc)),
                  *cells, nbformat.v4.new_markdown_cell(f'<a id="end-matter" class="sv-run-stop"></a>\n\n{closing}')]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return book


#: The page's own style: tables and code wrap inside the page's width, figures sit with their captions.
CSS = """<style>
body { max-width: 1180px; margin: 0 auto; }
.jp-RenderedHTMLCommon table, .jp-OutputArea-output table { table-layout: auto; max-width: 100%; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th, .jp-OutputArea-output td, .jp-OutputArea-output th {
  white-space: normal; overflow-wrap: break-word; word-break: normal; }
.jp-RenderedHTMLCommon th, .jp-OutputArea-output th { overflow-wrap: anywhere; }
.jp-OutputArea-output table { font-size: 0.85em; }
.jp-OutputArea-output td, .jp-OutputArea-output th { padding: 0.2em 0.35em; }
.jp-OutputArea-output pre, .jp-RenderedText pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
figure.sv-figure { margin: 1em 0; }
figcaption.sv-caption { font-size: 0.9em; color: #333; margin: 0.3em 0 1em 0; }
details.sv-run-body > summary { cursor: pointer; color: #1a4f8b; margin: 0.5em 0 1.5em 0; font-family: inherit; }
table.sv-runs caption { caption-side: bottom; text-align: left; font-size: 0.9em; padding-top: 0.4em; }
</style>
"""


#: Opens the folded run that holds a link's target (the runs table links into the appendix).
OPEN_TARGET = """<script>
function svOpenTarget() {
  const el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  const d = el && (el.closest('details') || (el.closest('.jp-Cell') || el).nextElementSibling);
  if (d && d.tagName === 'DETAILS') { d.open = true; el.scrollIntoView(); }
}
window.addEventListener('hashchange', svOpenTarget); window.addEventListener('load', svOpenTarget);
</script>
"""


def _fold_runs(soup) -> None:
    """Each further run in the appendix: its heading stays, its notebook folds into a <details> (a reader opens
    the runs they want; the body of the page stays the paper)."""
    starts = soup.select("a.sv-run")
    for a in starts:
        head = a.find_parent(class_="jp-Cell")
        if head is None:
            continue
        body = []
        for sib in head.find_next_siblings():
            if sib.select_one("a.sv-run, a.sv-run-stop") is not None:
                break
            body.append(sib)
        if not body:
            continue
        details = soup.new_tag("details", attrs={"class": "sv-run-body"})
        summary = soup.new_tag("summary")
        summary.string = f"The run's notebook ({len(body)} cells)"
        details.append(summary)
        head.insert_after(details)
        for cell in body:
            details.append(cell.extract())


def _finish_html(body: str, title: str) -> str:
    """The exported page with its title, its style, each figure wrapped with its caption in a <figure>, and the
    appendix's runs folded."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body.replace("<title>Notebook</title>", f"<title>{html_escape(title)}</title>"),
                         "html.parser")
    if soup.head is not None:
        soup.head.append(BeautifulSoup(CSS, "html.parser"))
    for cap in soup.select("figcaption.sv-caption"):
        holder = cap.find_parent(class_="jp-OutputArea-child")
        prev = holder.find_previous_sibling(class_="jp-OutputArea-child") if holder is not None else None
        img = prev.find("img") if prev is not None else None
        if img is None:
            continue
        figure = soup.new_tag("figure", attrs={"class": "sv-figure"})
        img["alt"] = cap.get_text(" ", strip=True)
        img.replace_with(figure)
        figure.append(img)
        figure.append(cap.extract())
        holder.decompose()
    _fold_runs(soup)
    if soup.body is not None:
        soup.body.append(BeautifulSoup(OPEN_TARGET, "html.parser"))
    return str(soup)


def build_paper(src: Path, out_html: Path, title: str, abstract: str, closing: str, show_code: bool = False,
                results: Path | None = None) -> Path:
    """Stitch the executed notebooks in ``src`` into ``out_html`` (self-contained HTML); with ``results`` (the
    profile's results folder) the evaluation section holds its runs as a table."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    paths = executed_notebooks(src)
    if not paths:
        raise FileNotFoundError(f"No executed notebooks in {src}: run `make all` (for this profile) first.")
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    exporter = HTMLExporter(config=cfg)
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(combined_notebook(paths, title, abstract, closing, show_code, results))
    out_html.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_html.with_name(f".{out_html.name}.tmp")
    tmp.write_text(_finish_html(body, title), encoding="utf-8")
    tmp.replace(out_html)
    return out_html


QUESTION = ("Can a persona-prompted language model emulate the values of a demographic subgroup? This page is the "
            "whole study of the *subgroup-values* compendium for one profile, stitched from its executed notebooks, "
            "in the order of Tan et al. (ACL 2026): the subgroup dataset built from the World Values Survey Wave 7, "
            "the value landscape, the zero-shot evaluation beside non-LLM baselines, LoRA fine-tuning on the "
            "training strata tested on unseen intersections, a fairness audit, open-ended answers, the headroom "
            "above the noise floor, and every number of the paper beside ours.")


def abstract_text(res_dir: Path, ids: list[str] | None = None) -> str:
    """The abstract: the question, then the findings, each sentence written by code from the profile's claims
    (``results/<profile>/claims/``; the same claims as README's first screen). Claims this profile did not
    compute are named, not skipped silently."""
    from ..core import claims
    from .report import README_CLAIMS

    ids = list(README_CLAIMS["first_screen"] if ids is None else ids)
    have = claims.read_profile_claims(res_dir) if (Path(res_dir) / "claims").is_dir() else {}
    found, missing = [], []
    for i in ids:
        try:
            found += claims.select(have, [i], res_dir)
        except KeyError:
            missing.append(i)
    text = f"{QUESTION}\n\n**What this run found** (each sentence written by code from its claims):\n\n"
    text += claims.render(found, bullet=True) if found else "- (no claims: run the profile's steps first)\n"
    if missing:
        text += (f"\nNot computed in this profile: {', '.join(f'`{m}`' for m in missing)} "
                 f"(their steps write them into `{local_paths_out(str(Path(res_dir) / 'claims'))}/`).\n")
    return text


def closing_text(root: Path = REPO_ROOT) -> str:
    """The data terms and the citation, read from the details page (docs/details.md) and CITATION.cff (one
    source)."""
    readme = (root / "docs" / "details.md").read_text()
    terms = readme.split("## Data terms", 1)[1].split("\n## ", 1)[0].strip() if "## Data terms" in readme else ""
    cff = (root / "CITATION.cff").read_text() if (root / "CITATION.cff").is_file() else ""
    return f"# Data terms\n\n{terms}\n\n# How to cite\n\n```yaml\n{cff.strip()}\n```\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--src", default=None, help="executed notebooks (default build/notebooks/<profile>)")
    ap.add_argument("--dest", default=None, help="output folder (default docs/<profile>)")
    ap.add_argument("--results", default=None, help="the profile's results (default results/<profile>): its claims "
                    "write the abstract, its runs' metrics the evaluation table")
    ap.add_argument("--show-code", action="store_true", help="keep the code cells in the page")
    args = ap.parse_args(argv)
    from ..core.paths import require_checkout

    require_checkout("python -m subgroup_values.reporting.publish")
    src = Path(args.src or REPO_ROOT / "build" / "notebooks" / args.profile)
    dest = Path(args.dest or REPO_ROOT / "docs" / args.profile)
    results = Path(args.results or REPO_ROOT / "results" / args.profile)
    written = publish_notebooks(src, dest / "notebooks")
    html = build_paper(src, dest / "paper.html", f"Can persona-prompted LLMs emulate subgroup values? "
                       f"(profile {args.profile})", abstract_text(results), closing_text(), args.show_code,
                       results)
    print(f"{len(written)} notebooks -> {dest / 'notebooks'}; the paper -> {html} "
          f"({html.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
