#!/usr/bin/env bash
# The local CAAS stack, started natively (no Docker): Apache Kafka (KRaft), Apicurio Registry,
# SecantusDB (MongoDB wire protocol), Redis, and every CAAS service.
#
#   infra/local/stack.sh install   install what is missing (cached under ~/.cache/caas)
#   infra/local/stack.sh up        install, build, start everything, wait until ready, print URLs
#   infra/local/stack.sh infra     the same, without the CAAS services (what the tests need first)
#   infra/local/stack.sh down      stop everything this script started
#   infra/local/stack.sh status    what runs where, and whether it is ready (exit 1 if not)
#   infra/local/stack.sh logs [part]  tail the logs
#
# Every step is idempotent: running `up` twice leaves one of each process. Data lives under one
# state folder ($CAAS_STATE_DIR, default ~/.cache/caas/state); `down` keeps it, `reset` wipes it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CAAS_CACHE_DIR:-$HOME/.cache/caas}"
STATE="${CAAS_STATE_DIR:-$CACHE/state}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
BIN_DIR="$CARGO_TARGET_DIR/debug"

KAFKA_VERSION=4.1.1
KAFKA_LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
APICURIO_VERSION=3.0.9
APICURIO_DIR="$CACHE/apicurio/$APICURIO_VERSION"
SECANTUS_VERSION=0.5.3-beta.196
SECANTUS_ROOT="$CACHE/secantus/$SECANTUS_VERSION"
SECANTUS_VENV="$CACHE/secantus-py"

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
REGISTRY_PORT=8081
MONGO_PORT=27017
REDIS_PORT=6379
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"

# name:address of every CAAS process; gateway runs twice to exercise the Redis adapter.
SERVICES=(
  "simulator:127.0.0.1:8090"
  "ingest:127.0.0.1:8080"
  "gateway:127.0.0.1:3000"
  "gateway-2:127.0.0.1:3001"
  "logger:127.0.0.1:9101"
  "presence:127.0.0.1:9102"
  "chatbot:127.0.0.1:9103"
  "campaign:127.0.0.1:9104"
  "sender:127.0.0.1:9105"
)

log() { printf '\033[1m[caas]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[caas] error:\033[0m %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE" "$STATE/logs" "$STATE/pids"

# ---------------------------------------------------------------- install ---------------------

apt_install() {
  local packages=("$@")
  if [[ $(id -u) -ne 0 ]]; then
    die "missing system packages: ${packages[*]}; install them (sudo apt-get install -y ${packages[*]}) and run again"
  fi
  if [[ ! -f "$CACHE/.apt-updated" ]] || [[ -n $(find "$CACHE/.apt-updated" -mmin +1440 2>/dev/null) ]]; then
    log "apt-get update"
    apt-get update -qq >"$STATE/logs/apt.log" 2>&1 || die "apt-get update failed; see $STATE/logs/apt.log"
    touch "$CACHE/.apt-updated"
  fi
  log "installing ${packages[*]} (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >>"$STATE/logs/apt.log" 2>&1 \
    || die "apt-get install ${packages[*]} failed; see $STATE/logs/apt.log"
}

install_system() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  command -v cargo >/dev/null || die "cargo (Rust 1.94+) is required; install it with rustup and run again"
}

install_kafka() {
  [[ -f "$KAFKA_LIBS/.complete" ]] && return
  log "resolving Apache Kafka $KAFKA_VERSION from Maven Central (once)"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/local/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$STATE/logs/install-kafka.log" 2>&1 \
    || die "could not resolve Kafka jars; see $STATE/logs/install-kafka.log"
  touch "$KAFKA_LIBS/.complete"
}

install_registry() {
  [[ -f "$APICURIO_DIR/.complete" ]] && return
  log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (once)"
  local archive="$CACHE/downloads/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  mkdir -p "$CACHE/downloads"
  if [[ ! -s "$archive" ]]; then
    curl -fsSL -o "$archive.part" \
      "https://repo.maven.apache.org/maven2/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" \
      || die "could not download Apicurio Registry $APICURIO_VERSION from Maven Central"
    mv "$archive.part" "$archive"
  fi
  rm -rf "$APICURIO_DIR" && mkdir -p "$APICURIO_DIR"
  tar xzf "$archive" -C "$APICURIO_DIR"
  touch "$APICURIO_DIR/.complete"
}

