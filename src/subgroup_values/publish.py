"""The study in one readable page, and its executed notebooks where people read them.

    python -m subgroup_values.publish --profile default        (make paper)

1. The executed notebooks of a profile (``build/notebooks/<profile>/``, written by ``make all``) are copied to
   ``docs/<profile>/notebooks/`` (GitHub renders them; README links there), with widget state and execution
   timing metadata dropped so that they stay small and stable.
2. ``docs/<profile>/paper.html``: one HTML document stitched from those notebooks with nbconvert (the HTML
   exporter Jupyter itself uses, so every output renders as in the notebook; figures are embedded PNGs, so the
   page needs nothing beside it): a title and abstract, a table of contents in the notebooks' order, each
   notebook as a section (its figures and tables), then the paper-versus-ours table, the data terms and the
   citation. Code cells are folded away by default (``--show-code`` keeps them).

Why nbconvert rather than Jupyter Book or Quarto: it is already a dependency (papermill uses it), it needs no
extra toolchain on Binder or these machines, and one self-contained HTML file is what a reader opens.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import nbformat

from .paths import REPO_ROOT

ORDER = ["01_build_dataset", "02_value_landscape", "03_evaluate__base_ood", "03_evaluate__base_train",
         "03_evaluate__base_ood_generate", "04_finetune", "03_evaluate__sft_ood", "03_evaluate__sft_train",
         "03_evaluate__sft_ood_generate", "05_fairness", "06_open_ended", "08_headroom",
         "07_paper_comparison"]
# (subgroup_values_reuse: the mark of a target reuse.py wrote from the committed copy; the copy stays as it was)
DROP_METADATA = ("widgets", "execution", "papermill", "subgroup_values_reuse")


def executed_notebooks(src: Path) -> list[Path]:
    """The profile's executed notebooks in the study's order (those that exist)."""
    found = {p.stem: p for p in Path(src).glob("*.ipynb") if not p.stem.endswith((".partial", ".failed"))}
    return [found[s] for s in ORDER if s in found] + sorted(p for s, p in found.items() if s not in ORDER)


def _clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for key in DROP_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in DROP_METADATA:
            cell.metadata.pop(key, None)
        for out in cell.get("outputs", []):
            out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
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


def combined_notebook(paths: list[Path], title: str, abstract: str, closing: str, show_code: bool = False
                      ) -> nbformat.NotebookNode:
    """One notebook: title, abstract, contents, then each notebook as a section with its own anchor."""
    book = nbformat.v4.new_notebook()
    sections = []
    body = []
    for path in paths:
        nb = _clean(nbformat.read(path, as_version=4))
        name = _title(nb, path.stem)
        if "__" in path.stem:
            name = f"{name} ({path.stem.split('__', 1)[1].replace('_', ' ')})"
        anchor = f"nb-{_slug(path.stem)}"
        sections.append((name, anchor))
        body.append(nbformat.v4.new_markdown_cell(f'<a id="{anchor}"></a>\n\n# {name}\n\n'
                                                  f"*Notebook `{path.name}`*"))
        for k, cell in enumerate(nb.cells[1:]):  # the first cell is the Colab/setup cell
            cell = copy.deepcopy(cell)
            cell["id"] = f"{_slug(path.stem)}-{k}"
            if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
                cell.source = "\n".join(cell.source.lstrip().splitlines()[1:])  # its title is the section's
                if not cell.source.strip():
                    continue
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
                continue
            if cell.cell_type == "code" and not show_code:
                cell.metadata["jupyter"] = {"source_hidden": True}
                cell.metadata.setdefault("tags", []).append("remove_input")
            body.append(cell)
    toc = "\n".join(f"- [{name}](#{anchor})" for name, anchor in sections)
    book.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{abstract}\n\n## Contents\n\n{toc}"), *body,
                  nbformat.v4.new_markdown_cell(closing)]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return book


def build_paper(src: Path, out_html: Path, title: str, abstract: str, closing: str, show_code: bool = False) -> Path:
    """Stitch the executed notebooks in ``src`` into ``out_html`` (self-contained HTML)."""
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
    body, _ = exporter.from_notebook_node(combined_notebook(paths, title, abstract, closing, show_code))
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body.replace("<title>Notebook</title>", f"<title>{title}</title>"), encoding="utf-8")
    return out_html


ABSTRACT = ("Can a persona-prompted language model emulate the values of a demographic subgroup? This page is "
            "the whole study of the *subgroup-values* compendium for one profile, stitched from its executed "
            "notebooks: the subgroup dataset built from the World Values Survey Wave 7, the value landscape, "
            "zero-shot persona evaluation beside non-LLM baselines, LoRA fine-tuning on training strata tested on "
            "unseen intersections, a fairness audit with bias-aware intervals, open-ended answers with a pairwise "
            "judge, and every number of Tan et al. (ACL 2026) beside ours. Every number and figure below was "
            "computed by the run; none was typed.")


def closing_text(root: Path = REPO_ROOT) -> str:
    """The data terms and the citation, read from README and CITATION.cff (one source)."""
    readme = (root / "README.md").read_text()
    terms = readme.split("## Data terms", 1)[1].split("\n## ", 1)[0].strip() if "## Data terms" in readme else ""
    cff = (root / "CITATION.cff").read_text() if (root / "CITATION.cff").is_file() else ""
    return f"# Data terms\n\n{terms}\n\n# How to cite\n\n```yaml\n{cff.strip()}\n```\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--src", default=None, help="executed notebooks (default build/notebooks/<profile>)")
    ap.add_argument("--dest", default=None, help="output folder (default docs/<profile>)")
    ap.add_argument("--show-code", action="store_true", help="keep the code cells in the page")
    args = ap.parse_args(argv)
    from .paths import require_checkout

    require_checkout("python -m subgroup_values.publish")
    src = Path(args.src or REPO_ROOT / "build" / "notebooks" / args.profile)
    dest = Path(args.dest or REPO_ROOT / "docs" / args.profile)
    written = publish_notebooks(src, dest / "notebooks")
    html = build_paper(src, dest / "paper.html", f"Can persona-prompted LLMs emulate subgroup values? "
                       f"(profile {args.profile})", ABSTRACT, closing_text(), args.show_code)
    print(f"{len(written)} notebooks -> {dest / 'notebooks'}; the paper -> {html} "
          f"({html.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
