#!/usr/bin/env bash
# A second, production-shaped CAAS stack on this machine for chaos and scaling tests: three
# Apache Kafka KRaft nodes (each broker and controller; replication factor 3 and
# min.insync.replicas=2 for our topics), its own registry, SecantusDB, Redis and its own instance
# of every service. Nothing is shared with `make up`'s stack: other ports, another state folder
# ($CAAS_CLUSTER_STATE_DIR, default ~/.cache/caas/cluster), so both run side by side.
#
#   infra/local/cluster.sh up            start everything, wait until ready (idempotent)
#   infra/local/cluster.sh down          stop everything this script started (data kept)
#   infra/local/cluster.sh reset         down, then wipe the cluster's state folder
#   infra/local/cluster.sh status        what runs, what is ready (exit 1 when something is not)
#   infra/local/cluster.sh start PART    start one part (kafka-1..3, registry, mongodb, redis, a service)
#   infra/local/cluster.sh stop PART     SIGTERM one part and wait for it to exit
#   infra/local/cluster.sh kill PART     SIGKILL one part (a crash)
#   infra/local/cluster.sh ready PART    exit 0 when PART answers a real request
#   infra/local/cluster.sh wait PART S   wait up to S seconds until PART is ready
#   infra/local/cluster.sh env           the CAAS_* variables of this stack, as shell assignments
#   infra/local/cluster.sh controller    which Kafka node leads the KRaft quorum (kafka-N)
#
# CAAS_* values for this stack only go into <state>/overrides.env (sourced after .env.example).
#
# Services are named like the stack's (ingest, gateway, gateway-2, logger, ...); a name with a
# number suffix (logger-2, logger-3, gateway-3) is one more instance of the same binary, with an
# ops address of its own, which is how the scaling test adds consumers to a group.
set -euo pipefail

CLUSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CAAS_STATE_DIR="${CAAS_CLUSTER_STATE_DIR:-${CAAS_CACHE_DIR:-$HOME/.cache/caas}/cluster}"
# shellcheck source=infra/local/stack.sh
source "$CLUSTER_ROOT/infra/local/stack.sh"

# The ports of this stack (today's stack uses 9092-9093, 8081, 27017, 6379, 8080-8090, 3000-3001, 9101-9105).
KAFKA_NODES=(1 2 3)
kafka_port() { echo $((19091 + $1)); }            # 19092, 19093, 19094
kafka_controller_port() { echo $((19094 + $1)); } # 19095, 19096, 19097
REGISTRY_PORT=${CAAS_CLUSTER_REGISTRY_PORT:-18081}
MONGO_PORT=${CAAS_CLUSTER_MONGO_PORT:-27018}
REDIS_PORT=${CAAS_CLUSTER_REDIS_PORT:-16379}
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
BOOTSTRAP="127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
SERVICES=(
  "simulator:127.0.0.1:18090"
  "ingest:127.0.0.1:18080"
  "gateway:127.0.0.1:13000"
  "gateway-2:127.0.0.1:13001"
  "logger:127.0.0.1:19201"
  "presence:127.0.0.1:19202"
  "chatbot:127.0.0.1:19203"
  "campaign:127.0.0.1:19204"
  "sender:127.0.0.1:19205"
)
# The binaries are copied here at `up`, so a rebuild in the shared target folder (other engineers
# build there) never swaps a binary under a running chaos test.
CLUSTER_BIN="$STATE/bin"

