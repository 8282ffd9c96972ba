#!/usr/bin/env bash
# Run a real Apache Kafka broker (KRaft) on loopback without Docker: the broker
# jars come from Maven Central (deploy/kafka/pom.xml) and run on the local JDK.
#
#   kafka.sh fetch                 resolve the broker classpath (cached)
#   kafka.sh start [--nodes 1|3]   start one combined node or a 3-node cluster
#                                  (no --nodes: the running layout, else 1)
#   kafka.sh wait [timeout_s]      wait until every started node serves (120 s)
#   kafka.sh stop                  SIGTERM, then SIGKILL after a grace period
#   kafka.sh kill [node]           SIGKILL all nodes or one (fault tests)
#   kafka.sh start-node N          restart one killed node of the cluster
#   kafka.sh status                list nodes; exit 0 only if all are up
#   kafka.sh bootstrap             print the bootstrap servers of the layout
#   kafka.sh logs [node]           print the path of a node's log
#
# Environment (all optional):
#   DEPDETECT_KAFKA_STATE_DIR   <repo>/var/kafka     configs, data, logs, pids
#   DEPDETECT_KAFKA_LIB_DIR     <repo>/.cache/kafka-lib   broker jars
#   DEPDETECT_KAFKA_VERSION     4.1.2                org.apache.kafka:kafka_2.13
#   DEPDETECT_KAFKA_LOG4J_VERSION 2.25.3             must match that Kafka's
#   DEPDETECT_KAFKA_HOST        127.0.0.1
#   DEPDETECT_KAFKA_PORT        9092   node i listens on PORT+2(i-1) (clients)
#                                      and PORT+2(i-1)+1 (controller)
#   DEPDETECT_KAFKA_NODES       1      default for `start`
#   DEPDETECT_KAFKA_HEAP_OPTS   -Xms256m -Xmx1g (1 node) / -Xms128m -Xmx512m (3)
#   DEPDETECT_KAFKA_JAVA        java from JAVA_HOME or PATH (17 or newer)
#   DEPDETECT_KAFKA_OVERRIDES   extra broker properties, "key=value" separated
#                               by spaces or newlines (they win over defaults)
#   DEPDETECT_KAFKA_STOP_TIMEOUT 30    seconds before stop escalates to SIGKILL
#
# Topics are auto-created (auto.create.topics.enable=true, num.partitions=3)
# for demo convenience; tests that depend on partition counts should create
# their topics explicitly with the admin client.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE_DIR="${DEPDETECT_KAFKA_STATE_DIR:-$REPO_ROOT/var/kafka}"
LIB_DIR="${DEPDETECT_KAFKA_LIB_DIR:-$REPO_ROOT/.cache/kafka-lib}"
KAFKA_VERSION="${DEPDETECT_KAFKA_VERSION:-4.1.2}"
LOG4J_VERSION="${DEPDETECT_KAFKA_LOG4J_VERSION:-2.25.3}"
HOST="${DEPDETECT_KAFKA_HOST:-127.0.0.1}"
BASE_PORT="${DEPDETECT_KAFKA_PORT:-9092}"
DEFAULT_NODES="${DEPDETECT_KAFKA_NODES:-1}"
STOP_TIMEOUT="${DEPDETECT_KAFKA_STOP_TIMEOUT:-30}"
POM="$SCRIPT_DIR/pom.xml"
LOG4J_CONFIG="$SCRIPT_DIR/log4j2.xml"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- layout -----------------------------------------------------------------
# A layout is "single" (1 node) or "cluster" (3 nodes); each has its own data
# under $STATE_DIR/<layout>, so switching layouts never mixes cluster ids.
# $STATE_DIR/current names the layout that `start` last used.

layout_for_nodes() {
  case "$1" in
    1) echo single ;;
    3) echo cluster ;;
    *) die "--nodes must be 1 or 3, not '$1'" ;;
  esac
}

nodes_of() { if [[ "$1" == cluster ]]; then echo 3; else echo 1; fi; }

current_layout() {
  [[ -f "$STATE_DIR/current" ]] || return 1
  cat "$STATE_DIR/current"
}

require_layout() {
  current_layout 2>/dev/null || die "no Kafka layout in $STATE_DIR yet: run '$0 start' first"
}

client_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }
node_dir() { echo "$STATE_DIR/$1/node$2"; }

# --- process helpers ----------------------------------------------------------

