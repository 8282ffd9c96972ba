#!/usr/bin/env bash
# The test command (README, and what .ci/run calls).
#
#   bash deploy/run-tests.sh [pytest args]
#
# Sets up what the tests need, idempotently: the Python environment, Apache Kafka
# from Maven Central (KRaft, loopback), PostgreSQL from Debian's packages in a
# private cluster. It starts the broker and the database only if they are not
# already running, and stops only what it started.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { printf '\nrun-tests: %s\n' "$*" >&2; }
started=()
cleanup() {
  local rc=$?
  for svc in "${started[@]}"; do
    case "$svc" in
      kafka) bash deploy/kafka/kafka.sh stop || true ;;
      postgres) bash deploy/postgres/postgres.sh stop || true ;;
    esac
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SECONDS=0
log "python environment"
bash deploy/setup-python.sh

log "PostgreSQL"
bash deploy/postgres/postgres.sh install
if ! bash deploy/postgres/postgres.sh status >/dev/null 2>&1; then
  bash deploy/postgres/postgres.sh start
  started+=(postgres)
fi
export DEPDETECT_TEST_POSTGRES_URL="${DEPDETECT_TEST_POSTGRES_URL:-$(bash deploy/postgres/postgres.sh url)}"

log "Kafka"
bash deploy/kafka/kafka.sh fetch
if ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  bash deploy/kafka/kafka.sh start --nodes 1
  started+=(kafka)
fi
bash deploy/kafka/kafka.sh wait 180
export DEPDETECT_TEST_KAFKA="${DEPDETECT_TEST_KAFKA:-$(bash deploy/kafka/kafka.sh bootstrap)}"
log "set-up took ${SECONDS}s"

log "lint"
.venv/bin/ruff check .

log "tests"
.venv/bin/python -m pytest "$@"
