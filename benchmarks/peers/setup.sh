#!/usr/bin/env bash
# Creates benchmarks/peers/.venv-biogeme, a Python >= 3.12 environment holding Biogeme (a benchmark-only
# dependency: it is never installed into gradfit's own environment nor listed in pyproject.toml).
#
#   benchmarks/peers/setup.sh            # create the environment if it is missing
#   benchmarks/peers/setup.sh --force    # delete it and create it again
#
# Environment variables:
#   PYTHON312        the interpreter used to create the environment
#                    (default /root/.pyenv/versions/3.12.1/bin/python, else python3.12 on PATH)
#   BIOGEME_VERSION  the Biogeme release to install (default 3.3.5)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-biogeme"
version="${BIOGEME_VERSION:-3.3.5}"

if [[ $# -gt 1 || ( $# -eq 1 && "$1" != "--force" ) ]]; then
    echo "error: usage: $0 [--force]" >&2
    exit 2
fi

python="${PYTHON312:-}"
if [[ -z "$python" ]]; then
    if [[ -x /root/.pyenv/versions/3.12.1/bin/python ]]; then
        python=/root/.pyenv/versions/3.12.1/bin/python
    elif command -v python3.12 >/dev/null 2>&1; then
        python="$(command -v python3.12)"
    else
        echo "error: no Python 3.12 found; set PYTHON312 to a Python >= 3.12 interpreter" >&2
        exit 2
    fi
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    echo "error: PYTHON312=$python is not a Python >= 3.12 interpreter (Biogeme $version needs one)" >&2
    exit 2
fi

marker="$venv/.installed-biogeme-$version"
if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi
if [[ -f "$marker" ]]; then
    exit 0
fi

echo "setup: creating $venv with $("$python" --version 2>&1) and biogeme==$version (a few minutes)" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
log="$venv/pip-install.log"
if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
       "$venv/bin/python" -m pip install --disable-pip-version-check "biogeme==$version"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: pip could not install biogeme==$version into $venv (log: $log)" >&2
    exit 1
fi
"$venv/bin/python" -c 'import biogeme.version as v; print("setup: installed biogeme", v.get_version())' >&2
touch "$marker"
