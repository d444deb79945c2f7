#!/usr/bin/env bash
# Biogeme 3.2.6's own estimation of its example examples/latent/05latentChoiceFull (Optima "classic", ordered
# probit indicators, 100-point Gauss-Hermite quadrature) from the start values of examples/optima/classic.yaml,
# i.e. the published 3-significant-digit estimates that the example reads, unrounded, from two earlier runs'
# pickle files. Shows where Biogeme itself ends from the start values anyone can know (examples/optima/README.md).
#
#   benchmarks/peers/biogeme326_classic.sh [WORKDIR]     # default: benchmarks/peers/.biogeme326-run
#
# Builds benchmarks/peers/.venv-biogeme326 (git-ignored) the first time: Python 3.8 (Biogeme 3.2.6 predates
# 3.9; set PYTHON38 to choose it), numpy/pandas/scipy of 2020 and Biogeme 3.2.6 compiled from source (a C++
# compiler is needed; minutes). Downloads the example script from GitHub at tag v3.2.6 into WORKDIR (or copies
# the file that BIOGEME326_EXAMPLE names) and runs it,
# with its two pickle reads replaced by the start values from classic.yaml and its log set to "detailed" (one
# line per iteration). Prints the log's last lines; the whole log is WORKDIR/05.log. About 20 minutes of
# optimisation and more for Biogeme's Hessian on a 2-core CPU.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv-biogeme326"
work="${1:-$here/.biogeme326-run}"

python="${PYTHON38:-}"
if [[ -z "$python" ]]; then
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.8*/bin/python python3.8; do
        if command -v "$candidate" >/dev/null 2>&1; then python="$(command -v "$candidate")"; break; fi
    done
fi
if [[ -z "$python" ]]; then
    echo "error: no Python 3.8 found; set PYTHON38 to a Python 3.8 interpreter" >&2
    exit 2
fi
if [[ ! -x "$root/.venv/bin/python" ]]; then
    echo "error: gradfit's environment is missing; run 'make install' (or 'make test') first" >&2
    exit 2
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q "numpy<1.20" "pandas<1.2" "scipy<1.7" "cython<3"
    "$venv/bin/pip" install -q --no-build-isolation biogeme==3.2.6
fi

mkdir -p "$work"
cd "$work"
if [[ -n "${BIOGEME326_EXAMPLE:-}" ]]; then  # a local copy, e.g. from a clone: git show v3.2.6:examples/latent/...
    cp "$BIOGEME326_EXAMPLE" 05latentChoiceFull.py
else
    curl -fsSL -o 05latentChoiceFull.py \
        https://raw.githubusercontent.com/michelbierlaire/biogeme/v3.2.6/examples/latent/05latentChoiceFull.py
fi
cp "$root/examples/optima/optima.dat" .
"$root/.venv/bin/python" - "$root/examples/optima/classic.yaml" <<'EOF'
import json, sys

import gradfit

model = gradfit.Model(gradfit.read_spec(sys.argv[1]))
with open("start.json", "w") as fh:
    json.dump({name: float(value) for name, value in model.start_params.items()}, fh, indent=1)

script = open("05latentChoiceFull.py").read()
edits = {
    "structResults = res.bioResults(pickleFile='02oneLatentOrdered.pickle')": "structResults = None",
    "structBetas = structResults.getBetaValues()": "import json\nstructBetas = json.load(open('start.json'))",
    "choiceResults = res.bioResults(pickleFile='04latentChoiceSeq.pickle')": "choiceResults = None",
    "choiceBetas = choiceResults.getBetaValues()": "choiceBetas = json.load(open('start.json'))",
    "logger.setGeneral()": "logger.setDetailed()",
}
for old, new in edits.items():
    if script.count(old) != 1:
        sys.exit(f"error: 05latentChoiceFull.py no longer contains {old!r} once; the edit needs updating")
    script = script.replace(old, new)
open("05_start.py", "w").write(script)
EOF
start=$(date +%s)
"$venv/bin/python" 05_start.py > 05.log 2>&1
echo "Biogeme 3.2.6 took $(( $(date +%s) - start )) s in all (the log's timestamps split optimisation and Hessian)"
grep -E "Detailed >  [0-9]+ f=" 05.log | tail -3
grep -iE "final log likelihood|Estimated betas" 05.log || true
