#!/usr/bin/env python3
"""Security checks against a running CAAS stack (default: the one `make up` started; set
CAAS_SECURITY_STACK=cluster for `make up-cluster`'s). Fast (well under a minute) and harmless
to a shared stack: apart from one signed webhook of a fresh demo customer (the positive control
of the isolation check), every request is one the stack must refuse.

- secrets: no configured secret, and no operator JWT, appears in any log of the stack;
- JWT on REST and socket.io: missing, `alg: none`, wrong secret, expired, forged tenant claim,
  unknown role are refused; a valid token is accepted;
- tenant isolation: another tenant's operator cannot read a demo conversation over REST, cannot
  join its room, send to it or act on it over socket.io, and receives none of its events while
  a demo operator does;
- request size: a REST or socket body far above the limits is refused, the gateway stays up.

Prints one line per check and exits non-zero when one fails. `--quick` (what `make test` runs
on the shared stack) leaves out the tenant isolation checks, which send a webhook.
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time

import requests
import socketio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("CAAS_CACHE_DIR", os.path.expanduser("~/.cache/caas"))
CLUSTER = os.environ.get("CAAS_SECURITY_STACK") == "cluster"
GATEWAY = "http://127.0.0.1:13000" if CLUSTER else "http://127.0.0.1:3000"
GATEWAY_2 = "http://127.0.0.1:13001" if CLUSTER else "http://127.0.0.1:3001"
INGEST = "http://127.0.0.1:18080" if CLUSTER else "http://127.0.0.1:8080"
# Both stacks' logs are searched, whichever stack is tested (a full run of each leaves them).
LOG_DIRS = [os.path.join(CACHE, "state", "logs"), os.path.join(CACHE, "cluster", "logs")]

# Variables whose values are secrets (CAAS_* or the compose-only credentials).
SECRET_VARIABLES = [
    "CAAS_WHATSAPP_APP_SECRET",
    "CAAS_WHATSAPP_VERIFY_TOKEN",
    "CAAS_RBM_CLIENT_TOKEN",
    "CAAS_JWT_SECRET",
    "CAAS_SENDER_RBM_TOKEN",
    "CAAS_MONGO_APP_PASSWORD",
    "MONGO_INITDB_ROOT_PASSWORD",
    "REDIS_PASSWORD",
    "CAAS_KAFKA_SASL_PASSWORD",
    "KAFKA_CLIENT_PASSWORD",
    "KAFKA_BROKER_PASSWORD",
]

results = []


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{'' if condition else ': ' + detail}", flush=True)


def configuration():
    """The configuration the stack runs with: .env.example, then .env (as `make up` reads them)."""
    values = {}
    for path in (os.path.join(ROOT, ".env.example"), os.path.join(ROOT, ".env")):
        if not os.path.exists(path):
            continue
        for line in open(path):
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                name, _, value = line.partition("=")
                values[name.strip()] = value.strip().strip("'\"")
    return values


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    if alg == "none":
        return f"{header}.{payload}."
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def claims(tenant, sub="op-sec", role="operator", lifetime=600):
    return {"sub": sub, "tenant": tenant, "role": role, "exp": int(time.time()) + lifetime}


def forged_tenant(token, tenant):
    """The token with its payload's tenant changed and the original signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["tenant"] = tenant
    return f"{header}.{b64url(json.dumps(body).encode())}.{signature}"


def socket_connect(token, address=GATEWAY):
    """(client, error): a connected socket.io client, or the refusal's message."""
    client = socketio.Client(reconnection=False)
    try:
        client.connect(address, auth={"token": token} if token else None, transports=["websocket"], wait_timeout=5)
        return client, None
    except socketio.exceptions.ConnectionError as error:
        return None, str(error)


def check_secrets_not_in_logs(config):
    logs = sorted(path for directory in LOG_DIRS for path in glob.glob(os.path.join(directory, "*.log")))
    check("logs exist to search", logs, f"no logs under {LOG_DIRS}")
    secrets = {name: config[name] for name in SECRET_VARIABLES if config.get(name)}
    for value in config.get("CAAS_SENDER_WHATSAPP_TOKENS", "").split(";"):
        if "=" in value:
            secrets["CAAS_SENDER_WHATSAPP_TOKENS"] = value.split("=", 1)[1]
    leaks = []
    for path in logs:
        with open(path, "rb") as handle:
            content = handle.read()
        for name, value in secrets.items():
            if len(value) >= 6 and value.encode() in content:
                leaks.append(f"{name} in {path}")
        # An operator JWT (header {"alg":"HS256",...} base64url) in a log is a leaked credential.
        if b"eyJhbGciOiJIUzI1NiIs" in content:
            leaks.append(f"a JWT in {path}")
    check(f"no secret ({len(secrets)} configured) and no JWT in {len(logs)} logs", not leaks, "; ".join(leaks))


