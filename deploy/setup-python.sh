#!/usr/bin/env bash
# Create or update the project's Python environment in .venv (uv, cached).
#
#   deploy/setup-python.sh            serving + training + dev extras (everything)
#   deploy/setup-python.sh serving    the light serving install only (no torch)
#
# Installs exactly what uv.lock pins (uv sync --frozen). uv keeps its download cache in
# ~/.cache/uv, so a rerun takes seconds; torch (a CUDA build of several GB on PyPI) is
# downloaded once.
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
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv==0.13.*"
  hash -r
fi
UV="$(command -v uv || echo "$("$PYTHON" -m site --user-base)/bin/uv")"

# Installed exactly as locked (uv.lock): delivery guarantees depend on library behaviour
# (e.g. how faststream rewinds a failed batch), so no version range may float.
extra_args=()
IFS=',' read -r -a extras <<<"$EXTRAS"
for extra in "${extras[@]}"; do extra_args+=(--extra "$extra"); done
log "installing depdetect[$EXTRAS] into $VENV (uv sync --frozen)"
UV_PROJECT_ENVIRONMENT="$VENV" "$UV" sync --quiet --frozen --python "$PYTHON" "${extra_args[@]}"
log "ready: $VENV/bin/depdetect"
