#!/usr/bin/env python3
"""Run CAAS's load-test scenarios side by side with the Node.js peers and the limits, and write
load-tests/results/<timestamp>/ (raw JSON per run, report.md, SVG plots).

    load-tests/bench.py               # make bench: the full run (under 25 minutes)
    load-tests/bench.py --profile quick   # make bench-quick: every scenario for a few seconds
    load-tests/bench.py --profile tiny    # tests/system/test_bench_quick.sh: figures exist

Needs the local stack (`make up`). The processes under test that the bench starts (our release
ingest and gateways, the drain logger, the Node peers, the bare axum server) are stopped by pid
at the end. Nothing here asserts a speed; --check only checks that every scenario produced its
figures.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "load-tests"
CACHE = Path(os.environ.get("CAAS_CACHE_DIR", Path.home() / ".cache" / "caas"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target"))
KAFKA_LIBS = CACHE / "kafka" / "4.1.1" / "libs"
PEER_DEPS = CACHE / "npm" / "load-peers"

# Ports of the processes the bench starts (the shared stack keeps 8080, 3000, 3001, 9101-9105).
PORT_INGEST = 8180
PORTS_GATEWAY = (3200, 3201)
PORT_PEER_WEBHOOK = 8088
PORTS_PEER_GATEWAY = (3100, 3101)
PORT_CEILING = 8089
PORT_DRAIN_LOGGER_OPS = 9180
PORT_DRAIN_GATEWAY = 3202
PORT_IDLE_GATEWAY = 3203
PORT_IDLE_PEER = 3102
PORT_BENCH_LOGGER_OPS = 9181
# The stack's own services (debug builds, `make up`) paused while the bench measures, so only the
# processes under test and their dependencies use the two cores. Resumed when the bench ends.
STACK_PAUSED = ("logger", "chatbot", "presence", "campaign", "sender", "gateway", "gateway-2", "ingest")
# The logger's topics (services/logger DEFAULT_TOPICS).
LOGGER_TOPICS = ("inbound.messages.v1", "inbound.statuses.v1", "outbound.commands.v1", "outbound.results.v1",
                 "conversation.events.v1", "presence.updates.v1", "campaign.commands.v1", "campaign.events.v1")

FULL = dict(
    # Scaled to this 2-core machine shared with other engineers' builds (the report says where
    # and why): fewer sockets and messages than issue 9's figures.
    build="release", rounds=3,
    ingest_workers=64, ingest_warmup=1.5, ingest_duration=6.0, ingest_open_duration=5.0,
    ingest_customers=1000, kafka_records=100_000,
    e2e_operators=1000, e2e_rates=[100, 300, 1000], e2e_warmup=2.0, e2e_duration=8.0,
    # (sockets in the room, messages per second, rounds)
    fanout=[(1000, 10, 3), (5000, 4, 3), (10000, 2, 3)], fanout_warmup=2.0, fanout_duration=8.0,
    idle_sockets=10000,
    drain_backlog=500_000, drain_timeout=180.0,
    bot_count=30, bot_rate=3.0, bot_wait=20, listen_after=5,
    # The stack's sender allows 20 sends/s per number (CAAS_SENDER_RATE_PER_SECOND).
    campaign_recipients=600, campaign_rate=15.0,
)
PROFILES = {
    "full": FULL,
    # Every scenario for a few seconds.
    "quick": {**FULL, **dict(
        rounds=1, ingest_workers=32, ingest_customers=200, ingest_warmup=1.0, ingest_duration=3.0, ingest_open_duration=3.0,
        kafka_records=50_000, e2e_operators=200, e2e_rates=[50], e2e_warmup=1.0, e2e_duration=3.0,
        fanout=[(500, 10, 1)], fanout_warmup=1.0, fanout_duration=3.0, idle_sockets=1000,
        drain_backlog=20_000, drain_timeout=60.0, bot_count=5, bot_rate=2.0, bot_wait=15, listen_after=4,
        campaign_recipients=150, campaign_rate=15.0,
    )},
    # make test: only that every figure is produced (debug builds, a handful of sockets).
    "tiny": {**FULL, **dict(
        build="debug", rounds=1, ingest_workers=4, ingest_customers=10, ingest_warmup=0.5, ingest_duration=1.0,
        ingest_open_duration=1.0, kafka_records=2_000, e2e_operators=10, e2e_rates=[10], e2e_warmup=0.5,
        e2e_duration=1.5, fanout=[(20, 5, 1)], fanout_warmup=0.5, fanout_duration=1.5, idle_sockets=20,
        drain_backlog=500, drain_timeout=20.0, bot_count=2, bot_rate=2.0, bot_wait=10, listen_after=2,
        campaign_recipients=10, campaign_rate=5.0,
    )},
}

STACK_ENV = {}


def log(message):
    print(f"[bench {datetime.now(timezone.utc).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_env():
    """.env.example then .env, as `make up` reads them."""
    env = {}
    for name in (".env.example", ".env"):
        path = ROOT / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def machine_conditions():
    load = Path("/proc/loadavg").read_text().split()[:3]
    busy = subprocess.run(["ps", "-eo", "comm"], capture_output=True, text=True).stdout.split()
    return {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_1_5_15": [float(value) for value in load],
        "cpus": os.cpu_count(),
        "rustc_processes": busy.count("rustc"),
        "cargo_processes": busy.count("cargo"),
        "java_processes": busy.count("java"),
    }


class Processes:
    """The processes the bench starts; stopped by pid, never by name."""

    def __init__(self, logs):
        self.logs = logs
        self.running = {}

    def start(self, name, command, env=None, cwd=ROOT):
        log_file = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **STACK_ENV, **(env or {})},
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.running[name] = process
        return process

    def stop(self, name):
        process = self.running.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self):
        for name in list(self.running):
            self.stop(name)


def wait_http(url, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return True
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def wait_port(port, timeout=60.0):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


def binary(name, build):
    return str(TARGET / build / name)


def loadgen(build, args, runs_dir, label):
    """Run caas-load with `args`; keep its JSON under runs/<label>.json with the command."""
    command = [binary("caas-load", build)] + [str(arg) for arg in args]
    shown = " ".join(shlex.quote(part) for part in ["target/" + build + "/caas-load"] + command[1:])
    log(f"{label}: {shown}")
    before = machine_conditions()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **STACK_ENV})
    if completed.returncode != 0:
        raise RuntimeError(f"{label} failed: {completed.stderr[-2000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["command"] = shown
    result["machine_before"] = before
    result["machine_after"] = machine_conditions()
    (runs_dir / f"{label}.json").write_text(json.dumps(result, indent=1))
    return result


def kafka_tool(main_class, args, runs_dir, label, timeout=180):
    command = ["java", "-Xmx512m", "-cp", f"{KAFKA_LIBS}/*", main_class] + [str(arg) for arg in args]
    shown = "java -cp '~/.cache/caas/kafka/4.1.1/libs/*' " + " ".join(shlex.quote(str(p)) for p in command[4:])
    log(f"{label}: {shown}")
    before = machine_conditions()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        stdout, stderr = completed.stdout, completed.stderr
    except subprocess.TimeoutExpired:
        stdout, stderr = "", f"timed out after {timeout} s"
    result = {"command": shown, "stdout": stdout[-4000:], "stderr": stderr[-2000:],
              "machine_before": before, "machine_after": machine_conditions()}
    (runs_dir / f"{label}.json").write_text(json.dumps(result, indent=1))
    return result


def parse_producer_perf(stdout):
    """The summary line of ProducerPerformance."""
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                      r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", stdout)
    if not match:
        return None
    return {"records": int(match[1]), "per_second": float(match[2]), "mb_per_second": float(match[3]),
            "avg_ms": float(match[4]), "max_ms": float(match[5]), "p50_ms": float(match[6]),
            "p95_ms": float(match[7]), "p99_ms": float(match[8])}


def parse_consumer_perf(stdout):
    """ConsumerPerformance's CSV line: start, end, MB, MB/s, records, records/s, ..."""
    for line in stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) >= 6 and re.match(r"\d{4}-\d\d-\d\d", parts[0]):
            return {"mb": float(parts[2]), "mb_per_second": float(parts[3]), "records": int(parts[4]),
                    "per_second": float(parts[5])}
    return None