secantus_binary() {
  if [[ -x "$SECANTUS_ROOT/bin/secantusd-rs" ]]; then
    echo "$SECANTUS_ROOT/bin/secantusd-rs"
  elif [[ -x "$SECANTUS_VENV/bin/secantusd-py" ]]; then
    echo "$SECANTUS_VENV/bin/secantusd-py"
  fi
}

install_mongodb() {
  [[ -n $(secantus_binary) ]] && return
  log "building SecantusDB $SECANTUS_VERSION (the MongoDB-wire server; once, about 8 minutes)"
  if cargo install secantus-mdb --version "$SECANTUS_VERSION" --ignore-rust-version --locked \
      --root "$SECANTUS_ROOT" >"$STATE/logs/install-secantus.log" 2>&1 \
    || cargo install secantus-mdb --version "$SECANTUS_VERSION" --ignore-rust-version \
      --root "$SECANTUS_ROOT" >>"$STATE/logs/install-secantus.log" 2>&1; then
    return
  fi
  log "the Rust SecantusDB did not build (see $STATE/logs/install-secantus.log); using the PyPI server"
  python3 -m venv "$SECANTUS_VENV" && "$SECANTUS_VENV/bin/pip" install -q SecantusDB \
    >>"$STATE/logs/install-secantus.log" 2>&1 \
    || die "neither SecantusDB server could be installed; see $STATE/logs/install-secantus.log"
}

install_all() {
  install_system
  install_kafka
  install_registry
  install_mongodb
}

# ---------------------------------------------------------------- processes -------------------

pid_of() { local file="$STATE/pids/$1.pid"; [[ -f $file ]] && cat "$file" || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# start NAME COMMAND...: run detached in its own session, log to <state>/logs/NAME.log.
start() {
  local name=$1; shift
  if alive "$name"; then return; fi
  : >"$STATE/logs/$name.log"
  setsid nohup "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
  log "started $name (pid $!, log $STATE/logs/$name.log)"
}

stop() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within 15 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name"
  fi
  rm -f "$STATE/pids/$name.pid"
}