def check_jwt(secret):
    valid = jwt(claims("demo"), secret)
    cases = {
        "missing token": None,
        "alg none": jwt(claims("demo"), secret, alg="none"),
        "wrong secret": jwt(claims("demo"), secret + "-wrong"),
        "expired": jwt(claims("demo", lifetime=-120), secret),
        "forged tenant claim": forged_tenant(valid, "acme"),
        "unknown role": jwt(claims("demo", role="root"), secret),
        "garbage": "not.a.token",
    }
    for name, token in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = requests.get(f"{GATEWAY}/api/v1/me", headers=headers, timeout=10)
        check(f"REST refuses {name} (401)", answer.status_code == 401, f"answered {answer.status_code}")
        client, error = socket_connect(token)
        if client:
            client.disconnect()
        check(f"socket.io refuses {name} at connect", client is None and error, "connected")
    answer = requests.get(f"{GATEWAY}/api/v1/me", headers={"Authorization": f"Bearer {valid}"}, timeout=10)
    check("REST accepts a valid token", answer.status_code == 200 and '"demo"' in answer.text, f"answered {answer.status_code} {answer.text[:200]}")
    client, error = socket_connect(valid)
    check("socket.io accepts a valid token", client is not None, error or "")
    if client:
        client.disconnect()


def signed_webhook(app_secret, customer, wamid):
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA-SEC", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000001", "phone_number_id": "100000000000001"},
                "contacts": [{"profile": {"name": "Security"}, "wa_id": customer}],
                "messages": [{"from": customer, "id": wamid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": "hi"}}],
            }}]}],
        },
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(
        f"{INGEST}/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
        timeout=15,
    )


def check_tenant_isolation(secret, app_secret):
    demo_token = jwt(claims("demo", sub="op-sec-demo"), secret)
    other_token = jwt(claims("sec-other", sub="op-sec-other", role="admin"), secret)
    customer = f"49{int(time.time() * 1000) % 10**12:012d}"
    key = f"demo:whatsapp:{customer}"
    demo_seen, other_seen = [], []
    lock = threading.Lock()

    def recorder(store):
        def on_any(event, payload=None):
            with lock:
                store.append((event, json.dumps(payload, default=str)))
        return on_any

    demo, _ = socket_connect(demo_token)
    # The other tenant's operator sits on the other gateway instance: what crosses the Redis
    # adapter must not reach it either.
    other, error = socket_connect(other_token, GATEWAY_2)
    check("both operators connect", demo and other, error or "")
    if not (demo and other):
        return
    demo.on("*", recorder(demo_seen))
    other.on("*", recorder(other_seen))
    answer = signed_webhook(app_secret, customer, f"wamid.security.{customer}")
    check("the demo webhook is acknowledged", answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}")
    deadline = time.time() + 30
    while time.time() < deadline:
        with lock:
            if any(key in payload for _, payload in demo_seen):
                break
        time.sleep(0.2)
    with lock:
        check("the demo operator sees the demo conversation live", any(key in p for _, p in demo_seen), "nothing arrived in 30 s")
    # Wait for the conversation to be stored, so REST refusals are about the tenant, not absence.
    demo_headers = {"Authorization": f"Bearer {demo_token}"}
    stored_by = time.time() + 20
    while time.time() < stored_by:
        if requests.get(f"{GATEWAY}/api/v1/conversations/{key}", headers=demo_headers, timeout=5).status_code == 200:
            break
        time.sleep(0.5)
    other_headers = {"Authorization": f"Bearer {other_token}"}
    for path in (f"/api/v1/conversations/{key}", f"/api/v1/conversations/{key}/messages"):
        answer = requests.get(f"{GATEWAY}{path}", headers=other_headers, timeout=30)
        check(f"another tenant's admin cannot read {path.rsplit('/', 1)[-1]} of demo (403/404)", answer.status_code in (403, 404), f"answered {answer.status_code}: {answer.text[:200]}")
    # Customer ids are only unique per tenant: the other tenant's export is of its own customer
    # of that number (none), never the demo customer's data.
    answer = requests.get(f"{GATEWAY}/api/v1/customers/{customer}/export", headers=other_headers, timeout=30)
    check("another tenant's export of the number holds no demo data", answer.status_code in (200, 403, 404) and "demo:" not in answer.text and "wamid.security" not in answer.text, f"answered {answer.status_code}: {answer.text[:200]}")
    listed = requests.get(f"{GATEWAY}/api/v1/conversations", headers=other_headers, timeout=30)
    check("another tenant's conversation list holds no demo conversation", listed.status_code == 200 and "demo:" not in listed.text, f"{listed.status_code} {listed.text[:200]}")
    still_there = requests.get(f"{GATEWAY}/api/v1/conversations/{key}/messages", headers=demo_headers, timeout=30)
    check("the demo operator still reads the conversation (positive control)", still_there.status_code == 200 and "wamid.security" in still_there.text, f"{still_there.status_code} {still_there.text[:200]}")
    for event, payload in [
        ("conversation.join", {"conversation_key": key}),
        ("message.send", {"conversation_key": key, "text": "from another tenant"}),
        ("conversation.assign", {"conversation_key": key}),
        ("conversation.handoff", {"conversation_key": key}),
        ("conversation.close", {"conversation_key": key}),
        ("typing", {"conversation_key": key}),
        ("conversation.read", {"conversation_key": key}),
    ]:
        try:
            answer = other.call(event, payload, timeout=10)
        except Exception as error:  # noqa: BLE001
            answer = {"ok": False, "error": f"no answer: {error}"}
        check(f"socket {event} into a demo conversation is refused", isinstance(answer, dict) and answer.get("ok") is False, str(answer))
    # Another webhook while the other tenant listens: still nothing of demo reaches it.
    signed_webhook(app_secret, customer, f"wamid.security.{customer}.2")
    time.sleep(3)  # the demo operator got the first within this time; the check is for absence
    with lock:
        leaked = [event for event, payload in other_seen if "demo:" in payload or customer in payload]
    check("the other tenant's socket received no demo event", not leaked, f"{leaked[:5]}")
    demo.disconnect()
    other.disconnect()


