#!/usr/bin/env python3
"""CAAS chaos suite: faults injected into the three-broker stack of `make up-cluster` while a
steady load of signed webhooks and operator replies runs; every fault ends with an audit.

    tests/chaos/run.sh                        every scenario, writes tests/chaos/REPORT.md
    tests/chaos/run.sh --only kill-logger     one scenario (repeatable)

Load: signed WhatsApp webhooks at --rate per second, each from a new customer (so the demo bot
answers each exactly once with its menu), retried like Meta retries (any non-2xx or no answer:
again with backoff, same body); and operator replies over the gateway's socket.io
(`message.send` with an idempotency id), retried until acknowledged.

Audit after each fault, once the load stopped and the pipeline drained (waited for, bounded):
- in: webhooks ingest acknowledged (200); stored: of those, the ones in MongoDB `messages`;
  duplicates: inbound events stored more than once (MongoDB `events`) plus replies the provider
  simulator accepted more than once; lost: acknowledged but not stored, plus operator replies
  acknowledged but never sent. Duplicates and lost must be zero.
- sockets: conversations of the acknowledged webhooks seen in `conversation.updated` events on
  an operator socket of the tenant.
- readiness: each service's /ready sampled through the fault; services that depend on a stopped
  part must report not ready, and every service must be ready again without a restart.

The harness restarts only the part it broke. It never touches the shared stack of `make up`.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pymongo
import requests
import socketio
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "infra", "local", "cluster.sh")
PHONE_NUMBER_ID = "100000000000001"
TENANT = "demo"

SERVICES = {
    "simulator": "127.0.0.1:18090",
    "ingest": "127.0.0.1:18080",
    "gateway": "127.0.0.1:13000",
    "gateway-2": "127.0.0.1:13001",
    "logger": "127.0.0.1:19201",
    "presence": "127.0.0.1:19202",
    "chatbot": "127.0.0.1:19203",
    "campaign": "127.0.0.1:19204",
    "sender": "127.0.0.1:19205",
}

# Topics a CAAS service consumes (the poison scenario writes one bad record to each).
CONSUMED_TOPICS = [
    "inbound.messages.v1",
    "inbound.statuses.v1",
    "outbound.commands.v1",
    "outbound.results.v1",
    "conversation.events.v1",
    "presence.events.v1",
    "presence.updates.v1",
    "campaign.commands.v1",
    "campaign.events.v1",
]


def log(message):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
    print(f"[chaos {stamp}] {message}", flush=True)


def cluster(*arguments, timeout=240, check=True):
    completed = subprocess.run(
        [CLUSTER, *arguments], capture_output=True, text=True, timeout=timeout
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"cluster.sh {' '.join(arguments)} failed: {completed.stderr.strip()[-800:]}"
        )
    return completed.stdout.strip()


def cluster_env():
    values = {}
    for line in cluster("env").splitlines():
        name, _, value = line.partition("=")
        values[name] = value.strip("'")
    return values


def wait_for(condition, timeout, interval=0.5, what="condition"):
    """Poll `condition` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


# ------------------------------------------------------------------------------------- load ---


class Background:
    """A loop on a thread of its own (`_run`), stopped through `stop_event`."""

    def __init__(self):
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join()

    def _run(self):
        raise NotImplementedError


