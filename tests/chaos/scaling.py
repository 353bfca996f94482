#!/usr/bin/env python3
"""Consumer-group scaling test against `make up-cluster`: under a steady webhook load, the
logger group goes from one instance to three and back to one, and the gateway group from two
to three and back to two. Prints (and writes to tests/chaos/SCALING.md) who owns how many
partitions at each step, as `caasctl lag --json` reports it, the rebalance lines of the
instances' logs (cooperative-sticky: only moving partitions are revoked), each instance's
share of the work, and the audit: every acknowledged webhook stored exactly once and seen on an
operator socket.
"""

import datetime
import json
import os
import re
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import (  # noqa: E402
    ROOT,
    TENANT,
    Auditor,
    Operator,
    WebhookLoad,
    all_ready,
    cluster,
    cluster_env,
    log,
    wait_for,
)

LOGGER_OPS = {"logger": "127.0.0.1:19201", "logger-2": "127.0.0.1:19211", "logger-3": "127.0.0.1:19221"}
GATEWAYS = {"gateway": "127.0.0.1:13000", "gateway-2": "127.0.0.1:13001", "gateway-3": "127.0.0.1:13020"}
STATE = os.environ.get("CAAS_CLUSTER_STATE_DIR", os.path.expanduser("~/.cache/caas/cluster"))


def group_view(group):
    """{member id: partition count} and the total lag of a group, from `caasctl lag --json`."""
    groups = json.loads(cluster("ctl", "lag", "--group", group, "--json"))
    view = groups[0]
    owners = {member["member_id"]: member["partitions"] for member in view["members"]}
    return owners, view["total_lag"], view["usable_instances"], view["partitions"]


def owners_line(owners):
    return ", ".join(f"{member[-12:]}: {count}" for member, count in sorted(owners.items()))


def wait_members(group, count, lines, timeout=300):
    """Wait until `count` members own every partition of the group between them, each some."""

    def settled():
        owners, _, _, partitions = group_view(group)
        spread = len(owners) == count and all(value > 0 for value in owners.values())
        if spread and sum(owners.values()) == len(partitions):
            return owners
        return None

    started = time.monotonic()
    owners = wait_for(settled, timeout, 1.0, f"{group} with {count} member(s) owning partitions")
    _, lag, usable, _ = group_view(group)
    lines.append(f"- `{group}`: {count} member(s) own [{owners_line(owners)}] partitions (settled in {time.monotonic() - started:.0f} s); total lag {lag}; usable instances {usable}")
    log(lines[-1])
    return owners