def median_of(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def pick(result, *path):
    value = result
    for key in path:
        if value is None:
            return None
        value = value.get(key) if isinstance(value, dict) else None
    return value


# ---------------------------------------------------------------------------------------------
# Starting what is under test

def service_env(extra):
    env = dict(STACK_ENV)
    env.update({"CAAS_LOG": "warn", "CAAS_LOG_FORMAT": "json"})
    env.update(extra)
    return env


def bench_database(stamp):
    return f"caas_bench_{stamp.lower()}"


def start_group_at_end(group, topics):
    """Commit the end of every partition of `topics` for a new consumer group, so its first
    member starts there rather than at the beginning of the topics' history."""
    command = ["java", "-Xmx256m", "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
               "--bootstrap-server", "127.0.0.1:9092", "--group", group, "--reset-offsets", "--to-latest", "--execute"]
    for topic in topics:
        command += ["--topic", topic]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(f"cannot start {group} at the end: {completed.stderr[-1000:]}")


# The bench's own workers (release logger and gateways) of the current generation.
WORKERS = {"generation": 0, "logger_group": None}


def start_ours(processes, build, stamp):
    """Ingest, a logger and two gateways, all release builds, with their own consumer groups and
    database: what is measured is this pipeline, not the stack's debug services."""
    processes.start("ingest", [binary("caas-ingest", build)], env=service_env({
        "CAAS_INGEST_ADDR": f"127.0.0.1:{PORT_INGEST}",
        # Every request of the bench comes from 127.0.0.1: the per-source limit (1,000/s by
        # default) would cap the figure. The peer has none either.
        "CAAS_INGEST_RATE_PER_SOURCE": "1000000", "CAAS_INGEST_RATE_BURST_PER_SOURCE": "1000000",
    }))
    start_workers(processes, build, stamp)
    wait_http(f"http://127.0.0.1:{PORT_INGEST}/ready", 90)


def start_workers(processes, build, stamp):
    """The logger and the two gateways, in consumer groups of a new generation that start at
    the end of the topics (so they never work off what an earlier scenario produced)."""
    WORKERS["generation"] += 1
    tag = f"{stamp}-{WORKERS['generation']}"
    logger_group = f"load-logger-{tag}"
    start_group_at_end(logger_group, LOGGER_TOPICS)
    processes.start("logger", [binary("caas-logger", build)], env=service_env({
        "CAAS_LOGGER_GROUP_ID": logger_group,
        "CAAS_MONGODB_DATABASE": bench_database(stamp),
        "CAAS_LOGGER_OPS_ADDR": f"127.0.0.1:{PORT_BENCH_LOGGER_OPS}",
    }))
    for port in PORTS_GATEWAY:
        processes.start(f"gateway-{port}", [binary("caas-gateway", build)], env=service_env({
            "CAAS_GATEWAY_ADDR": f"127.0.0.1:{port}",
            # A new group starts at the end of the topics.
            "CAAS_GATEWAY_CONSUMER_GROUP": f"load-gateway-{tag}",
            "CAAS_GATEWAY_REDIS_PREFIX": f"load-gateway-{tag}",
            # The seq comes from the bench's logger.
            "CAAS_LOGGER_GROUP_ID": logger_group,
            "CAAS_MONGODB_DATABASE": bench_database(stamp),
        }))
    WORKERS["logger_group"] = logger_group
    wait_http(f"http://127.0.0.1:{PORT_BENCH_LOGGER_OPS}/ready", 90)
    for port in PORTS_GATEWAY:
        wait_http(f"http://127.0.0.1:{port}/health", 90)


def stop_workers(processes):
    processes.stop("logger")
    for port in PORTS_GATEWAY:
        processes.stop(f"gateway-{port}")


class StackPause:
    """SIGSTOP the stack's own services while the bench measures; SIGCONT them after."""

    def __init__(self):
        self.paused = []

    def pause(self):
        for name in STACK_PAUSED:
            pid_file = CACHE / "state" / "pids" / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGSTOP)
                self.paused.append((name, pid))
            except (OSError, ValueError):
                pass
        log(f"paused the stack's {', '.join(name for name, _ in self.paused) or 'nothing'}")

    def resume(self):
        for name, pid in self.paused:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        if self.paused:
            log(f"resumed the stack's {', '.join(name for name, _ in self.paused)}")
        self.paused = []


def install_peers():
    stamp_source = (HERE / "peers" / "package.json").read_bytes() + (HERE / "peers" / "package-lock.json").read_bytes()
    import hashlib
    stamp = PEER_DEPS / f".installed-{hashlib.sha256(stamp_source).hexdigest()[:16]}"
    if not stamp.exists():
        log(f"installing the Node peers' packages into {PEER_DEPS}")
        PEER_DEPS.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / "peers" / name, PEER_DEPS / name)
        subprocess.run(["npm", "ci", "--cache", str(CACHE / "npm" / "cache"), "--no-audit", "--no-fund",
                        "--loglevel=error"], cwd=PEER_DEPS, check=True)
        stamp.touch()


def node_env(extra):
    return {"NODE_PATH": str(PEER_DEPS / "node_modules"), "KAFKAJS_NO_PARTITIONER_WARNING": "1", **extra}