def check_size_limits(secret):
    token = jwt(claims("demo", sub="op-sec-size"), secret)
    huge = "x" * (8 * 1024 * 1024)
    try:
        answer = requests.post(
            f"{GATEWAY}/api/v1/campaigns",
            data=json.dumps({"name": huge}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=30,
        )
        status = answer.status_code
    except requests.RequestException as error:  # the server may close the connection early
        status = f"connection closed ({type(error).__name__})"
    check("an 8 MiB REST body is refused (413 or closed)", status in (413, 400) or isinstance(status, str), f"answered {status}")
    client, error = socket_connect(token)
    if client:
        try:
            answer = client.call("message.send", {"conversation_key": "demo:whatsapp:1", "text": "y" * (4 * 1024 * 1024)}, timeout=10)
            refused = isinstance(answer, dict) and answer.get("ok") is False
        except Exception:  # noqa: BLE001 - a dropped connection is a refusal too
            refused = True
        check("a 4 MiB socket.io event is refused or the socket closed", refused, str(answer)[:200])
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001
            pass
    health = requests.get(f"{GATEWAY}/health", timeout=5)
    check("the gateway is healthy after the oversized requests", health.status_code == 200, str(health.status_code))


def main():
    config = configuration()
    secret = config.get("CAAS_JWT_SECRET", "")
    app_secret = config.get("CAAS_WHATSAPP_APP_SECRET", "")
    if not secret or not app_secret:
        sys.exit("CAAS_JWT_SECRET and CAAS_WHATSAPP_APP_SECRET must be configured (.env.example/.env)")
    started = time.time()
    groups = [check_secrets_not_in_logs, check_jwt, check_tenant_isolation, check_size_limits]
    if "--quick" in sys.argv:
        # `make test`: nothing that needs MongoDB or produces anything on a shared stack.
        groups.remove(check_tenant_isolation)
    for group in groups:
        arguments = {"check_secrets_not_in_logs": (config,), "check_tenant_isolation": (secret, app_secret)}.get(group.__name__, (secret,))
        try:
            group(*arguments)
        except Exception as error:  # noqa: BLE001 - one broken group must not hide the others
            check(f"{group.__name__} ran to the end", False, f"{type(error).__name__}: {error}")
    failed = [name for name, passed in results if not passed]
    print(f"\nsecurity: {len(results) - len(failed)} passed, {len(failed)} failed in {time.time() - started:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