def processed(address):
    """caas_kafka_records_processed_total summed over labels, from an instance's /metrics."""
    try:
        text = requests.get(f"http://{address}/metrics", timeout=3).text
    except requests.RequestException:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("caas_kafka_records_processed_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def new_log_lines(name, since_bytes):
    """The lines an instance logged after `since_bytes` of its log (all of it when the log was
    started afresh since: cluster.sh truncates an instance's log when it starts it)."""
    path = os.path.join(STATE, "logs", f"{name}.log")
    try:
        with open(path, "rb") as handle:
            since = since_bytes.get(name, 0)
            handle.seek(since if os.path.getsize(path) >= since else 0)
            return handle.readlines()
    except FileNotFoundError:
        return []


def rebalance_lines(name, since_bytes):
    """The rebalance log lines of an instance, written after `since_bytes` of its log."""
    lines = []
    for raw in new_log_lines(name, since_bytes):
        if b"partitions assigned" not in raw and b"partitions revoked" not in raw:
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        fields = record.get("fields", record)
        message = fields.get("message", "")
        partitions = str(fields.get("partitions", ""))
        count = len(re.findall(r"\[\d+\]", partitions))
        group = fields.get("group", "?")
        lines.append(f"{name} {group}: {message.split(';')[0]} ({count} partitions): {partitions[:160]}")
    return lines


def retried_batches(names, since_bytes):
    """Batches an instance had to retry (e.g. MongoDB write conflicts between loggers)."""
    counts = {name: sum(1 for raw in new_log_lines(name, since_bytes) if b"retryable batch error" in raw) for name in names}
    return {name: count for name, count in counts.items() if count}


def log_sizes(names):
    sizes = {}
    for name in names:
        try:
            sizes[name] = os.path.getsize(os.path.join(STATE, "logs", f"{name}.log"))
        except FileNotFoundError:
            sizes[name] = 0
    return sizes


def scale(group, base_members, extra, addresses, lines, load_seconds=8):
    """Start the `extra` instances, wait until the group spread, stop them, wait until it shrank."""
    lines.append(f"\n### {group}\n")
    wait_members(group, base_members, lines)
    try:
        for name in extra:
            cluster("start", name)
        for name in extra:
            cluster("wait", name, "120")
        wait_members(group, base_members + len(extra), lines)
        before = {name: processed(address) for name, address in addresses.items()}
        time.sleep(load_seconds)  # the grown group works under load for a while
        after = {name: processed(address) for name, address in addresses.items()}
    finally:
        for name in extra:
            cluster("stop", name, check=False)
    shares = {
        name: (after[name] or 0) - (before[name] or 0)
        for name in addresses
        if before.get(name) is not None and after.get(name) is not None
    }
    lines.append(f"- records processed per instance in {load_seconds} s with {base_members + len(extra)} members: " + ", ".join(f"{name} {int(value)}" for name, value in shares.items()))
    log(lines[-1])
    wait_members(group, base_members, lines)
    return shares


def main():
    env = cluster_env()
    # Extra instances left by an interrupted run would make the starting group larger.
    for name in ("logger-2", "logger-3", "gateway-3"):
        cluster("stop", name, check=False)
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    wait_for(all_ready, 180, what="every service ready")
    auditor = Auditor(env)
    token = cluster("ctl", "token", "--tenant", TENANT, "--sub", "op-scaling", "--role", "admin")
    operator = Operator(token, GATEWAYS["gateway"])
    operator.connect()
    names = list(LOGGER_OPS) + list(GATEWAYS)
    sizes = log_sizes(names)
    lines = [
        "# Consumer-group scaling",
        "",
        f"Run `{run_id}` by `tests/chaos/run.sh scaling` against `make up-cluster`, under signed",
        "webhooks at 8/s from new customers. Partition counts per member as `caasctl lag --json`",
        "reports them, each step once the group settled (its members own all its partitions).",
    ]
    overrides_path = os.path.join(STATE, "overrides.env")
    if os.path.exists(overrides_path):
        overrides = ", ".join(line.strip() for line in open(overrides_path) if line.strip() and not line.startswith("#"))
        lines.append(f"Stack overrides (`{overrides_path}`): `{overrides}`.")
    webhooks = WebhookLoad(env["CAAS_WHATSAPP_APP_SECRET"], run_id, "scaling", 8.0)
    webhooks.start()
    failures = []
    try:
        logger_shares = scale("caas-logger", 1, ["logger-2", "logger-3"], LOGGER_OPS, lines)
        if sum(1 for value in logger_shares.values() if value > 0) < 2:
            failures.append(f"the logger work did not spread: {logger_shares}")
        gateway_shares = scale("caas-gateway", 2, ["gateway-3"], {name: address for name, address in GATEWAYS.items()}, lines)
        if sum(1 for value in gateway_shares.values() if value > 0) < 2:
            failures.append(f"the gateway work did not spread: {gateway_shares}")
    finally:
        webhooks.stop()
    acknowledged = dict(webhooks.acknowledged)
    wamids = list(acknowledged)
    keys = {f"{TENANT}:whatsapp:{customer}" for customer in acknowledged.values()}
    try:
        wait_for(lambda: len(auditor.stored_inbound(wamids)) == len(wamids), 180, 1.0, "all stored")
        wait_for(lambda: operator.seen(keys) == len(keys), 60, 1.0, "all seen on the socket")
    except TimeoutError as error:
        failures.append(str(error))
    stored = auditor.stored_inbound(wamids)
    duplicates, _ = auditor.inbound_event_duplicates(wamids)
    seen = operator.seen(keys)
    operator.close()
    lost = len(set(wamids) - stored)
    if duplicates:
        failures.append(f"{duplicates} stored twice")
    if lost:
        failures.append(f"{lost} lost")
    lines += [
        "",
        "### Rebalances in the instances' logs (cooperative: only the moving partitions are revoked)",
        "",
        "```",
        *[line for name in names for line in rebalance_lines(name, sizes)],
        "```",
        "",
        "### Audit",
        "",
        f"- batches retried during the run (MongoDB write conflicts while two loggers write the same conversation): {retried_batches(names, sizes) or 'none'}",
        f"- webhooks acknowledged (in): {len(wamids)}; stored: {len(stored)}; stored twice: {duplicates}; lost: {lost}",
        f"- conversations seen on an operator socket (gateway :13000): {seen} of {len(keys)}",
        "",
        f"**{'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}**",
        "",
    ]
    report = os.path.join(ROOT, "tests", "chaos", "SCALING.md")
    with open(report, "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