# Extra instances: <service>-<n> listens on the service's port + 10 * (n - 1) (gateway-3: 13020).
service_address() {
  local name=$1 base=${1%-[0-9]*} entry
  for entry in "${SERVICES[@]}"; do
    [[ ${entry%%:*} == "$name" ]] && { echo "${entry#*:}"; return; }
  done
  [[ $name =~ -([0-9]+)$ ]] || return 0
  for entry in "${SERVICES[@]}"; do
    if [[ ${entry%%:*} == "$base" ]]; then
      local port=${entry##*:}
      echo "127.0.0.1:$((port + 10 * (BASH_REMATCH[1] - 1)))"
      return
    fi
  done
}

cluster_env() {
  load_env
  export CAAS_STATE_DIR="$STATE"
  export CAAS_KAFKA_BOOTSTRAP="$BOOTSTRAP"
  export CAAS_SCHEMA_REGISTRY_URL="$REGISTRY_URL"
  export CAAS_MONGODB_URI="mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true"
  export CAAS_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export CAAS_SIMULATOR_WHATSAPP_WEBHOOK_URL="http://127.0.0.1:18080/webhooks/whatsapp"
  export CAAS_SIMULATOR_RCS_WEBHOOK_URL="http://127.0.0.1:18080/webhooks/rcs"
  export CAAS_SENDER_WHATSAPP_BASE_URL="http://127.0.0.1:18090"
  export CAAS_SENDER_RBM_BASE_URL="http://127.0.0.1:18090"
  local entry
  for entry in "${SERVICES[@]}"; do
    [[ ${entry%%:*} == *-[0-9] ]] || export "$(service_address_variable "${entry%%:*}")=${entry#*:}"
  done
  # A crashed member's partitions move after this long (the chaos test waits for it).
  # Overrides for this stack only (e.g. CAAS_LOGGER_BATCH_MAX_RECORDS=200), one per line.
  if [[ -f "$STATE/overrides.env" ]]; then
    set -a
    # shellcheck disable=SC1091
    source "$STATE/overrides.env"
    set +a
  fi
  local session_timeout=${CAAS_CLUSTER_SESSION_TIMEOUT_MS:-10000}
  export CAAS_LOGGER_SESSION_TIMEOUT_MS=$session_timeout CAAS_SENDER_SESSION_TIMEOUT_MS=$session_timeout \
    CAAS_CAMPAIGN_SESSION_TIMEOUT_MS=$session_timeout
}

java_opts() {
  echo "-Xms128m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
  echo "-Dlog4j2.configurationFile=$CLUSTER_ROOT/infra/local/kafka/log4j2.properties"
}

kafka_config() {
  local node=$1 dir="$STATE/kafka-$1" voters="" other
  for other in "${KAFKA_NODES[@]}"; do
    voters+="${voters:+,}$other@127.0.0.1:$(kafka_controller_port "$other")"
  done
  mkdir -p "$dir/data"
  sed -e "s|@NODE_ID@|$node|; s|@VOTERS@|$voters|" \
      -e "s|@PORT@|$(kafka_port "$node")|g; s|@CONTROLLER_PORT@|$(kafka_controller_port "$node")|g" \
      -e "s|@DATA_DIR@|$dir/data|; s|@REPLICATION@|3|g; s|@MIN_ISR@|2|g" \
      "$CLUSTER_ROOT/infra/local/kafka/server.properties.template" >"$dir/server.properties"
  # A stopped broker must not hold up the others' shutdown or the group's progress for long.
  cat >>"$dir/server.properties" <<'PROPERTIES'

# cluster.sh: three nodes on one small machine.
num.io.threads=2
num.replica.fetchers=1
replica.lag.time.max.ms=10000
controlled.shutdown.enable=true
unclean.leader.election.enable=false
PROPERTIES
}

start_kafka_node() {
  local node=$1 dir="$STATE/kafka-$1" cluster_id
  kafka_config "$node"
  # shellcheck disable=SC2046
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    if [[ ! -s "$STATE/kafka-cluster-id" ]]; then
      java -cp "$KAFKA_LIBS/*" $(java_opts) kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 >"$STATE/kafka-cluster-id"
    fi
    cluster_id=$(cat "$STATE/kafka-cluster-id")
    java -cp "$KAFKA_LIBS/*" $(java_opts) kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$dir/server.properties" >"$STATE/logs/kafka-$node-format.log" 2>&1 \
      || die "formatting kafka-$node failed; see $STATE/logs/kafka-$node-format.log"
  fi
  # shellcheck disable=SC2046
  start "kafka-$node" java $(java_opts) -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
}

start_cluster_registry() {
  start registry java -Xms128m -Xmx384m -XX:TieredStopAtLevel=1 \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.log.level=WARN \
    -Dapicurio.storage.kind=kafkasql \
    -Dapicurio.kafkasql.bootstrap.servers="$BOOTSTRAP" \
    -Dapicurio.kafkasql.topic=caas-registry-journal \
    -Dapicurio.kafkasql.snapshots.topic=caas-registry-snapshots \
    -Dapicurio.kafkasql.consumer.group-prefix=caas-registry- \
    -Dapicurio.ccompat.use-canonical-hash=true \
    -jar "$APICURIO_DIR/apicurio-registry-app-$APICURIO_VERSION-runner.jar"
}

start_cluster_mongodb() {
  mkdir -p "$STATE/mongodb"
  start mongodb "$(secantus_binary)" --host 127.0.0.1 --port "$MONGO_PORT" \
    --storage-path "$STATE/mongodb" --cache-size 256M --log-level WARNING
}

start_cluster_redis() {
  mkdir -p "$STATE/redis"
  # Append-only file, as in production: a restarted Redis keeps sessions and de-duplication keys.
  start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" \
    --save "" --appendonly yes --appendfsync everysec --protected-mode yes
}

start_service() {
  local name=$1 base=${1%-[0-9]*} address binary
  address=$(service_address "$name")
  [[ -n $address ]] || die "unknown part '$name'"
  binary="$CLUSTER_BIN/caas-$base"
  [[ -x $binary ]] || die "missing $binary; run infra/local/cluster.sh up first"
  (
    cluster_env
    export "$(service_address_variable "$base")=$address" CAAS_INSTANCE="cluster-$name"
    start "$name" "$binary"
  )
}

copy_binary() {
  local name=$1
  [[ -x "$BIN_DIR/$name" ]] || (cd "$CLUSTER_ROOT" && cargo build --quiet --bin "$name") \
    || die "cargo build --bin $name failed"
  # Copy, then rename: a running process keeps its old file (writing into it is ETXTBSY).
  cp -f "$BIN_DIR/$name" "$CLUSTER_BIN/$name.new" && mv -f "$CLUSTER_BIN/$name.new" "$CLUSTER_BIN/$name"
}

copy_binaries() {
  mkdir -p "$CLUSTER_BIN"
  local name entry
  copy_binary caasctl
  # A running cluster keeps the set it started with (a restart in a chaos test must not pick up
  # a half-finished build); `down` then `up` takes the current binaries.
  for entry in "${SERVICES[@]}"; do
    if alive "${entry%%:*}"; then
      log "services are running: keeping their binaries in $CLUSTER_BIN (down, then up, to refresh)"
      return
    fi
  done
  for name in caas-simulator caas-ingest caas-gateway caas-logger caas-presence caas-chatbot caas-campaign caas-sender; do
    copy_binary "$name"
  done
}

ctl() { (cluster_env; "$CLUSTER_BIN/caasctl" "$@"); }

cluster_probe() {
  local part=$1
  case $part in
    kafka-[0-9]) ctl probe kafka --bootstrap "127.0.0.1:$(kafka_port "${part#kafka-}")" --timeout-ms 2000 >/dev/null 2>&1 ;;
    kafka) [[ $(ctl probe kafka --bootstrap "$BOOTSTRAP" --timeout-ms 3000 2>/dev/null) == *"3 broker"* ]] ;;
    registry) curl -fsS -m 2 "$REGISTRY_URL/subjects" >/dev/null 2>&1 ;;
    mongodb) ctl probe mongodb --timeout-ms 2000 >/dev/null 2>&1 ;;
    redis) [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] ;;
    *) local address; address=$(service_address "$part")
       [[ -n $address ]] && curl -fsS -m 3 "http://$address/ready" >/dev/null 2>&1 ;;
  esac
}