class WebhookLoad:
    """Signed WhatsApp webhooks, one new customer each, retried like Meta until answered 200."""

    def __init__(self, secret, run_id, scenario, rate):
        self.secret = secret.encode()
        self.prefix = f"{run_id}-{scenario}"
        self.rate = rate
        self.lock = threading.Lock()
        self.acknowledged = {}  # wamid -> customer number
        self.attempts = 0
        self.refused = 0  # answers other than 200 (each retried)
        self.given_up = []
        self.stop_event = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=24)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.session = requests.Session()
        # A distinct, valid-looking number per customer: 49 + 13 digits from the run and counter.
        self.number_base = int(hashlib.sha256(self.prefix.encode()).hexdigest(), 16) % 10**9

    def start(self):
        self.started = time.monotonic()
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        self.duration = time.monotonic() - self.started

    def _run(self):
        sequence = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            sequence += 1
            self.pool.submit(self._deliver, sequence)
            next_at += 1.0 / self.rate
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)

    def _deliver(self, sequence):
        customer = f"49{self.number_base:09d}{sequence:04d}"
        wamid = f"wamid.chaos.{self.prefix}.{sequence}"
        now = int(time.time())
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "WABA-CHAOS",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550000001",
                                        "phone_number_id": PHONE_NUMBER_ID,
                                    },
                                    "contacts": [
                                        {"profile": {"name": "Chaos"}, "wa_id": customer}
                                    ],
                                    "messages": [
                                        {
                                            "from": customer,
                                            "id": wamid,
                                            "timestamp": str(now),
                                            "type": "text",
                                            "text": {"body": "hi"},
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
        }
        backoff = 0.25
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.lock:
                self.attempts += 1
            try:
                answer = self.session.post(
                    f"http://{SERVICES['ingest']}/webhooks/whatsapp",
                    data=body,
                    headers=headers,
                    timeout=10,
                )
                if answer.status_code == 200:
                    with self.lock:
                        self.acknowledged[wamid] = customer
                    return
            except requests.RequestException:
                pass
            with self.lock:
                self.refused += 1
            time.sleep(backoff)
            backoff = min(backoff * 2, 4)
        with self.lock:
            self.given_up.append(wamid)


class Operator:
    """One operator of the tenant on the gateway's socket.io: replies to conversations and
    watches `conversation.updated` on the tenant room."""

    def __init__(self, token, address):
        self.client = socketio.Client(reconnection=True, reconnection_delay=0.5)
        self.address = address
        self.token = token
        self.lock = threading.Lock()
        self.updated_keys = set()
        self.client.on("conversation.updated", self._on_updated)

    def connect(self):
        self.client.connect(
            f"http://{self.address}",
            auth={"token": self.token},
            transports=["websocket"],
            wait_timeout=10,
        )

    def _on_updated(self, payload):
        key = (payload or {}).get("conversation_key") or (payload or {}).get("key")
        if key:
            with self.lock:
                self.updated_keys.add(key)

    def seen(self, keys):
        with self.lock:
            return len(self.updated_keys & set(keys))

    def reply(self, conversation_key, text, idempotency_id, deadline_seconds=60):
        """Send until acknowledged; the idempotency id makes a retry the same command."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            try:
                answer = self.client.call(
                    "message.send",
                    {
                        "conversation_key": conversation_key,
                        "text": text,
                        "idempotency_id": idempotency_id,
                    },
                    timeout=10,
                )
                if isinstance(answer, dict) and answer.get("ok"):
                    return answer.get("id")
            except Exception:  # noqa: BLE001 - disconnected or timed out: retry
                pass
            time.sleep(0.5)
        return None

    def close(self):
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001
            pass


class OperatorLoad(Background):
    """Operator replies at about one per second to customers whose webhook was acknowledged."""

    def __init__(self, operator, webhooks, prefix):
        super().__init__()
        self.operator = operator
        self.webhooks = webhooks
        self.prefix = prefix
        self.acknowledged = {}  # text -> (customer, command id)
        self.unacknowledged = []

    def _run(self):
        number = 0
        while not self.stop_event.wait(1.0):
            with self.webhooks.lock:
                customers = list(self.webhooks.acknowledged.values())
            if len(customers) < 3:
                continue
            number += 1
            # A conversation some seconds old, so the customer's message opened its window.
            customer = customers[len(customers) // 2]
            text = f"operator reply {self.prefix} #{number}"
            command_id = self.operator.reply(
                f"{TENANT}:whatsapp:{customer}", text, f"{self.prefix}-op-{number}"
            )
            if command_id:
                self.acknowledged[text] = (customer, command_id)
            else:
                self.unacknowledged.append(text)


class ReadinessWatch(Background):
    """Samples every service's /ready while a fault runs."""

    def __init__(self):
        super().__init__()
        self.samples = {name: [] for name in SERVICES}

    def _run(self):
        while not self.stop_event.is_set():
            for name, address in SERVICES.items():
                try:
                    # Each dependency check takes at most 1.5 s, so 3 s tells slow from dead.
                    ready = requests.get(f"http://{address}/ready", timeout=3).status_code == 200
                except requests.RequestException:
                    ready = None  # not answering at all (killed)
                self.samples[name].append(ready)
            self.stop_event.wait(0.5)

    def not_ready(self):
        """Services that answered /ready with not-ready at least once (alive but not ready)."""
        return sorted(name for name, values in self.samples.items() if False in values)


def all_ready():
    for address in SERVICES.values():
        try:
            if requests.get(f"http://{address}/ready", timeout=2).status_code != 200:
                return False
        except requests.RequestException:
            return False
    return True


# ------------------------------------------------------------------------------------- audit ---


class Auditor:
    def __init__(self, env):
        self.mongo = pymongo.MongoClient(env["CAAS_MONGODB_URI"], serverSelectionTimeoutMS=5000)
        self.db = self.mongo[env.get("CAAS_MONGODB_DATABASE", "caas")]

    def stored_inbound(self, wamids):
        ids = [f"in:whatsapp:{wamid}" for wamid in wamids]
        found = set()
        for start in range(0, len(ids), 500):
            for document in self.db.messages.find({"_id": {"$in": ids[start : start + 500]}}, {"_id": 1}):
                found.add(document["_id"][len("in:whatsapp:") :])
        return found

    def inbound_event_duplicates(self, wamids):
        counts = {}
        wanted = list(wamids)
        for start in range(0, len(wanted), 500):
            cursor = self.db.events.find(
                {
                    "type": "inbound_message",
                    "payload.provider_message_id": {"$in": wanted[start : start + 500]},
                },
                {"payload.provider_message_id": 1},
            )
            for document in cursor:
                wamid = document["payload"]["provider_message_id"]
                counts[wamid] = counts.get(wamid, 0) + 1
        return sum(count - 1 for count in counts.values() if count > 1), len(counts)

    def outbound_stored(self, command_ids):
        ids = [f"out:{TENANT}:{command_id}" for command_id in command_ids]
        return self.db.messages.count_documents({"_id": {"$in": ids}}) if ids else 0


def simulator_sends(customers):
    """What the provider simulator accepted for these customers: {customer: [text or kind]}."""
    answer = requests.get(
        f"http://{SERVICES['simulator']}/_sim/requests",
        params={"api": "whatsapp", "outcome": "accepted"},
        timeout=30,
    )
    answer.raise_for_status()
    wanted = set(customers)
    sends = {}
    for request in answer.json()["requests"]:
        if request.get("to") not in wanted:
            continue
        body = request.get("body") or {}
        if body.get("type") == "text":
            kind = (body.get("text") or {}).get("body", "")
        else:
            kind = f"<{body.get('type')}>"
        sends.setdefault(request["to"], []).append(kind)
    return sends


# ------------------------------------------------------------------------------------- faults ---


def broker_fault(node_picker, signal_name):
    def inject(context):
        node = node_picker()
        context["part"] = node
        cluster("kill" if signal_name == "KILL" else "stop", node)
        return node

    def recover(context):
        cluster("start", context["part"])
        cluster("wait", context["part"], "120")

    return inject, recover


def process_fault(part, how):
    def inject(context):
        context["part"] = part
        cluster("kill" if how == "KILL" else "stop", part)
        return part

    def recover(context):
        cluster("start", part)
        cluster("wait", part, "120")

    return inject, recover


def second_broker():
    leader = cluster("controller")
    return "kafka-2" if leader != "kafka-2" else "kafka-3"


SCENARIOS = [
    ("baseline", "no fault (the load alone)", None, None, 0),
    ("stop-broker", "SIGTERM one broker (not the quorum leader), start it again", *broker_fault(second_broker, "TERM"), 15),
    ("kill-controller", "SIGKILL the KRaft quorum leader (the active controller), start it again", *broker_fault(lambda: cluster("controller"), "KILL"), 15),
    ("kill-logger", "SIGKILL logger, restart it", *process_fault("logger", "KILL"), 5),
    ("kill-presence", "SIGKILL presence, restart it", *process_fault("presence", "KILL"), 5),
    ("kill-chatbot", "SIGKILL chatbot, restart it", *process_fault("chatbot", "KILL"), 5),
    ("kill-campaign", "SIGKILL campaign, restart it", *process_fault("campaign", "KILL"), 5),
    ("kill-sender", "SIGKILL sender, restart it", *process_fault("sender", "KILL"), 5),
    ("kill-gateway", "SIGKILL the second gateway instance, restart it", *process_fault("gateway-2", "KILL"), 5),
    ("stop-redis", "stop Redis (SIGTERM), start it again", *process_fault("redis", "TERM"), 10),
    ("stop-mongodb", "stop the MongoDB-wire server (SIGTERM), start it again", *process_fault("mongodb", "TERM"), 10),
    ("poison", "one undecodable record on every consumed topic", None, None, 0),
]

# Which services must say "not ready" while a dependency is down.
MUST_GO_NOT_READY = {
    "stop-redis": {"ingest", "chatbot"},
    "stop-mongodb": {"logger"},
}


def inject_poison(env, run_id):
    producer = Producer({"bootstrap.servers": env["CAAS_KAFKA_BOOTSTRAP"], "acks": "all"})
    keys = {}
    for topic in CONSUMED_TOPICS:
        key = f"{TENANT}:whatsapp:poison-{run_id}-{topic}"
        producer.produce(topic, key=key.encode(), value=b"\x00\x00\x00\x00\x07not avro at all")
        keys[topic] = key
    if producer.flush(30) != 0:
        raise RuntimeError("poison records were not acknowledged by Kafka")
    return keys


def dead_lettered(env, keys, timeout=90):
    """Wait until every poison key is in its topic's DLQ; returns {topic: [consumer groups]}."""
    consumer = Consumer(
        {
            "bootstrap.servers": env["CAAS_KAFKA_BOOTSTRAP"],
            "group.id": f"chaos-dlq-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(timeout=10)
    assignment = []
    for topic in keys:
        dlq = f"{topic}.dlq"
        for partition in metadata.topics[dlq].partitions:
            assignment.append(TopicPartition(dlq, partition, 0))
    consumer.assign(assignment)
    found = {topic: set() for topic in keys}
    wanted = {key.encode(): topic for topic, key in keys.items()}
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            # Every topic has its poison in the DLQ: read on until 5 quiet seconds, so the
            # other consumer groups' dead letters of the same record are listed too.
            if all(found.values()):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 5:
                    break
            continue
        quiet_since = None
        topic = wanted.get(message.key())
        if topic:
            headers = dict(message.headers() or [])
            group = headers.get("caas.consumer.group", b"?").decode(errors="replace")
            found[topic].add(group)
    consumer.close()
    return {topic: sorted(groups) for topic, groups in found.items()}


def run_scenario(env, auditor, token, run_id, rate, scenario):
    name, description, inject, recover, hold = scenario
    log(f"scenario {name}: {description}")
    wait_for(all_ready, 180, what="every service ready before the fault")
    prefix = f"{run_id}-{name}"
    webhooks = WebhookLoad(env["CAAS_WHATSAPP_APP_SECRET"], run_id, name, rate)
    operator = Operator(token, SERVICES["gateway"])
    operator.connect()
    operators = OperatorLoad(operator, webhooks, prefix)
    readiness = ReadinessWatch()
    result = {"name": name, "description": description, "notes": []}
    readiness.start()
    webhooks.start()
    operators.start()
    time.sleep(5)  # load before the fault
    context = {}
    fault_started = time.monotonic()
    poison_keys = None
    if inject:
        part = inject(context)
        result["notes"].append(f"fault on {part}")
        time.sleep(hold)  # the fault lasts this long under load
        recover(context)
        result["recovered_after_s"] = round(time.monotonic() - fault_started, 1)
    if name == "poison":
        poison_keys = inject_poison(env, run_id)
    wait_for(all_ready, 180, what="every service ready again after the fault")
    result["all_ready_after_s"] = round(time.monotonic() - fault_started, 1)
    time.sleep(8)  # load after the recovery
    operators.stop()
    webhooks.stop()
    readiness.stop()
    result["load"] = {
        "duration_s": round(webhooks.duration, 1),
        "rate_per_s": rate,
        "webhook_attempts": webhooks.attempts,
        "webhook_refusals_retried": webhooks.refused,
        "operator_replies": len(operators.acknowledged),
    }
    acknowledged = dict(webhooks.acknowledged)
    wamids = list(acknowledged)
    customers = set(acknowledged.values())
    # Drain: every acknowledged webhook stored, every bot reply and operator reply sent.
    try:
        wait_for(lambda: len(auditor.stored_inbound(wamids)) == len(wamids), 180, 1.0, "all stored")
    except TimeoutError as error:
        result["notes"].append(str(error))
    expected_sends = len(customers) + len(operators.acknowledged)

    def sends_settled():
        sends = simulator_sends(customers)
        return sum(len(values) for values in sends.values()) >= expected_sends

    try:
        wait_for(sends_settled, 120, 1.0, "all replies at the simulator")
    except TimeoutError as error:
        result["notes"].append(str(error))
    conversation_keys = {f"{TENANT}:whatsapp:{customer}" for customer in customers}
    try:
        wait_for(lambda: operator.seen(conversation_keys) == len(conversation_keys), 90, 1.0, "every conversation on the socket")
    except TimeoutError as error:
        result["notes"].append(str(error))
    stored = auditor.stored_inbound(wamids)
    event_duplicates, _ = auditor.inbound_event_duplicates(wamids)
    sends = simulator_sends(customers)
    bot_sends = {customer: [kind for kind in values if not kind.startswith("operator reply")] for customer, values in sends.items()}
    operator_texts = {}
    for values in sends.values():
        for kind in values:
            if kind.startswith("operator reply"):
                operator_texts[kind] = operator_texts.get(kind, 0) + 1
    bot_duplicates = sum(max(0, len(values) - 1) for values in bot_sends.values())
    bot_missing = sum(1 for customer in customers if not bot_sends.get(customer))
    operator_duplicates = sum(max(0, count - 1) for count in operator_texts.values())
    operator_lost = sum(1 for text in operators.acknowledged if text not in operator_texts)
    operator_stored = auditor.outbound_stored([command for _, command in operators.acknowledged.values()])
    socket_seen = operator.seen(conversation_keys)
    operator.close()
    result["audit"] = {
        "in": len(wamids),
        "stored": len(stored),
        "duplicates": event_duplicates + bot_duplicates + operator_duplicates,
        "lost": len(set(wamids) - stored) + operator_lost,
        "given_up_webhooks": len(webhooks.given_up),
        "stored_event_duplicates": event_duplicates,
        "bot_replies_sent": sum(1 for customer in customers if bot_sends.get(customer)),
        "bot_reply_duplicates": bot_duplicates,
        "bot_replies_missing": bot_missing,
        "operator_replies_in": len(operators.acknowledged),
        "operator_replies_sent": len([t for t in operators.acknowledged if t in operator_texts]),
        "operator_replies_stored": operator_stored,
        "operator_reply_duplicates": operator_duplicates,
        "socket_conversations_seen": socket_seen,
    }
    result["not_ready_during_fault"] = readiness.not_ready()
    failures = []
    audit = result["audit"]
    if audit["duplicates"]:
        failures.append(f"{audit['duplicates']} duplicate(s)")
    if audit["lost"]:
        failures.append(f"{audit['lost']} lost")
    if audit["in"] == 0:
        failures.append("no webhook was acknowledged at all")
    expected_not_ready = MUST_GO_NOT_READY.get(name, set())
    missing_not_ready = expected_not_ready - set(result["not_ready_during_fault"])
    if missing_not_ready:
        failures.append(f"did not report not ready while the dependency was down: {sorted(missing_not_ready)}")
    if poison_keys:
        dlq = dead_lettered(env, poison_keys)
        result["dlq"] = dlq
        not_dead_lettered = [topic for topic, groups in dlq.items() if not groups]
        if not_dead_lettered:
            failures.append(f"poison not in the DLQ of {not_dead_lettered}")
    result["failures"] = failures
    result["passed"] = not failures
    log(f"scenario {name}: {'PASS' if not failures else 'FAIL ' + '; '.join(failures)} {json.dumps(audit)}")
    return result


def audit_cells(*fields):
    """A report cell of audit counts joined by ' / ' ('-' where the scenario did not get there)."""
    return lambda result: " / ".join(str(result.get("audit", {}).get(field, "-")) for field in fields)


REPORT_COLUMNS = [
    ("fault", lambda result: f"{result['name']}: {result['description']}"),
    ("result", lambda result: "pass" if result.get("passed") else "**FAIL**"),
    ("load (s)", lambda result: result.get("load", {}).get("duration_s", "-")),
    ("webhook tries / refused", lambda result: f"{result.get('load', {}).get('webhook_attempts', '-')} / {result.get('load', {}).get('webhook_refusals_retried', '-')}"),
    ("in", audit_cells("in")),
    ("stored", audit_cells("stored")),
    ("duplicates", audit_cells("duplicates")),
    ("lost", audit_cells("lost")),
    ("bot replies sent / missing", audit_cells("bot_replies_sent", "bot_replies_missing")),
    ("operator replies in / sent / stored", audit_cells("operator_replies_in", "operator_replies_sent", "operator_replies_stored")),
    ("seen on sockets", audit_cells("socket_conversations_seen")),
    ("not ready during fault", lambda result: ", ".join(result.get("not_ready_during_fault", [])) or "-"),
    ("ready again after (s)", lambda result: result.get("all_ready_after_s", "-")),
]


def write_report(path, results, started, run_id, rate):
    lines = [
        "# Chaos report",
        "",
        f"Run `{run_id}`, started {started} UTC, by `make chaos` (`tests/chaos/run.sh`) against",
        "`make up-cluster`: three Kafka KRaft nodes (replication factor 3, `min.insync.replicas=2`),",
        "Apicurio, SecantusDB, Redis (AOF) and one instance of each service (two gateways), all on",
        "127.0.0.1 beside the shared stack.",
        "",
        f"Load in every scenario: signed WhatsApp webhooks at {rate}/s, each from a new customer",
        "(retried like Meta on any non-200), and an operator reply over socket.io about once a",
        "second (retried with the same idempotency id until acknowledged). The fault starts after",
        "5 s of load, and the load runs on for 8 s after every service is ready again.",
        "",
        "**in**: webhooks acknowledged (200). **stored**: of those, in MongoDB `messages`.",
        "**duplicates**: inbound events stored twice + bot or operator replies the provider",
        "simulator accepted twice. **lost**: acknowledged but not stored + operator replies",
        "acknowledged but never sent.",
        "",
        "| " + " | ".join(header for header, _ in REPORT_COLUMNS) + " |",
        "|" + "---|" * len(REPORT_COLUMNS),
    ]
    for result in results:
        lines.append("| " + " | ".join(str(cell(result)) for _, cell in REPORT_COLUMNS) + " |")
    lines.append("")
    for result in results:
        extra = []
        if result.get("dlq"):
            extra.append(
                "dead-lettered: "
                + "; ".join(f"`{topic}.dlq` by {', '.join(groups) or 'nobody'}" for topic, groups in result["dlq"].items())
            )
        extra += result.get("notes", [])
        extra += [f"failure: {failure}" for failure in result.get("failures", [])]
        if extra:
            lines.append(f"- **{result['name']}**: " + " · ".join(extra))
    passed = sum(1 for result in results if result.get("passed"))
    lines += ["", f"**{passed} of {len(results)} scenarios passed.**", ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="run only this scenario (repeatable)")
    parser.add_argument("--rate", type=float, default=8.0, help="webhooks per second")
    parser.add_argument("--report", default=os.path.join(ROOT, "tests", "chaos", "REPORT.md"))
    arguments = parser.parse_args()
    env = cluster_env()
    token = cluster("ctl", "token", "--tenant", TENANT, "--sub", "op-chaos", "--role", "admin")
    auditor = Auditor(env)
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    scenarios = [s for s in SCENARIOS if not arguments.only or s[0] in arguments.only]
    unknown = set(arguments.only) - {s[0] for s in SCENARIOS}
    if unknown:
        sys.exit(f"unknown scenario(s) {sorted(unknown)}; known: {[s[0] for s in SCENARIOS]}")
    results = []
    for scenario in scenarios:
        try:
            results.append(run_scenario(env, auditor, token, run_id, arguments.rate, scenario))
        except Exception as error:  # noqa: BLE001 - report it, go on with the next fault
            log(f"scenario {scenario[0]}: ERROR {error}")
            results.append({"name": scenario[0], "description": scenario[1], "passed": False, "failures": [f"error: {error}"]})
            # Put the broken part back before the next scenario.
            # (`start` leaves a running part alone.)
            for part in ("kafka-1", "kafka-2", "kafka-3", "redis", "mongodb", *SERVICES):
                cluster("start", part, check=False)
        write_report(arguments.report, results, started, run_id, arguments.rate)
    failed = [result["name"] for result in results if not result.get("passed")]
    log(f"report: {arguments.report}")
    if failed:
        log(f"FAILED: {failed}")
        sys.exit(1)
    log(f"all {len(results)} scenarios passed")


if __name__ == "__main__":
    main()
