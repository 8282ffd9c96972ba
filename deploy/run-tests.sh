#!/usr/bin/env bash
# The test command (README, and what .ci/run calls).
#
#   bash deploy/run-tests.sh [pytest args]
#
# Sets up what the tests need, idempotently: the Python environment, Apache Kafka
# from Maven Central (KRaft, loopback), PostgreSQL from Debian's packages in a
# private cluster, Chromium from Debian's packages (the console's browser tests).
# It starts the broker and the database only if they are not already running, and
# stops only what it started.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { printf '\nrun-tests: %s\n' "$*" >&2; }
# shellcheck source=deploy/lib/local-services.sh
source deploy/lib/local-services.sh
# shellcheck source=deploy/lib/browser.sh
source deploy/lib/browser.sh

SECONDS=0
log "python environment"
bash deploy/setup-python.sh

log "PostgreSQL"
ensure_postgres
export DEPDETECT_TEST_POSTGRES_URL="${DEPDETECT_TEST_POSTGRES_URL:-$(bash deploy/postgres/postgres.sh url)}"

log "Kafka"
ensure_kafka
export DEPDETECT_TEST_KAFKA="${DEPDETECT_TEST_KAFKA:-$(bash deploy/kafka/kafka.sh bootstrap)}"

log "Chromium (browser tests of the review console)"
ensure_chromium
log "set-up took ${SECONDS}s"

log "lint and types"
UV="$(command -v uv || echo "$(python3 -m site --user-base)/bin/uv")"
"$UV" lock --check --quiet   # uv.lock matches pyproject.toml
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy depdetect schemas services training benchmarks

log "tests"
.venv/bin/python -m pytest "$@"
