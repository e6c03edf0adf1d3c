#!/usr/bin/env bash
# The newcomer's route, as README writes it: a fresh clone of this checkout's HEAD in a folder with no survey file
# beside it (no ../shared) and no models, where every README block marked `<!-- newcomer -->` runs literally, in
# order (`make test` excepted: CI runs it itself, first). Then `git status` must be clean and the audit's card
# must exist. Each command is timed. Run by .ci/run; by hand: bash scripts/newcomer.sh
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/newcomer.XXXXXX)
home="$work/home"; mkdir -p "$home"
clone="$work/subgroup-values"
git clone -q "$src" "$clone"
cd "$clone"
test ! -e ../shared || { echo "newcomer: $work/shared exists: not an outsider's machine" >&2; exit 1; }
# README's blocks marked <!-- newcomer -->, one command a line (comments stripped)
mapfile -t cmds < <(python3 - <<'PY'
import re
text = open("README.md").read()
for block in re.findall(r"<!-- newcomer -->\n```bash\n(.*?)```", text, re.S):
    for line in block.splitlines():
        cmd = re.sub(r"\s+#.*$", "", line).strip()
        if cmd and cmd != "make test":
            print(cmd)
PY
)
[ "${#cmds[@]}" -ge 3 ] || { echo "newcomer: README has fewer than 3 newcomer commands: ${cmds[*]}" >&2; exit 1; }
# an outsider's shell: no survey file, no hub mode or study from this machine; their own HOME (pip's cache kept)
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}" PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
export HOME="$home"
unset WVS_FILE WVS_FILE_TUR HF_HUB_OFFLINE HF_DATASETS_OFFLINE SUBGROUP_VALUES_STUDY VIRTUAL_ENV
for cmd in "${cmds[@]}"; do
  echo "newcomer \$ $cmd"
  start=$(date +%s)
  bash -c "$cmd" || { echo "newcomer: FAILED after $(( $(date +%s) - start )) s: $cmd" >&2; exit 1; }
  echo "newcomer: $(( $(date +%s) - start )) s: $cmd"
done
dirty=$(git status --porcelain)
[ -z "$dirty" ] || { echo "newcomer: the commands left the clone dirty:" >&2; echo "$dirty" >&2; git diff --stat >&2; exit 1; }
ls audits/*/report_card.md >/dev/null || { echo "newcomer: make audit wrote no report card" >&2; exit 1; }
ls "$home"/sv-audits/mine/report_card.md >/dev/null
echo "newcomer: every README command ran on a fresh clone without the survey file; git status clean"
rm -rf "$work"