start_kafka() {
  local dir="$STATE/kafka"
  mkdir -p "$dir/data"
  sed -e "s|@NODE_ID@|1|; s|@VOTERS@|1@127.0.0.1:$KAFKA_CONTROLLER_PORT|" \
      -e "s|@PORT@|$KAFKA_PORT|g; s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$dir/data|; s|@REPLICATION@|1|g; s|@MIN_ISR@|1|g" \
      "$ROOT/infra/local/kafka/server.properties.template" >"$dir/server.properties"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/infra/local/kafka/log4j2.properties")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id
    cluster_id=$(java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$KAFKA_LIBS/*" "${java_opts[@]}" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$dir/server.properties" >"$STATE/logs/kafka-format.log" 2>&1 \
      || die "formatting Kafka storage failed; see $STATE/logs/kafka-format.log"
  fi
  start kafka java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
}

start_registry() {
  local java_bin=java
  start registry "$java_bin" -Xms128m -Xmx512m \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=$REGISTRY_PORT \
    -Dquarkus.log.level=WARN -Dquarkus.log.category.\"io.apicurio\".level=INFO \
    -Dapicurio.storage.kind=kafkasql \
    -Dapicurio.kafkasql.bootstrap.servers=127.0.0.1:$KAFKA_PORT \
    -Dapicurio.kafkasql.topic=caas-registry-journal \
    -Dapicurio.kafkasql.snapshots.topic=caas-registry-snapshots \
    -Dapicurio.kafkasql.consumer.group-prefix=caas-registry- \
    -Dapicurio.ccompat.use-canonical-hash=true \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -jar "$APICURIO_DIR/apicurio-registry-app-$APICURIO_VERSION-runner.jar"
}

start_mongodb() {
  local binary
  binary=$(secantus_binary)
  mkdir -p "$STATE/mongodb"
  if [[ $binary == *secantusd-rs ]]; then
    start mongodb "$binary" --host 127.0.0.1 --port $MONGO_PORT --storage-path "$STATE/mongodb" --cache-size 512M --log-level WARNING
  else
    start mongodb "$binary" --host 127.0.0.1 --port $MONGO_PORT --storage-path "$STATE/mongodb"
  fi
}

start_redis() {
  mkdir -p "$STATE/redis"
  start redis redis-server --bind 127.0.0.1 --port $REDIS_PORT --dir "$STATE/redis" \
    --save "" --appendonly no --protected-mode yes
}

# ---------------------------------------------------------------- readiness -------------------

caasctl() { "$BIN_DIR/caasctl" "$@"; }

# probe PART: exit 0 when the part answers a real request.
probe() {
  case $1 in
    kafka) caasctl probe kafka --bootstrap "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 ;;
    registry) curl -fsS -m 2 "$REGISTRY_URL/subjects" >/dev/null 2>&1 ;;
    mongodb) caasctl probe mongodb >/dev/null 2>&1 ;;
    redis) [[ $(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping 2>/dev/null) == PONG ]] ;;
    *) local address; address=$(service_address "$1"); curl -fsS -m 3 "http://$address/ready" >/dev/null 2>&1 ;;
  esac
}

wait_ready() {
  local part=$1 seconds=$2
  for _ in $(seq 1 $((seconds * 2))); do
    probe "$part" && return 0
    if ! alive "$part"; then
      die "$part exited during start-up; see its log: $STATE/logs/$part.log (last lines below)
$(tail -n 15 "$STATE/logs/$part.log" 2>/dev/null)"
    fi
    sleep 0.5
  done
  die "$part did not become ready within ${seconds}s; see its log: $STATE/logs/$part.log"
}

service_address() {
  local entry
  for entry in "${SERVICES[@]}"; do
    [[ ${entry%%:*} == "$1" ]] && { echo "${entry#*:}"; return; }
  done
}

# ---------------------------------------------------------------- services --------------------

load_env() {
  set -a
  # shellcheck disable=SC1091
  source "$ROOT/.env.example"
  [[ -f "$ROOT/.env" ]] && source "$ROOT/.env"
  set +a
  export CAAS_STATE_DIR="$STATE"
  # Relative paths in .env.example are relative to the repository.
  [[ $CAAS_CHATBOT_FLOWS_DIR == /* ]] || export CAAS_CHATBOT_FLOWS_DIR="$ROOT/$CAAS_CHATBOT_FLOWS_DIR"
}

build() {
  log "building the CAAS binaries (cargo, target dir $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --workspace --bins --quiet) || die "cargo build failed"
}

start_services() {
  load_env
  local entry name address binary
  for entry in "${SERVICES[@]}"; do
    name=${entry%%:*}; address=${entry#*:}
    binary="$BIN_DIR/caas-${name%-2}"
    [[ -x $binary ]] || die "missing binary $binary; the cargo build did not produce it"
    # A rebuilt binary replaces the running one, so `make up` after a change runs the new code.
    if alive "$name" && [[ "$binary" -nt "$STATE/pids/$name.pid" ]]; then stop "$name"; fi
    local variable
    variable=$(service_address_variable "${name%-2}")
    (export "$variable=$address" CAAS_INSTANCE="$name"; start "$name" "$binary")
  done
  for entry in "${SERVICES[@]}"; do wait_ready "${entry%%:*}" 60; done
}

service_address_variable() {
  case $1 in
    ingest) echo CAAS_INGEST_ADDR ;;
    simulator) echo CAAS_SIMULATOR_ADDR ;;
    gateway) echo CAAS_GATEWAY_ADDR ;;
    *) echo "CAAS_$(tr '[:lower:]' '[:upper:]' <<<"$1")_OPS_ADDR" ;;
  esac
}

# ---------------------------------------------------------------- commands --------------------

infra_up() {
  install_all
  start_kafka
  start_redis
  start_mongodb
  build
  wait_ready kafka 90
  start_registry
  wait_ready redis 30
  wait_ready mongodb 60
  wait_ready registry 120
  apply_contracts
}

apply_contracts() {
  load_env
  if caasctl topics --help >/dev/null 2>&1; then
    caasctl topics apply --catalogue "$ROOT/topics/catalogue.yaml" || die "caasctl topics apply failed"
  fi
  if caasctl schemas --help >/dev/null 2>&1; then
    caasctl schemas apply --catalogue "$ROOT/topics/catalogue.yaml" || die "caasctl schemas apply failed"
  fi
}

print_summary() {
  load_env
  local body signature
  body='{"object":"whatsapp_business_account","entry":[{"id":"WABA-DEMO","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000001","phone_number_id":"100000000000001"},"contacts":[{"profile":{"name":"Ada"},"wa_id":"4915112345678"}],"messages":[{"from":"4915112345678","id":"wamid.DEMO'"$(date +%s)"'","timestamp":"'"$(date +%s)"'","type":"text","text":{"body":"Hello from make up"}}]}}]}]}'
  signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$CAAS_WHATSAPP_APP_SECRET" -hex | sed 's/^.*= //')
  cat <<TEXT

CAAS is up.
  dashboard          $(caasctl token --tenant demo --sub op-1 --role admin --url http://127.0.0.1:3000)
                     (a demo admin's sign-in link; the second gateway instance is on :3001;
                     mint other tokens with: caasctl token --tenant demo --sub <id> --role operator)
  webhooks (ingest)  http://127.0.0.1:8080/webhooks/whatsapp · /webhooks/rcs   (API: /openapi.yaml)
  provider simulator http://127.0.0.1:8090/_sim/requests   (what the sender sent; knobs: /_sim/knobs)
  Kafka              127.0.0.1:$KAFKA_PORT
  schema registry    $REGISTRY_URL
  MongoDB            mongodb://127.0.0.1:$MONGO_PORT
  Redis              redis://127.0.0.1:$REDIS_PORT
  logs               $STATE/logs/   (make logs)
  status             make status

A signed sample WhatsApp webhook for the demo tenant:

curl -i http://127.0.0.1:8080/webhooks/whatsapp \\
  -H 'Content-Type: application/json' \\
  -H 'X-Hub-Signature-256: sha256=$signature' \\
  --data-raw '$body'

TEXT
}

status() {
  local failures=0 part pid state ready
  printf '%-10s %-8s %-9s %-6s %s\n' PART PID STATE READY LOG
  for part in kafka registry mongodb redis $(for e in "${SERVICES[@]}"; do echo "${e%%:*}"; done); do
    pid=$(pid_of "$part"); state=stopped; ready=no
    alive "$part" && state=running
    # Ready means: the process this script started is alive AND it answers a real request.
    if [[ $state == running && -x "$BIN_DIR/caasctl" ]] && probe "$part"; then ready=yes; fi
    [[ $ready == yes ]] || failures=$((failures + 1))
    printf '%-10s %-8s %-9s %-6s %s\n' "$part" "${pid:--}" "$state" "$ready" "$STATE/logs/$part.log"
  done
  ((failures == 0)) || { echo "$failures part(s) not ready" >&2; return 1; }
}

down() {
  local entry
  for entry in "${SERVICES[@]}"; do stop "${entry%%:*}"; done
  stop registry
  stop mongodb
  stop redis
  stop kafka
}

# Sourced (infra/local/cluster.sh reuses the helpers above): define, run nothing.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

case ${1:-up} in
  install) install_all ;;
  infra) infra_up ;;
  up) infra_up; start_services; print_summary ;;
  services) start_services ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$STATE"; log "state wiped ($STATE)" ;;
  logs)
    if [[ -n ${2:-} ]]; then tail -n 100 -F "$STATE/logs/$2.log"; else tail -n 20 -F "$STATE"/logs/*.log; fi ;;
  summary) print_summary ;;
  *) die "unknown command '$1'; use install | up | infra | services | down | status | logs [part] | reset" ;;
esac
