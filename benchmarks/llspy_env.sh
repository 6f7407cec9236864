#!/usr/bin/env bash
# Create (once) the LLSpy 0.5.1 comparison environment used by the benchmarks.
#
#   bash benchmarks/llspy_env.sh          # prints the path of the environment's python
#
# LLSpy pins old packages (scipy <= 1.12, numba, ...) and its file API still calls
# tifffile.imsave, which tifffile removed in 2025.2.18, so it gets its own virtual environment in
# .bench_envs/llspy (git-ignored), never the project's .venv.  Idempotent: a complete environment
# (marked by a stamp file) is reused as is; an interrupted one is rebuilt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="${LLSPY_ENV:-$ROOT/.bench_envs/llspy}"
STAMP="$ENV/.llspy-0.5.1-ready"
PY="${PYTHON:-python3}"

if [ -f "$STAMP" ] && "$ENV/bin/python" -c "import llspy.camera, llspy.camcalib" >/dev/null 2>&1; then
    echo "$ENV/bin/python"
    exit 0
fi

rm -rf "$ENV"
mkdir -p "$(dirname "$ENV")"
"$PY" -m venv "$ENV" >&2
"$ENV/bin/python" -m pip install -q --upgrade pip >&2
# Versions LLSpy 0.5.1 (2024-03) runs with: numpy 1.x, scipy <= 1.12, tifffile with imsave.
"$ENV/bin/python" -m pip install -q \
    "llspy==0.5.1" "numpy>=1.24,<2" "scipy>=1.10,<=1.12" "tifffile>=2023.7.10,<2025.2.18" \
    "numba>=0.58,<0.61" psutil >&2
# Smoke test: the two modules the benchmarks call.
"$ENV/bin/python" -c "import llspy.camera, llspy.camcalib" >&2
touch "$STAMP"
echo "$ENV/bin/python"
