#!/usr/bin/env bash
# The README's first command: all set-up on a fresh machine, then the main job.
#
#   bash deploy/quickstart.sh             embedded default database (SQLite file)
#   bash deploy/quickstart.sh --postgres  a local PostgreSQL (Debian's packages) instead
#
# Installs the Python environment (.venv), fetches Apache Kafka from Maven Central and
# starts it (KRaft, loopback), then runs `depdetect demo`: a model bundle is trained on
# the repo's sample if none exists, the classifier service starts, sample texts in six
# languages stream through it, and a summary is printed. A rerun reuses all of it.
# Whatever this script started is stopped when it ends or is interrupted.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

use_postgres=0
for arg in "$@"; do
  case "$arg" in
    --postgres) use_postgres=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $arg" >&2; exit 2 ;;
  esac
done

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

bash deploy/setup-python.sh

if (( use_postgres )); then
  bash deploy/postgres/postgres.sh install
  if ! bash deploy/postgres/postgres.sh status >/dev/null 2>&1; then
    bash deploy/postgres/postgres.sh start
    started+=(postgres)
  fi
  DEPDETECT_DATABASE__URL="$(bash deploy/postgres/postgres.sh url)"
  export DEPDETECT_DATABASE__URL
fi

bash deploy/kafka/kafka.sh fetch
if ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  bash deploy/kafka/kafka.sh start --nodes 1
  started+=(kafka)
fi
bash deploy/kafka/kafka.sh wait 180
export DEPDETECT_KAFKA__BOOTSTRAP_SERVERS="${DEPDETECT_KAFKA__BOOTSTRAP_SERVERS:-$(bash deploy/kafka/kafka.sh bootstrap)}"

.venv/bin/depdetect demo
echo "quickstart: done in ${SECONDS}s (rerun to stream again; everything is reused)"