def start_peers(processes, stamp):
    processes.start("peer-webhook", ["node", str(HERE / "peers" / "webhook.js")],
                    env=node_env({"PORT": str(PORT_PEER_WEBHOOK)}))
    for port in PORTS_PEER_GATEWAY:
        processes.start(f"peer-gateway-{port}", ["node", str(HERE / "peers" / "gateway.js")],
                        env=node_env({"PORT": str(port), "GROUP": f"load-peer-gateway-{stamp}"}))
    wait_port(PORT_PEER_WEBHOOK, 60)
    for port in PORTS_PEER_GATEWAY:
        wait_port(port, 60)


def pid_of(processes, name):
    process = processes.running.get(name)
    return process.pid if process else None


# ---------------------------------------------------------------------------------------------
# Scenarios

def scenario_ingest(profile, build, runs, results, processes, stamp):
    systems = {
        "ours": f"http://127.0.0.1:{PORT_INGEST}/webhooks/whatsapp",
        "peer": f"http://127.0.0.1:{PORT_PEER_WEBHOOK}/webhooks/whatsapp",
        "axum": f"http://127.0.0.1:{PORT_CEILING}/webhooks/whatsapp",
    }
    customers = profile["ingest_customers"]
    common = ["--customers", customers, "--customer-base", 4_990_000_000_000]
    # Hand the ingest scenario's conversations to an operator first: otherwise the demo bot
    # answers every message, and thousands of replies queue behind the sender's rate limit.
    loadgen(build, ["deliver", "--servers", ",".join(f"127.0.0.1:{port}" for port in PORTS_GATEWAY),
                    "--sockets", customers, "--rooms", customers, "--handoff", *common,
                    "--url", f"http://127.0.0.1:{PORT_INGEST}/webhooks/whatsapp",
                    "--rate", 1, "--warmup", 0, "--duration", 1, "--drain", 0],
            runs, "ingest-prepare-handoff")
    # Our logger and gateways would store and fan out every webhook measured here, on the same
    # two cores, while the peer's webhooks go to a topic nobody consumes: they are stopped while
    # ingest is measured and start again after it in new groups at the end of the topics.
    time.sleep(2)  # the handoffs reach the logger
    stop_workers(processes)
    try:
        measure_ingest(profile, build, runs, results, systems, common)
    finally:
        start_workers(processes, build, stamp)


def measure_ingest(profile, build, runs, results, systems, common):
    per_system = {name: [] for name in systems}
    for round_index in range(profile["rounds"]):
        for name, url in systems.items():  # A B (C) A B (C) ...
            closed = loadgen(build, ["send", "--url", url, *common, "--workers", profile["ingest_workers"],
                                     "--warmup", profile["ingest_warmup"], "--duration", profile["ingest_duration"]],
                             runs, f"ingest-{name}-max-r{round_index}")
            maximum = pick(closed, "send", "acked", "per_second_mean") or 0
            entry = {"max": closed, "open": {}}
            for share in (50, 80):
                rate = max(1.0, maximum * share / 100)
                entry["open"][share] = loadgen(build, [
                    "send", "--url", url, *common, "--rate", f"{rate:.1f}",
                    "--warmup", min(1.0, profile["ingest_warmup"]), "--duration", profile["ingest_open_duration"],
                ], runs, f"ingest-{name}-open{share}-r{round_index}")
            per_system[name].append(entry)
    subprocess.run(["java", "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                    "127.0.0.1:9092", "--create", "--if-not-exists", "--topic", "load.perf.v1", "--partitions", "12",
                    "--replication-factor", "1"], capture_output=True, timeout=120)
    kafka = kafka_tool("org.apache.kafka.tools.ProducerPerformance", [
        "--topic", "load.perf.v1", "--num-records", profile["kafka_records"], "--record-size", 300,
        "--throughput", -1, "--producer-props", "bootstrap.servers=127.0.0.1:9092", "acks=all",
        "linger.ms=5", "compression.type=lz4", "enable.idempotence=true",
    ], runs, "ingest-kafka-producer-perf")
    kafka["parsed"] = parse_producer_perf(kafka["stdout"])
    summary = {}
    for name, entries in per_system.items():
        summary[name] = {
            "max_per_second": median_of([pick(e["max"], "send", "acked", "per_second_mean") for e in entries]),
            "max_p99_ms": median_of([pick(e["max"], "send", "acked", "latency_ms", "p99") for e in entries]),
            **{f"p{q}_at_{share}_ms": median_of([pick(e["open"][share], "send", "acked", "latency_ms", f"p{q}")
                                                 for e in entries])
               for share in (50, 80) for q in (50, 99)},
            "errors": sum(sum(v for k, v in (pick(e["max"], "send", "statuses") or {}).items() if k != "200")
                          for e in entries),
            "loadgen_cpu_s": median_of([pick(e["max"], "loadgen", "cpu_seconds") for e in entries]),
            # Round 0's closed loop, 80 % and 50 % runs (the other rounds differ only in rate).
            "commands": [entries[0]["max"]["command"], entries[0]["open"][80]["command"],
                         entries[0]["open"][50]["command"]],
        }
    summary["kafka"] = {"parsed": kafka["parsed"], "command": kafka["command"]}
    results["ingest"] = {"summary": summary, "runs": per_system}


def scenario_e2e(profile, build, runs, results, stamp):
    operators = profile["e2e_operators"]
    out = []
    for rate in profile["e2e_rates"]:
        settle_logger(build, stamp, results, f"e2e-ours-rate{rate}")
        result = loadgen(build, [
            "deliver", "--servers", ",".join(f"127.0.0.1:{port}" for port in PORTS_GATEWAY),
            "--sockets", operators, "--rooms", operators, "--handoff",
            "--url", f"http://127.0.0.1:{PORT_INGEST}/webhooks/whatsapp",
            "--customers", operators, "--customer-base", 4_991_000_000_000,
            "--rate", rate, "--warmup", profile["e2e_warmup"], "--duration", profile["e2e_duration"], "--drain", profile["listen_after"],
        ], runs, f"e2e-ours-rate{rate}")
        out.append({"rate": rate, "operators": operators, "result": result})
    results["e2e"] = out