node_pid() {  # prints the pid of a live broker of this node, else fails
  local pidfile pid
  pidfile="$(node_dir "$1" "$2")/kafka.pid"
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # The cmdline check guards against a recycled pid after a reboot or crash.
  local cmdline
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *" kafka.Kafka "* ]] || return 1
  echo "$pid"
}

port_open() {  # bash's /dev/tcp: no nc/python needed
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

node_started() {  # the broker logged its start since it was (re)launched
  grep -q 'Kafka Server started' "$(node_dir "$1" "$2")/kafka.log" 2>/dev/null
}

node_ready() {
  node_pid "$1" "$2" >/dev/null && node_started "$1" "$2" && port_open "$(client_port "$2")"
}

with_lock() {  # serialise concurrent start/stop/fetch calls
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 600 9 || die "could not lock $STATE_DIR/.lock"
}

# --- java / classpath -------------------------------------------------------------

java_bin() {
  local java="${DEPDETECT_KAFKA_JAVA:-}"
  if [[ -z "$java" ]]; then
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
      java="$JAVA_HOME/bin/java"
    else
      java="$(command -v java || true)"
    fi
  fi
  [[ -n "$java" && -x "$java" ]] || die "no java found: Kafka ${KAFKA_VERSION%%.*}.x needs Java 17+ (apt-get install -y openjdk-17-jre-headless)"
  local major
  major="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
  [[ "${major:-0}" -ge 17 ]] || die "$java is Java ${major:-?}; Kafka 4.x needs 17 or newer"
  echo "$java"
}

fetch_stamp() {  # changes whenever the pom or the chosen versions change
  { cat "$POM"; echo "$KAFKA_VERSION $LOG4J_VERSION"; } | sha256sum | cut -d' ' -f1
}

cmd_fetch() {
  local stamp
  stamp="$(fetch_stamp)"
  if [[ -f "$LIB_DIR/.stamp" && "$(<"$LIB_DIR/.stamp")" == "$stamp" ]]; then
    log "classpath cached in $LIB_DIR (kafka $KAFKA_VERSION)"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  mkdir -p "$(dirname "$LIB_DIR")"
  # Resolve into a scratch dir and swap, so an interrupted fetch never leaves
  # a half-filled LIB_DIR that looks complete, nor jars of an older version.
  local tmp out
  tmp="$(mktemp -d "$LIB_DIR.tmp.XXXXXX")"
  log "resolving kafka_2.13:$KAFKA_VERSION into $LIB_DIR (Maven Central, ~/.m2 cache)"
  if ! out="$(mvn -B -q -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" \
        -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" 2>&1)"; then
    rm -rf "$tmp"
    printf '%s\n' "$out" >&2
    die "mvn dependency:copy-dependencies failed"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar resolved"; }
  echo "$stamp" >"$tmp/.stamp"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  log "classpath ready: $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $LIB_DIR"
}

# --- configuration ----------------------------------------------------------------

write_properties() {  # layout node
  local layout="$1" id="$2" n dir voters="" i
  n="$(nodes_of "$layout")"
  dir="$(node_dir "$layout" "$id")"
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@$HOST:$(controller_port "$i")"
  done
  mkdir -p "$dir/data"
  {
    echo "# Written by deploy/kafka/kafka.sh on every start; edits are lost."
    echo "process.roles=broker,controller"
    echo "node.id=$id"
    echo "controller.quorum.voters=$voters"
    echo "listeners=PLAINTEXT://$HOST:$(client_port "$id"),CONTROLLER://$HOST:$(controller_port "$id")"
    echo "advertised.listeners=PLAINTEXT://$HOST:$(client_port "$id")"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    echo "log.dirs=$dir/data"
    echo "num.partitions=3"
    echo "auto.create.topics.enable=true"
    echo "group.initial.rebalance.delay.ms=0"
    echo "num.network.threads=2"
    echo "num.io.threads=2"
    echo "offsets.topic.num.partitions=3"
    echo "transaction.state.log.num.partitions=3"
    if [[ "$layout" == single ]]; then
      echo "offsets.topic.replication.factor=1"
      echo "transaction.state.log.replication.factor=1"
      echo "transaction.state.log.min.isr=1"
      echo "share.coordinator.state.topic.replication.factor=1"
      echo "share.coordinator.state.topic.min.isr=1"
    else
      echo "default.replication.factor=3"
      echo "min.insync.replicas=2"
      echo "offsets.topic.replication.factor=3"
      echo "transaction.state.log.replication.factor=3"
      echo "transaction.state.log.min.isr=2"
      echo "share.coordinator.state.topic.replication.factor=3"
      echo "share.coordinator.state.topic.min.isr=2"
      echo "unclean.leader.election.enable=false"
      # Notice a dead broker in seconds rather than the default 9 s / 30 s.
      echo "broker.heartbeat.interval.ms=1000"
      echo "broker.session.timeout.ms=4000"
      echo "replica.lag.time.max.ms=5000"
    fi
    if [[ -n "${DEPDETECT_KAFKA_OVERRIDES:-}" ]]; then
      echo "# DEPDETECT_KAFKA_OVERRIDES"
      tr ' ' '\n' <<<"$DEPDETECT_KAFKA_OVERRIDES" | sed '/^$/d'
    fi
  } >"$dir/server.properties"
}

cluster_id() {  # created once per layout, reused by every node and restart
  local file="$STATE_DIR/$1/cluster.id" id
  if [[ ! -s "$file" ]]; then
    # 16 random bytes, URL-safe base64 without padding (Kafka's Uuid format);
    # Kafka never hands out ids starting with '-' (they read as CLI flags).
    id="-"
    while [[ "$id" == -* ]]; do
      id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    mkdir -p "$STATE_DIR/$1"
    echo "$id" >"$file"
  fi
  cat "$file"
}

format_node() {  # layout node java: only once, the data dir keeps meta.properties
  local dir out
  dir="$(node_dir "$1" "$2")"
  [[ -f "$dir/data/meta.properties" ]] && return 0
  # A short-lived tool: C1 only and serial GC start it about a third faster.
  if ! out="$("$3" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIB_DIR/*" \
        kafka.tools.StorageTool format -t "$(cluster_id "$1")" \
        -c "$dir/server.properties" --ignore-formatted 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "formatting node $2 failed"
  fi
}

heap_opts() {
  if [[ -n "${DEPDETECT_KAFKA_HEAP_OPTS:-}" ]]; then
    echo "$DEPDETECT_KAFKA_HEAP_OPTS"
  elif [[ "$1" == single ]]; then
    echo "-Xms256m -Xmx1g"
  else
    echo "-Xms128m -Xmx512m"
  fi
}

prepare_nodes() {  # layout java ids...: config + one-time format, in parallel
  local layout="$1" java="$2" id port pids=()
  shift 2
  for id in "$@"; do
    for port in "$(client_port "$id")" "$(controller_port "$id")"; do
      if port_open "$port"; then
        die "port $port is already taken by another process (set DEPDETECT_KAFKA_PORT)"
      fi
    done
    write_properties "$layout" "$id"
  done
  # Create the id here: parallel formats creating it would each invent one.
  cluster_id "$layout" >/dev/null
  # Formatting is a JVM start per node: run them side by side.
  for id in "$@"; do
    format_node "$layout" "$id" "$java" &
    pids+=("$!")
  done
  for id in "${pids[@]}"; do
    wait "$id" || die "formatting the $layout storage failed"
  done
  # A node formatted under another id would be refused by the quorum later,
  # with a far less clear error.
  local want got
  want="$(cluster_id "$layout")"
  for id in "$@"; do
    got="$(sed -n 's/^cluster\.id=//p' "$(node_dir "$layout" "$id")/data/meta.properties")"
    [[ "$got" == "$want" ]] ||
      die "node $id's storage has cluster id '$got', not '$want': delete $STATE_DIR/$layout to start afresh"
  done
}

launch_node() {  # layout node java (after prepare_nodes)
  local layout="$1" id="$2" java="$3" dir
  dir="$(node_dir "$layout" "$id")"
  # One previous log is kept; `wait` reads only the current run's log.
  [[ -f "$dir/kafka.log" ]] && mv -f "$dir/kafka.log" "$dir/kafka.log.1"
  rm -f "$dir/kafka.pid"
  local -a jvm
  read -r -a jvm <<<"$(heap_opts "$layout")"
  jvm+=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONFIG"
        -Dkafka.logs.dir="$dir")
  # setsid: the broker must outlive the calling shell and ignore its Ctrl-C /
  # SIGHUP; 9>&- keeps our lock fd out of it (else `stop` would block on it).
  # The inner shell records its own pid before exec'ing java, so the pid file
  # holds java's pid even if setsid had to fork.
  # shellcheck disable=SC2016  # $$ and $1 belong to the inner shell
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/kafka.pid" \
    "$java" "${jvm[@]}" -cp "$LIB_DIR/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/kafka.log" 2>&1 </dev/null 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$dir/kafka.pid" ]] && break
    sleep 0.1
  done
  [[ -s "$dir/kafka.pid" ]] || die "node $id did not start (see $dir/kafka.log)"
  log "node $id starting: pid $(<"$dir/kafka.pid"), $HOST:$(client_port "$id"), log $dir/kafka.log"
}

