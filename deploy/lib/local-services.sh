# Sourced by deploy/quickstart.sh and deploy/run-tests.sh: start the local broker and
# database only when they are not running, and stop on exit only what was started here.
# shellcheck shell=bash

STARTED_SERVICES=()

stop_started_services() {
  local rc=$?
  local svc
  for svc in "${STARTED_SERVICES[@]}"; do
    case "$svc" in
      kafka) bash deploy/kafka/kafka.sh stop || true ;;
      postgres) bash deploy/postgres/postgres.sh stop || true ;;
    esac
  done
  exit "$rc"
}
trap stop_started_services EXIT
trap 'exit 130' INT TERM

ensure_postgres() {
  bash deploy/postgres/postgres.sh install
  if ! bash deploy/postgres/postgres.sh status >/dev/null 2>&1; then
    bash deploy/postgres/postgres.sh start
    STARTED_SERVICES+=(postgres)
  fi
}

ensure_kafka() {
  bash deploy/kafka/kafka.sh fetch
  if ! bash deploy/kafka/kafka.sh status >/dev/null 2>&1; then
    bash deploy/kafka/kafka.sh start --nodes 1
    STARTED_SERVICES+=(kafka)
  fi
  bash deploy/kafka/kafka.sh wait 180
}