cluster_wait() {
  local part=$1 seconds=$2 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    cluster_probe "$part" && return 0
    if [[ $part != kafka ]] && ! alive "$part"; then
      die "$part is not running; see $STATE/logs/$part.log
$(tail -n 15 "$STATE/logs/$part.log" 2>/dev/null)"
    fi
    sleep 0.5
  done
  die "$part did not become ready within ${seconds}s; see $STATE/logs/$part.log"
}

start_part() {
  case $1 in
    kafka-[0-9]) start_kafka_node "${1#kafka-}" ;;
    registry) start_cluster_registry ;;
    mongodb) start_cluster_mongodb ;;
    redis) start_cluster_redis ;;
    *) start_service "$1" ;;
  esac
}

kill_part() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid ]] || die "$1 is not running"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$STATE/pids/$1.pid"
  log "killed $1 (SIGKILL, pid $pid)"
}

# The node that leads the KRaft quorum, from the metadata quorum tool.
quorum_leader() {
  local node
  # shellcheck disable=SC2046
  node=$(java $(java_opts) -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-server "$BOOTSTRAP" describe --status 2>/dev/null | awk -F': *' '/^LeaderId/ {print $2}')
  [[ -n $node ]] || die "could not ask the quorum for its leader"
  echo "kafka-$node"
}

