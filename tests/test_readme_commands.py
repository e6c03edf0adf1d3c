"""README's commands are run as written: scripts/newcomer.sh (called by .ci/run) runs every block marked
``<!-- newcomer -->`` on a fresh clone with no survey file and no models. These tests keep that promise from eroding:
a command block a reader meets first is either marked (and so run) or says why no test can run it."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO

README = (REPO / "README.md").read_text()
FIRST = README  # README is the quick start, the audit and the library (the reference material is docs/details.md)


def _blocks(text: str) -> list[tuple[str, str]]:
    """Each ```bash block with the text just before it."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(.{0,400})```bash\n(.*?)```", text, re.S)]


def test_every_command_block_a_reader_meets_first_is_run_or_says_why_not():
    for before, block in _blocks(FIRST):
        marked = before.rstrip().endswith("<!-- newcomer -->")
        says_why = "no test runs them as written" in before
        assert marked or says_why, f"README block not run by scripts/newcomer.sh and not said why:\n{block}"


def test_the_newcomer_route_covers_the_quick_start_the_audit_and_the_library():
    marked = "\n".join(b for before, b in _blocks(FIRST) if before.rstrip().endswith("<!-- newcomer -->"))
    for command in ("make all", "make test", "make audit MODEL=", "pip install", "subgroup-values verify-data",
                    "subgroup-values models build", "subgroup-values evaluate", "subgroup-values audit"):
        assert command in marked, f"{command!r} is no longer among README's newcomer commands"
    assert "newcomer.sh" in (REPO / ".ci" / "run").read_text()  # CI runs them


def test_no_test_figure_is_committed_among_the_studys_figures():
    tracked = subprocess.run(["git", "ls-files", "figures"], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout.split()
    assert not [f for f in tracked if re.search(r"(^|[/_])test[_.]", f)], "test figures belong in a temporary folder"