# --- commands -----------------------------------------------------------------------

cmd_start() {
  local nodes=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --nodes) [[ $# -ge 2 ]] || die "--nodes needs a value"; nodes="$2"; shift 2 ;;
      --nodes=*) nodes="${1#*=}"; shift ;;
      *) die "unknown option for start: $1" ;;
    esac
  done
  local layout other n java id missing=()
  with_lock
  if [[ -z "$nodes" ]]; then
    # No --nodes: keep a layout that is (partly) running, else the default.
    nodes="$DEFAULT_NODES"
    if [[ -z "${DEPDETECT_KAFKA_NODES:-}" ]] && layout="$(current_layout 2>/dev/null)"; then
      for ((id = 1; id <= $(nodes_of "$layout"); id++)); do
        node_pid "$layout" "$id" >/dev/null && nodes="$(nodes_of "$layout")"
      done
    fi
  fi
  layout="$(layout_for_nodes "$nodes")"
  n="$(nodes_of "$layout")"
  # The two layouts share ports: refuse rather than silently replace one.
  if [[ "$layout" == single ]]; then other=cluster; else other=single; fi
  for ((id = 1; id <= $(nodes_of "$other"); id++)); do
    node_pid "$other" "$id" >/dev/null &&
      die "the $other layout is running; run '$0 stop' first"
  done
  for ((id = 1; id <= n; id++)); do
    node_pid "$layout" "$id" >/dev/null || missing+=("$id")
  done
  echo "$layout" >"$STATE_DIR/current"
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "already running ($layout, $n node(s)): $(cmd_bootstrap)"
    return 0
  fi
  cmd_fetch
  java="$(java_bin)"
  prepare_nodes "$layout" "$java" "${missing[@]}"
  # Start every node before anyone waits: a cluster's quorum needs a majority.
  for id in "${missing[@]}"; do
    launch_node "$layout" "$id" "$java"
  done
  log "started; run '$0 wait' to block until ready. bootstrap: $(cmd_bootstrap)"
}

