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

# shellcheck source=deploy/lib/local-services.sh
source deploy/lib/local-services.sh
SECONDS=0

bash deploy/setup-python.sh

if (( use_postgres )); then
  ensure_postgres
  DEPDETECT_DATABASE__URL="$(bash deploy/postgres/postgres.sh url)"
  export DEPDETECT_DATABASE__URL
fi

ensure_kafka
export DEPDETECT_KAFKA__BOOTSTRAP_SERVERS="${DEPDETECT_KAFKA__BOOTSTRAP_SERVERS:-$(bash deploy/kafka/kafka.sh bootstrap)}"

.venv/bin/depdetect demo
echo "quickstart: done in ${SECONDS}s (rerun to stream again; everything is reused)"