def scenario_fanout(profile, build, runs, results, stamp):
    systems = {"ours": PORTS_GATEWAY, "peer": PORTS_PEER_GATEWAY}
    out = []
    for sockets, rate, rounds in profile["fanout"]:
        rounds = min(rounds, profile["rounds"])
        entry = {"sockets": sockets, "rate": rate, "runs": {name: [] for name in systems}}
        for round_index in range(rounds):
            for name, ports in systems.items():
                settle_logger(build, stamp, results, f"fanout-{sockets}-{name}-r{round_index}")
                entry["runs"][name].append(loadgen(build, [
                    "deliver", "--servers", ",".join(f"127.0.0.1:{port}" for port in ports),
                    "--sockets", sockets, "--rooms", 1, "--handoff", "--connect-concurrency", 128,
                    "--url", f"http://127.0.0.1:{PORT_INGEST}/webhooks/whatsapp",
                    "--customers", 1, "--customer-base", 4_992_000_000_000 + sockets,
                    "--rate", rate, "--warmup", profile["fanout_warmup"], "--duration", profile["fanout_duration"],
                    "--drain", profile["listen_after"],
                ], runs, f"fanout-{sockets}-{name}-r{round_index}"))
        entry["summary"] = {
            name: {
                "delivered_per_second": median_of([pick(r, "delivered", "per_second_mean") for r in rs]),
                "delivered_ratio": median_of([r.get("delivered_ratio") for r in rs]),
                "p50_ms": median_of([pick(r, "delivered", "latency_ms", "p50") for r in rs]),
                "p99_ms": median_of([pick(r, "delivered", "latency_ms", "p99") for r in rs]),
                "connected": median_of([pick(r, "fleet", "connected") for r in rs]),
                "command": rs[0]["command"],
            } for name, rs in entry["runs"].items()
        }
        out.append(entry)
    results["fanout"] = out


def scenario_connections(profile, build, runs, results, processes, stamp):
    """Idle sockets on a fresh instance of each (a process that held sockets before keeps its
    grown heap, which would hide the cost of new ones)."""
    out = {}
    processes.start("idle-ours", [binary("caas-gateway", build)], env=service_env({
        "CAAS_GATEWAY_ADDR": f"127.0.0.1:{PORT_IDLE_GATEWAY}",
        "CAAS_GATEWAY_CONSUMER_GROUP": f"load-idle-{stamp}",
        "CAAS_GATEWAY_REDIS_PREFIX": f"load-idle-{stamp}",
    }))
    processes.start("idle-peer", ["node", str(HERE / "peers" / "gateway.js")],
                    env=node_env({"PORT": str(PORT_IDLE_PEER), "GROUP": f"load-idle-peer-{stamp}"}))
    wait_http(f"http://127.0.0.1:{PORT_IDLE_GATEWAY}/health", 90)
    wait_port(PORT_IDLE_PEER, 90)
    time.sleep(2)
    for name, port, process_name in (("ours", PORT_IDLE_GATEWAY, "idle-ours"),
                                     ("peer", PORT_IDLE_PEER, "idle-peer")):
        pid = pid_of(processes, process_name)
        out[name] = loadgen(build, [
            "idle", "--servers", f"127.0.0.1:{port}", "--sockets", profile["idle_sockets"],
            "--connect-concurrency", 128, "--pids", pid, "--settle", 3,
        ], runs, f"connections-{name}")
    processes.stop("idle-ours")
    processes.stop("idle-peer")
    results["connections"] = out


def group_lag(build, group):
    """The group's total lag as Kafka holds it (`caasctl lag`), or None before it has members."""
    completed = subprocess.run([binary("caasctl", build), "lag", "--group", group, "--json"],
                               capture_output=True, text=True, env={**os.environ, **STACK_ENV}, timeout=30)
    try:
        groups = json.loads(completed.stdout)
    except json.JSONDecodeError:
        return None
    for entry in groups:
        if entry.get("group") == group and entry.get("members"):
            return entry.get("total_lag")
    return None


def settle_logger(build, stamp, results, label, timeout=240.0):
    """Wait until the bench's logger has stored everything produced so far (its group's lag is
    0), so a delivery scenario does not measure the backlog of the one before it (every
    delivery waits for the logger's `seq`). How long it took is kept in results["settled"]."""
    group = WORKERS["logger_group"]
    began = time.time()
    lag = group_lag(build, group)
    # None means Kafka could not say (no members yet, or caasctl failed): that is not "settled";
    # it is asked again for a while before the run goes on and records it as unknown.
    while time.time() - began < timeout and (lag or (lag is None and time.time() - began < 30)):
        time.sleep(1.0)
        lag = group_lag(build, group)
    waited = time.time() - began
    results.setdefault("settled", {})[label] = {"seconds": round(waited, 1), "lag_left": lag}
    if waited > 2:
        log(f"{label}: waited {waited:.0f} s for the bench logger to store the backlog (lag left: {lag})")