cmd_start_node() {
  local id="${1:-}" layout java
  [[ "$id" =~ ^[0-9]+$ ]] || die "usage: $0 start-node N"
  layout="$(require_layout)"
  ((id >= 1 && id <= $(nodes_of "$layout"))) || die "node $id is not part of the $layout layout"
  with_lock
  if node_pid "$layout" "$id" >/dev/null; then
    log "node $id is already running"
    return 0
  fi
  [[ -f "$(node_dir "$layout" "$id")/data/meta.properties" ]] ||
    die "node $id was never formatted; use '$0 start' for a new layout"
  cmd_fetch
  java="$(java_bin)"
  prepare_nodes "$layout" "$java" "$id"
  launch_node "$layout" "$id" "$java"
}

cmd_wait() {
  local timeout="${1:-120}" layout n id deadline pending
  [[ "$timeout" =~ ^[0-9]+$ ]] || die "usage: $0 wait [timeout_s]"
  layout="$(require_layout)"
  n="$(nodes_of "$layout")"
  deadline=$((SECONDS + timeout))
  local started=0
  for ((id = 1; id <= n; id++)); do
    [[ -s "$(node_dir "$layout" "$id")/kafka.pid" ]] && started=1
  done
  ((started)) || die "no $layout node was started: run '$0 start' first"
  while :; do
    pending=()
    for ((id = 1; id <= n; id++)); do
      local dir
      dir="$(node_dir "$layout" "$id")"
      # Nodes killed on purpose have no pid file and are not waited for.
      [[ -s "$dir/kafka.pid" ]] || continue
      if ! node_pid "$layout" "$id" >/dev/null; then
        log "node $id exited during start-up; last lines of $dir/kafka.log:"
        tail -n 40 "$dir/kafka.log" >&2 || true
        exit 1
      fi
      node_ready "$layout" "$id" || pending+=("$id")
    done
    if [[ ${#pending[@]} -eq 0 ]]; then
      log "ready ($layout) after waiting ${SECONDS}s: $(cmd_bootstrap)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      for id in "${pending[@]}"; do
        log "node $id not ready after ${timeout}s; last lines of $(node_dir "$layout" "$id")/kafka.log:"
        tail -n 40 "$(node_dir "$layout" "$id")/kafka.log" >&2 || true
      done
      exit 1
    fi
    sleep 0.5
  done
}

signal_nodes() {  # signal layout ids...: signals those that are alive
  local sig="$1" layout="$2" id pid
  shift 2
  for id in "$@"; do
    pid="$(node_pid "$layout" "$id")" || continue
    kill "-$sig" "$pid" 2>/dev/null || true
  done
}

wait_exit() {  # timeout_s layout ids... ; fails if any is still alive
  local timeout="$1" layout="$2" id deadline alive
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    alive=0
    for id in "$@"; do node_pid "$layout" "$id" >/dev/null && alive=1; done
    ((alive == 0)) && return 0
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

all_ids() { seq 1 "$(nodes_of "$1")"; }

cmd_stop() {
  local layout id x ids=() running=()
  with_lock
  for layout in single cluster; do
    for id in $(all_ids "$layout"); do
      node_pid "$layout" "$id" >/dev/null && ids+=("$layout:$id")
    done
  done
  for layout in single cluster; do
    mapfile -t running < <(for x in "${ids[@]}"; do [[ "${x%%:*}" == "$layout" ]] && echo "${x#*:}"; done)
    [[ ${#running[@]} -gt 0 ]] || continue
    # All at once: stopping one by one would leave the last controller without
    # a quorum, and its controlled shutdown would stall until the timeout.
    log "stopping $layout node(s) ${running[*]} (SIGTERM, up to ${STOP_TIMEOUT}s)"
    signal_nodes TERM "$layout" "${running[@]}"
    if ! wait_exit "$STOP_TIMEOUT" "$layout" "${running[@]}"; then
      log "still alive after ${STOP_TIMEOUT}s: SIGKILL"
      signal_nodes KILL "$layout" "${running[@]}"
      wait_exit 10 "$layout" "${running[@]}" || die "could not stop Kafka"
    fi
  done
  # Also drops pid files of crashed nodes, which a later `wait` would report.
  for layout in single cluster; do
    for id in $(all_ids "$layout"); do rm -f "$(node_dir "$layout" "$id")/kafka.pid"; done
  done
  if [[ ${#ids[@]} -eq 0 ]]; then log "not running"; else log "stopped"; fi
}

cmd_kill() {
  local target="${1:-}" layout ids id
  layout="$(require_layout)"
  if [[ -z "$target" ]]; then
    mapfile -t ids < <(all_ids "$layout")
  else
    if ! [[ "$target" =~ ^[0-9]+$ ]] || ((target < 1 || target > $(nodes_of "$layout"))); then
      die "node must be 1..$(nodes_of "$layout"), not '$target'"
    fi
    ids=("$target")
  fi
  with_lock
  signal_nodes KILL "$layout" "${ids[@]}"
  wait_exit 10 "$layout" "${ids[@]}" || die "node(s) ${ids[*]} survived SIGKILL"
  # No pid file = down on purpose: `wait` skips it, `status` reports it down.
  for id in "${ids[@]}"; do rm -f "$(node_dir "$layout" "$id")/kafka.pid"; done
  log "killed node(s) ${ids[*]} ($layout)"
}

cmd_status() {
  local layout id pid rc=0 state
  if ! layout="$(current_layout 2>/dev/null)"; then
    echo "kafka: never started (state dir $STATE_DIR)"
    return 1
  fi
  echo "kafka $KAFKA_VERSION, layout $layout, state dir $STATE_DIR/$layout"
  for id in $(all_ids "$layout"); do
    if pid="$(node_pid "$layout" "$id")"; then
      if node_ready "$layout" "$id"; then state="up"; else state="starting"; rc=1; fi
      state+=" pid $pid"
    else
      state="down"
      rc=1
    fi
    printf 'node %s: %-16s client %s:%s controller %s:%s\n' "$id" "$state" \
      "$HOST" "$(client_port "$id")" "$HOST" "$(controller_port "$id")"
  done
  return "$rc"
}

cmd_bootstrap() {
  local layout id out=""
  layout="$(require_layout)"
  for id in $(all_ids "$layout"); do out+="${out:+,}$HOST:$(client_port "$id")"; done
  echo "$out"
}

cmd_logs() {
  local layout
  layout="$(require_layout)"
  echo "$(node_dir "$layout" "${1:-1}")/kafka.log"
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) with_lock; cmd_fetch ;;
    start) cmd_start "$@" ;;
    wait) cmd_wait "$@" ;;
    stop) cmd_stop ;;
    kill) cmd_kill "$@" ;;
    start-node) cmd_start_node "$@" ;;
    status) cmd_status ;;
    bootstrap) cmd_bootstrap ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