all_parts() {
  local node entry
  for node in "${KAFKA_NODES[@]}"; do echo "kafka-$node"; done
  echo registry mongodb redis | tr ' ' '\n'
  for entry in "${SERVICES[@]}"; do echo "${entry%%:*}"; done
  # Extra instances started by the scaling test.
  for entry in "$STATE"/pids/*-[0-9].pid; do
    [[ -f $entry ]] || continue
    entry=$(basename "$entry" .pid)
    [[ $entry == kafka-* || $entry == gateway-2 ]] || echo "$entry"
  done
}

cluster_up() {
  install_all
  copy_binaries
  local node entry
  for node in "${KAFKA_NODES[@]}"; do start_kafka_node "$node"; done
  start_cluster_redis
  start_cluster_mongodb
  cluster_wait kafka 120
  start_cluster_registry
  cluster_wait redis 30
  cluster_wait mongodb 60
  cluster_wait registry 180
  ctl topics apply --catalogue "$CLUSTER_ROOT/topics/catalogue.yaml" >"$STATE/logs/topics-apply.log" \
    || die "caasctl topics apply failed; see $STATE/logs/topics-apply.log"
  ctl schemas apply --catalogue "$CLUSTER_ROOT/topics/catalogue.yaml" >"$STATE/logs/schemas-apply.log" \
    || die "caasctl schemas apply failed; see $STATE/logs/schemas-apply.log"
  for entry in "${SERVICES[@]}"; do start_service "${entry%%:*}"; done
  for entry in "${SERVICES[@]}"; do cluster_wait "${entry%%:*}" 90; done
  log "cluster up: kafka $BOOTSTRAP (RF 3, min ISR 2), registry $REGISTRY_URL, mongodb :$MONGO_PORT, redis :$REDIS_PORT, ingest 127.0.0.1:18080, gateway :13000/:13001, simulator :18090"
}

cluster_down() {
  local part node
  for part in $(all_parts | tac); do
    [[ $part == kafka-* ]] || stop "$part"
  done
  # All brokers at once: the last one alone would wait for a controller quorum that is gone.
  for node in "${KAFKA_NODES[@]}"; do stop "kafka-$node" & done
  wait
}

cluster_status() {
  local failures=0 part state ready
  printf '%-10s %-8s %-9s %-6s %s\n' PART PID STATE READY ADDRESS
  for part in $(all_parts); do
    state=stopped; ready=no
    alive "$part" && state=running
    if [[ $state == running ]] && cluster_probe "$part"; then ready=yes; fi
    [[ $ready == yes ]] || failures=$((failures + 1))
    printf '%-10s %-8s %-9s %-6s %s\n' "$part" "$(pid_of "$part")" "$state" "$ready" \
      "$(case $part in kafka-*) echo "127.0.0.1:$(kafka_port "${part#kafka-}")";; registry) echo "$REGISTRY_URL";;
        mongodb) echo "127.0.0.1:$MONGO_PORT";; redis) echo "127.0.0.1:$REDIS_PORT";; *) service_address "$part";; esac)"
  done
  ((failures == 0)) || { echo "$failures part(s) not ready" >&2; return 1; }
}

case ${1:-} in
  up) cluster_up ;;
  down) cluster_down ;;
  reset) cluster_down; rm -rf "$STATE"; log "cluster state wiped ($STATE)" ;;
  status) cluster_status ;;
  start) start_part "${2:?start PART}" ;;
  stop) stop "${2:?stop PART}" ;;
  kill) kill_part "${2:?kill PART}" ;;
  ready) cluster_probe "${2:?ready PART}" ;;
  wait) cluster_wait "${2:?wait PART SECONDS}" "${3:-60}" ;;
  env) (cluster_env; env | grep -E '^CAAS_' | sort | sed -E "s/^([^=]*)=(.*)$/\1='\2'/") ;;
  controller) quorum_leader ;;
  ctl) shift; ctl "$@" ;;
  *) die "usage: infra/local/cluster.sh up | down | reset | status | start PART | stop PART | kill PART | ready PART | wait PART SECONDS | env | controller | ctl ARGS" ;;
esac