def drop_database(name):
    """A scratch database of the bench: dropped by a detached process (pymongo when installed),
    since SecantusDB can take minutes over a database of a million events and the report need
    not wait for it."""
    script = (
        "import sys, pymongo\n"
        "client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=5000, socketTimeoutMS=900000)\n"
        "client.drop_database(sys.argv[2])\n"
    )
    uri = STACK_ENV.get("CAAS_MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    try:
        subprocess.Popen([sys.executable, "-c", script, uri, name], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"dropping the scratch database {name} in the background")
    except OSError as error:
        log(f"could not drop the scratch database {name}: {error}")


def scenario_drain(profile, build, runs, results, processes):
    """A backlog of `drain_backlog` inbound messages is produced straight to Kafka; then a fresh
    logger group (own database) and a fresh gateway group (reading that database) start
    together at the earliest offsets, as after an outage: the backlog is every record the
    topics hold. Time until each group's lag (Kafka's committed offsets) is zero."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    database = f"caas_drain_{stamp}"
    out = {"seed": loadgen(build, ["seed", "--count", profile["drain_backlog"], "--customers", 1000,
                                   "--run", f"drain{stamp}"], runs, "drain-seed")}
    offsets = subprocess.run(["java", "-cp", f"{KAFKA_LIBS}/*", "org.apache.kafka.tools.GetOffsetShell",
                              "--bootstrap-server", "127.0.0.1:9092"], capture_output=True, text=True, timeout=120).stdout
    per_topic = {}
    for line in offsets.splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0].endswith(".v1"):
            per_topic[parts[0]] = per_topic.get(parts[0], 0) + int(parts[2])
    out["backlog_per_topic"] = per_topic
    cases = {
        "logger": ("caas-logger", f"load-drain-logger-{stamp}", {
            "CAAS_LOGGER_GROUP_ID": f"load-drain-logger-{stamp}",
            "CAAS_MONGODB_DATABASE": database,
            "CAAS_LOGGER_OPS_ADDR": f"127.0.0.1:{PORT_DRAIN_LOGGER_OPS}",
        }),
        "gateway": ("caas-gateway", f"load-drain-gateway-{stamp}", {
            "CAAS_GATEWAY_ADDR": f"127.0.0.1:{PORT_DRAIN_GATEWAY}",
            "CAAS_GATEWAY_CONSUMER_GROUP": f"load-drain-gateway-{stamp}",
            "CAAS_GATEWAY_REDIS_PREFIX": f"load-drain-{stamp}",
            "CAAS_GATEWAY_OFFSET_RESET": "earliest",
            # Its seqs come from the drain logger (whose progress it checks), not the stack's.
            "CAAS_LOGGER_GROUP_ID": f"load-drain-logger-{stamp}",
            "CAAS_MONGODB_DATABASE": database,
        }),
    }
    before = machine_conditions()
    started = time.time()
    samples = {name: [] for name in cases}
    drained = {name: None for name in cases}
    for name, (binary_name, _, env) in cases.items():
        processes.start(f"drain-{name}", [binary(binary_name, build)],
                        env=service_env({**env, "CAAS_SHUTDOWN_GRACE_MS": "2000"}))
    while time.time() - started < profile["drain_timeout"] and None in drained.values():
        time.sleep(2.0)
        for name, (_, group, _) in cases.items():
            if drained[name] is not None:
                continue
            lag = group_lag(build, group)
            samples[name].append([round(time.time() - started, 1), lag])
            # Zero twice in a row, once the group has members.
            if lag == 0 and len(samples[name]) > 1 and samples[name][-2][1] == 0:
                drained[name] = samples[name][-2][0]
                processes.stop(f"drain-{name}")
    for name in cases:
        processes.stop(f"drain-{name}")
    for name, (binary_name, group, env) in cases.items():
        known = [(at, lag) for at, lag in samples[name] if lag is not None]
        rate = None
        if known:
            # The consuming rate from the highest lag seen to the last sample (what a drain
            # that did not finish in the bounded time still tells).
            peak_at, peak = max(known, key=lambda sample: sample[1])
            last_at, last = known[-1]
            if last_at > peak_at:
                rate = (peak - last) / (last_at - peak_at)
        command = f"env {' '.join(f'{k}={v}' for k, v in env.items())} target/{build}/{binary_name}"
        out[name] = {"command": command, "group": group, "drained_seconds": drained[name],
                     "timeout_s": profile["drain_timeout"], "backlog": known[0][1] if known else None,
                     "records_per_second": rate, "lag_samples": samples[name],
                     "lag_command": f"target/{build}/caasctl lag --group {group} --json",
                     "machine_before": before, "machine_after": machine_conditions()}
        (runs / f"drain-{name}.json").write_text(json.dumps(out[name], indent=1))
    drop_database(database)
    biggest = max(per_topic, key=per_topic.get) if per_topic else "inbound.messages.v1"
    kafka = kafka_tool("org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", "127.0.0.1:9092", "--topic", biggest, "--messages", per_topic.get(biggest, 1),
        "--group", f"load-drain-perf-{stamp}", "--timeout", 60000,
    ], runs, "drain-kafka-consumer-perf")
    kafka["parsed"] = parse_consumer_perf(kafka["stdout"])
    out["kafka"] = {"topic": biggest, "parsed": kafka["parsed"], "command": kafka["command"]}
    results["drain"] = out


def http_json(method, url, token, body=None, content_type="application/json"):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read().decode() or "null")


def scenario_campaign(profile, build, runs, results):
    """A campaign to `campaign_recipients` new numbers at `campaign_rate`/s through the stack's
    gateway API, campaign service, sender and the provider simulator; the rate is read from the
    recipients' `sent_at` (when the provider accepted each send)."""
    count, rate = profile["campaign_recipients"], profile["campaign_rate"]
    stamp = int(time.time()) % 100_000
    numbers = [f"+4917{stamp:05d}{index:05d}" for index in range(count)]
    token = subprocess.run([binary("caasctl", build), "token", "--tenant", "demo", "--sub", "bench",
                            "--role", "admin"], capture_output=True, text=True, check=True,
                           env={**os.environ, **STACK_ENV}).stdout.strip()
    api = "http://127.0.0.1:3000/api/v1"
    csv = "phone,first_name\n" + "".join(f"{number},Bench{index}\n" for index, number in enumerate(numbers))
    upload = http_json("POST", f"{api}/audiences", token, csv, "text/csv")
    campaign_id = f"bench-{stamp}"
    body = {"campaign_id": campaign_id, "name": f"bench {campaign_id}", "channel": "whatsapp",
            "business_id": "100000000000001",
            "template": {"name": "spring_sale", "language": "en",
                         "parameters": [{"component": "body", "text": "{{first_name}}"}]},
            "audience_id": upload["audience_id"], "rate_per_second": rate, "timezone": "Europe/Berlin"}
    command = (f"POST {api}/campaigns {json.dumps(body)} (audience: {count} numbers uploaded as CSV to "
               f"{api}/audiences), then GET {api}/campaigns/{campaign_id}/recipients (sent_at)")
    log(f"campaign: {count} recipients at {rate}/s")
    before = machine_conditions()
    http_json("POST", f"{api}/campaigns", token, body)
    deadline = time.time() + count / rate + 90
    campaign = {}
    while time.time() < deadline:
        try:
            campaign = http_json("GET", f"{api}/campaigns/{campaign_id}", token)
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: the create command is not consumed yet
                raise
            time.sleep(1.0)
            continue
        if campaign.get("state") == "completed" and (campaign.get("counts") or {}).get("queued") == 0:
            break
        time.sleep(1.0)
    recipients, after = [], None
    while True:
        page = http_json("GET", f"{api}/campaigns/{campaign_id}/recipients?limit=1000"
                         + (f"&after={after}" if after is not None else ""), token)
        items = page.get("recipients") or []
        recipients += items
        after = page.get("next_after")
        if not items or after is None:
            break
    sent = [r for r in recipients if isinstance(r.get("sent_at"), int)]
    times = sorted(r["sent_at"] for r in sent)
    worst, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1000:
            start += 1
        worst = max(worst, end - start + 1)
    achieved = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 and times[-1] > times[0] else None
    result = {"command": command, "recipients": count, "configured_rate": rate, "state": campaign.get("state"),
              "counts": campaign.get("counts"), "sent": len(sent), "achieved_rate": achieved,
              "max_in_any_second": worst, "machine_before": before, "machine_after": machine_conditions()}
    (runs / "campaign-rate.json").write_text(json.dumps(result, indent=1))
    results["campaign"] = result


def scenario_bot(profile, build, runs, results):
    results["bot"] = loadgen(build, [
        "bot", "--url", f"http://127.0.0.1:{PORT_INGEST}/webhooks/whatsapp",
        "--rate", profile["bot_rate"], "--count", profile["bot_count"], "--wait", profile["bot_wait"],
    ], runs, "bot-reply")


# ---------------------------------------------------------------------------------------------
# Report

def svg_chart(title, series, x_label, y_label, log_x=False):
    """A small line chart: series = [(name, [(x, y), ...])]."""
    width, height, left, right, top, bottom = 640, 320, 60, 150, 30, 40
    colours = ["#1b6ac9", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#495057"]
    points = [(x, y) for _, data in series for x, y in data if y is not None]
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60"><text x="10" y="30">{title}: no data</text></svg>'
    import math
    tx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    xs = [tx(x) for x, _ in points]
    ys = [y for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = 0, max(ys) * 1.1 if max(ys) > 0 else 1
    sx = lambda x: left + (tx(x) - x0) / (x1 - x0) * (width - left - right)
    sy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{title}</text>',
             f'<line x1="{left}" y1="{height-bottom}" x2="{width-right}" y2="{height-bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height-bottom}" stroke="black"/>',
             f'<text x="{(width-right+left)/2}" y="{height-8}" text-anchor="middle">{x_label}</text>',
             f'<text x="14" y="{(height)/2}" transform="rotate(-90 14 {height/2})" text-anchor="middle">{y_label}</text>']
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{left-4}" y="{sy(value)+4}" text-anchor="end">{value:.3g}</text>')
        parts.append(f'<line x1="{left}" y1="{sy(value)}" x2="{width-right}" y2="{sy(value)}" stroke="#eee"/>')
    ticks = sorted({x for x, _ in points})
    if log_x:
        ticks = [t for t in (1, 2, 10, 100, 1000, 10000) if 10 ** x0 <= t <= 10 ** x1]
        labels = {1: "p0", 2: "p50", 10: "p90", 100: "p99", 1000: "p99.9", 10000: "p99.99"}
    else:
        step = max(1, len(ticks) // 8)
        ticks = ticks[::step]
        labels = {}
    for tick in ticks:
        parts.append(f'<text x="{sx(tick)}" y="{height-bottom+14}" text-anchor="middle">{labels.get(tick, f"{tick:g}")}</text>')
    for index, (name, data) in enumerate(series):
        data = [(x, y) for x, y in data if y is not None]
        if not data:
            continue
        colour = colours[index % len(colours)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in data)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.append(f'<text x="{width-right+8}" y="{top+14+index*16}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def percentile_series(latency):
    """(1/(1-q), ms) points of a latency summary's distribution, for a log-x percentile plot."""
    if not latency:
        return []
    return [(1 / (1 - q) if q < 1 else 10000, ms) for q, ms in latency["distribution"] if q <= 0.9999]


def fmt(value, unit="", digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text}{unit}"


def ratio(ours, other, invert=False):
    if ours is None or other in (None, 0) or ours == 0:
        return "n/a"
    value = other / ours if invert else ours / other
    return f"{value:.2f}×"


def write_report(out_dir, profile_name, profile, results, conditions, notes):
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    lines = [f"# CAAS load tests — {out_dir.name} ({profile_name} profile)", ""]
    commands = []

    def cite(command):
        if command not in commands:
            commands.append(command)
        return f"[c{commands.index(command) + 1}]"

    rows = []
    ingest = results.get("ingest", {}).get("summary")
    if ingest:
        ours, peer, axum = ingest["ours"], ingest["peer"], ingest["axum"]
        kafka = (ingest.get("kafka") or {}).get("parsed") or {}
        c_ours, c_peer, c_axum = cite(ours["commands"][0]), cite(peer["commands"][0]), cite(axum["commands"][0])
        c_kafka = cite(ingest["kafka"]["command"])
        rows.append(["ingest: webhooks acked/s, closed loop (max)",
                     f"{fmt(ours['max_per_second'])} {c_ours}", f"{fmt(peer['max_per_second'])} {c_peer}",
                     f"axum 200 OK {fmt(axum['max_per_second'])} {c_axum}; Kafka acks=all {fmt(kafka.get('per_second'))} rec/s {c_kafka}",
                     ratio(ours["max_per_second"], peer["max_per_second"]),
                     ratio(ours["max_per_second"], axum["max_per_second"]) + " of axum"])
        for share in (50, 80):
            index = 1 if share == 80 else 2
            c_o, c_p = cite(ours["commands"][index]), cite(peer["commands"][index])
            rows.append([f"ingest: ack p50 / p99 at {share} % of own max (ms)",
                         f"{fmt(ours[f'p50_at_{share}_ms'])} / {fmt(ours[f'p99_at_{share}_ms'])} {c_o}",
                         f"{fmt(peer[f'p50_at_{share}_ms'])} / {fmt(peer[f'p99_at_{share}_ms'])} {c_p}",
                         f"axum {fmt(axum[f'p50_at_{share}_ms'])} / {fmt(axum[f'p99_at_{share}_ms'])}; Kafka p50/p99 {fmt(kafka.get('p50_ms'))} / {fmt(kafka.get('p99_ms'))}",
                         ratio(ours[f"p99_at_{share}_ms"], peer[f"p99_at_{share}_ms"], invert=True) + " (p99, peer/ours)",
                         ""])
    for entry in results.get("e2e", []):
        latency = pick(entry["result"], "delivered", "latency_ms") or {}
        rows.append([f"end to end: p50 / p99 / p99.9 at {entry['rate']} msg/s, {entry['operators']} operators, 2 gateways (ms)",
                     f"{fmt(latency.get('p50'))} / {fmt(latency.get('p99'))} / {fmt(latency.get('p999'))} "
                     f"(delivered {fmt(entry['result'].get('delivered_ratio'))}) {cite(entry['result']['command'])}",
                     "not run (the peer has no pipeline behind it)", "target p99 < 50 ms",
                     "", f"{ratio(50.0, latency.get('p99'))} of target" if latency.get("p99") else "n/a"])
    for entry in results.get("fanout", []):
        ours, peer = entry["summary"]["ours"], entry["summary"]["peer"]
        rows.append([f"fan-out: 1 room × {entry['sockets']:,} sockets, {entry['rate']} msg/s: delivered/s, p99 (ms)",
                     f"{fmt(ours['delivered_per_second'])}/s, p99 {fmt(ours['p99_ms'])} (ratio {fmt(ours['delivered_ratio'])}) {cite(ours['command'])}",
                     f"{fmt(peer['delivered_per_second'])}/s, p99 {fmt(peer['p99_ms'])} (ratio {fmt(peer['delivered_ratio'])}) {cite(peer['command'])}",
                     f"offered {entry['sockets'] * entry['rate']:,}/s",
                     ratio(ours["delivered_per_second"], peer["delivered_per_second"]) + " delivered; "
                     + ratio(ours["p99_ms"], peer["p99_ms"], invert=True) + " p99 (peer/ours)", ""])
    connections = results.get("connections")
    if connections:
        def per_socket(result):
            servers = result.get("servers") or []
            return servers[0]["bytes_per_socket"] if servers else None
        ours_b, peer_b = per_socket(connections["ours"]), per_socket(connections["peer"])
        rows.append([f"connections: idle sockets on one instance, resident bytes per socket",
                     f"{fmt(pick(connections['ours'], 'fleet', 'connected'))} sockets, {fmt(ours_b, ' B')} {cite(connections['ours']['command'])}",
                     f"{fmt(pick(connections['peer'], 'fleet', 'connected'))} sockets, {fmt(peer_b, ' B')} {cite(connections['peer']['command'])}",
                     "target < 20,000 B", ratio(ours_b, peer_b, invert=True) + " (peer/ours)",
                     ratio(20000, ours_b) if ours_b else "n/a"])
    drain = results.get("drain")
    if drain:
        kafka = drain["kafka"].get("parsed") or {}
        seeded = pick(drain, "seed", "seed", "produced")
        for name in ("logger", "gateway"):
            backlog = drain[name].get("backlog") or sum(drain["backlog_per_topic"].values())
            seconds = drain[name]["drained_seconds"]
            rate = backlog / seconds if seconds else drain[name].get("records_per_second")
            rows.append([f"drain: {name}, fresh group, backlog {backlog:,} records ({fmt(seeded)} seeded "
                         f"{cite(drain['seed']['command'])}): seconds to lag 0",
                         (f"{fmt(seconds, ' s')} ({fmt(rate)} rec/s)" if seconds else
                          f"not drained in {fmt(drain[name]['timeout_s'], ' s')}: {fmt(rate)} rec/s, "
                          f"projected {fmt(backlog / rate if rate else None, ' s')}")
                         + f" {cite(drain[name]['command'])}",
                         "n/a",
                         f"kafka-consumer-perf {fmt(kafka.get('per_second'))} rec/s on {drain['kafka']['topic']} {cite(drain['kafka']['command'])}",
                         "", ratio(rate, kafka.get("per_second")) + " of Kafka"])
    bot = results.get("bot")
    if bot:
        latency = bot.get("reply_latency_ms") or {}
        rows.append([f"chatbot: inbound → bot reply at the simulator, {bot['rate']} new customers/s: p50 / p99 (ms)",
                     f"{fmt(latency.get('p50'))} / {fmt(latency.get('p99'))} ({bot['replied']}/{bot['sent']} replied) {cite(bot['command'])}",
                     "n/a", "", "", ""])
    campaign = results.get("campaign")
    if campaign:
        rows.append([f"campaign: {campaign['recipients']} recipients at a configured {fmt(campaign['configured_rate'])}/s: "
                     "achieved rate, most sends in any second, each sent once",
                     f"{fmt(campaign['achieved_rate'])}/s, max {campaign['max_in_any_second']} in a second, "
                     f"{campaign['sent']}/{campaign['recipients']} sent (state {campaign['state']}, counts "
                     f"{json.dumps(campaign['counts'])}) {cite(campaign['command'])}",
                     "n/a", f"configured {fmt(campaign['configured_rate'])}/s", "",
                     ratio(campaign["achieved_rate"], campaign["configured_rate"]) + " of the configured rate"])

    lines += ["| scenario | ours | peer (Node.js) | limit | ours vs peer | ours vs limit |",
              "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Each `[cN]` is the command that produced the figure (listed under *Commands*); raw JSON per run "
              "is in `runs/`. Medians over rounds where a scenario ran more than once (ours and the peer "
              "alternate: A B A B).", ""]
    lines += ["## Conditions", ""]
    lines += [f"- profile `{profile_name}`: `{json.dumps(profile)}`"]
    for label, condition in conditions.items():
        lines.append(f"- {label}: load average {condition['loadavg_1_5_15']}, {condition['cpus']} CPUs, "
                     f"{condition['rustc_processes']} rustc / {condition['cargo_processes']} cargo / "
                     f"{condition['java_processes']} java processes at {condition['at']}")
    lines += notes + [""]

    # Plots
    plot_refs = []
    if ingest:
        series = []
        for name in ("ours", "peer", "axum"):
            runs = results["ingest"]["runs"][name]
            if runs:
                series.append((f"{name} @80%", percentile_series(pick(runs[0]["open"][80], "send", "acked", "latency_ms"))))
        (plots / "ingest-latency.svg").write_text(svg_chart("ingest ack latency at 80 % of max", series, "percentile", "ms", log_x=True))
        series = []
        for name in ("ours", "peer", "axum"):
            runs = results["ingest"]["runs"][name]
            if runs:
                timeline = pick(runs[0]["max"], "send", "acked", "timeline_per_second") or []
                series.append((name, [(i + 1, v) for i, v in enumerate(timeline)]))
        (plots / "ingest-throughput.svg").write_text(svg_chart("ingest closed loop: acked webhooks per second", series, "second", "webhooks/s"))
        plot_refs += ["ingest-latency.svg", "ingest-throughput.svg"]
    if results.get("e2e"):
        series = [(f"{e['rate']} msg/s", percentile_series(pick(e["result"], "delivered", "latency_ms"))) for e in results["e2e"]]
        (plots / "e2e-latency.svg").write_text(svg_chart("end to end: webhook → operator socket", series, "percentile", "ms", log_x=True))
        plot_refs.append("e2e-latency.svg")
    if results.get("fanout"):
        series = []
        for entry in results["fanout"]:
            for name in ("ours", "peer"):
                series.append((f"{name} {entry['sockets']}", percentile_series(pick(entry["runs"][name][0], "delivered", "latency_ms"))))
        (plots / "fanout-latency.svg").write_text(svg_chart("fan-out: stamp → socket latency", series, "percentile", "ms", log_x=True))
        series = []
        for entry in results["fanout"]:
            for name in ("ours", "peer"):
                timeline = pick(entry["runs"][name][0], "delivered", "timeline_per_second") or []
                series.append((f"{name} {entry['sockets']}", [(i + 1, v) for i, v in enumerate(timeline)]))
        (plots / "fanout-throughput.svg").write_text(svg_chart("fan-out: deliveries per second", series, "second", "deliveries/s"))
        plot_refs += ["fanout-latency.svg", "fanout-throughput.svg"]
    if drain:
        series = [(name, drain[name]["lag_samples"]) for name in ("logger", "gateway")]
        (plots / "drain-lag.svg").write_text(svg_chart("drain: consumer lag over time", series, "seconds", "records"))
        plot_refs.append("drain-lag.svg")
    lines += ["## Plots", ""] + [f"![{ref}](plots/{ref})" for ref in plot_refs] + [""]
    lines += ["## Commands", ""] + [f"- c{i + 1}: `{command}`" for i, command in enumerate(commands)] + [""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return rows


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--out", help="results folder (default load-tests/results/<timestamp>)")
    parser.add_argument("--only", help="comma-separated scenarios: bot,campaign,ingest,e2e,fanout,connections,drain")
    parser.add_argument("--build", choices=("release", "debug"), help="binaries to test (default per profile)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--source", metavar="REV",
                        help="build what is tested from this git revision (git archive into "
                             "~/.cache/caas/bench-src) rather than the working tree, e.g. while "
                             "others have uncommitted changes in it")
    parser.add_argument("--add-to", metavar="DIR",
                        help="run the --only scenarios and add their figures to an earlier run's results "
                             "folder (its results.json and report.md are rewritten)")
    parser.add_argument("--keep-stack-running", action="store_true",
                        help="do not pause the stack's own services while measuring (figures are then noisier)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every scenario produced figures")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    build = args.build or profile["build"]
    scenarios = (args.only or "bot,campaign,ingest,e2e,fanout,connections,drain").split(",")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.add_to or args.out or HERE / "results" / stamp)
    runs = out_dir / "runs"
    logs = out_dir / "logs"
    runs.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    STACK_ENV.update(load_env())

    cargo = ["cargo", "build", "--quiet", "-p", "caas-load", "-p", "caas-ingest", "-p", "caas-gateway", "-p", "caas-logger", "-p", "caasctl"]
    if build == "release":
        cargo.append("--release")
    build_dir = ROOT
    revision = subprocess.run(["git", "rev-parse", "--short", args.source or "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
    if args.source and not args.no_build:
        build_dir = CACHE / "bench-src"
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", args.source], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(build_dir)], input=archive, check=True)
    if not args.no_build:
        log(f"{' '.join(cargo)} (in {build_dir})")
        subprocess.run(cargo, cwd=build_dir, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)})
    install_peers()

    conditions = {"start": machine_conditions()}
    earlier = {}
    if args.add_to:
        earlier = json.loads((out_dir / "results.json").read_text())
        # JSON made the ingest runs' integer keys (50, 80 % of max) strings.
        for entries in (earlier.get("ingest") or {}).get("runs", {}).values():
            for entry in entries:
                entry["open"] = {int(share): run for share, run in entry["open"].items()}
        conditions = {**earlier.pop("conditions", {}), f"start of the added {args.only}": machine_conditions()}
    source = f"commit {revision}" if args.source else f"the working tree at {revision} (plus uncommitted changes)"
    notes = [
        f"- built from {source}.",
        f"- binaries: `{build}` builds of ingest ({PORT_INGEST}), two gateways ({PORTS_GATEWAY[0]}, {PORTS_GATEWAY[1]}, "
        "own consumer group and adapter prefix) and a logger (own consumer group, started at the end of the topics) "
        "started by the bench against the shared stack's Kafka, registry, SecantusDB and Redis; the logger and the "
        "gateways use a database of their own, dropped at the end. The logger and the gateways are stopped while "
        "the ingest scenario measures (they would store and fan out every webhook measured, on the same cores, "
        "while the peer's webhooks go to a topic nobody consumes) and start again after it in new consumer "
        "groups at the end of the topics.",
        "- the stack's own services (debug builds from `make up`: " + ", ".join(STACK_PAUSED) + ") are paused "
        "with SIGSTOP after the chatbot scenario (which needs them) and resumed with SIGCONT at the end, so they "
        "do not compete for the cores; the simulator, Kafka, the registry, SecantusDB and Redis keep running. "
        "After the bench they work off what it produced (`make reset` skips that).",
        f"- peers: Node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()} "
        f"`load-tests/peers/webhook.js` ({PORT_PEER_WEBHOOK}) and two `gateway.js` ({PORTS_PEER_GATEWAY[0]}, "
        f"{PORTS_PEER_GATEWAY[1]}); bare axum `caas-load serve-ok` ({PORT_CEILING}).",
        "- no CPU pinning: the machine has 2 cores, and Kafka, SecantusDB, the registry and the other workers "
        "share them; pinning the system under test to one core would halve it. The load generator's CPU "
        "seconds are in each run's JSON (`loadgen.cpu_seconds`).",
        f"- before each end-to-end and fan-out run the bench waits until its logger has stored what the "
        f"earlier scenarios produced (`target/{build}/caasctl lag --group load-logger-{stamp}-<generation> --json` "
        f"reads 0), so no run measures the previous one's backlog; the waits are in results.json "
        f"under `settled`.",
    ]
    processes = Processes(logs)
    results = dict(earlier)
    pause = StackPause()
    try:
        processes.start("ceiling", [binary("caas-load", build), "serve-ok", "--addr", f"127.0.0.1:{PORT_CEILING}"])
        start_peers(processes, stamp)
        start_ours(processes, build, stamp)
        time.sleep(3)  # consumer groups settle
        for scenario in scenarios:
            began = time.time()
            if scenario not in ("bot", "campaign") and not pause.paused and not args.keep_stack_running:
                pause.pause()
            try:
                if scenario == "ingest":
                    scenario_ingest(profile, build, runs, results, processes, stamp)
                elif scenario == "e2e":
                    scenario_e2e(profile, build, runs, results, stamp)
                elif scenario == "fanout":
                    scenario_fanout(profile, build, runs, results, stamp)
                elif scenario == "connections":
                    scenario_connections(profile, build, runs, results, processes, stamp)
                elif scenario == "drain":
                    scenario_drain(profile, build, runs, results, processes)
                elif scenario == "bot":
                    scenario_bot(profile, build, runs, results)
                elif scenario == "campaign":
                    scenario_campaign(profile, build, runs, results)
                results.get("failures", {}).pop(scenario, None)
            except Exception as error:  # one scenario failing must not lose the others' figures
                log(f"{scenario} failed: {error}")
                results.setdefault("failures", {})[scenario] = str(error)
            conditions[f"after {scenario} ({time.time() - began:.0f} s)"] = machine_conditions()
    finally:
        processes.stop_all()
        pause.resume()
        drop_database(bench_database(stamp))
    (out_dir / "results.json").write_text(json.dumps({**results, "conditions": conditions}, indent=1, default=str))
    rows = write_report(out_dir, args.profile, profile, results, conditions,
                        notes + [f"- failed: {k}: {v}" for k, v in results.get("failures", {}).items()])
    log(f"report: {out_dir / 'report.md'}")
    print((out_dir / "report.md").read_text())
    if args.check:
        missing = [s for s in scenarios if s not in results]
        if missing or results.get("failures") or not rows:
            log(f"no figures for: {missing or list(results.get('failures', {}))}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
