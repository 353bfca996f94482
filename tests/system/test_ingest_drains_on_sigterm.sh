#!/usr/bin/env bash
# Zero-downtime upgrades rely on ingest draining: a webhook already in flight when SIGTERM
# arrives is still processed and answered 200 (after Kafka acknowledged it), new connections are
# refused, and the process exits 0. The request is held in flight deterministically by sending
# its body in two halves around the signal.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/caas/target}"
BINARY="$CARGO_TARGET_DIR/debug/caas-ingest"
[[ -x $BINARY ]] || { echo "missing $BINARY: run make up first"; exit 1; }

set -a; source "$ROOT/.env.example"; [[ -f "$ROOT/.env" ]] && source "$ROOT/.env"; set +a
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
CAAS_INGEST_ADDR="127.0.0.1:$port" CAAS_INSTANCE=ingest-drain-test "$BINARY" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 80); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.25
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { echo "ingest did not become ready:"; cat "$log"; exit 1; }

python3 - "$port" "$pid" "$CAAS_WHATSAPP_APP_SECRET" <<'PY'
import hashlib, hmac, json, os, signal, socket, sys, time, uuid
port, pid, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
message_id = f"wamid.drain-{uuid.uuid4().hex}"
body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
    "field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1555", "phone_number_id": "100000000000001"},
        "contacts": [{"profile": {"name": "Drain"}, "wa_id": "4915100000999"}],
        "messages": [{"from": "4915100000999", "id": message_id, "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": "sent across a SIGTERM"}}]}}]}]}).encode()
signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
head = (f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
connection = socket.create_connection(("127.0.0.1", port), timeout=30)
connection.sendall(head + body[: len(body) // 2])
time.sleep(0.3)
os.kill(pid, signal.SIGTERM)          # the request is in flight: half its body is still to come
time.sleep(0.5)
try:
    late = socket.create_connection(("127.0.0.1", port), timeout=2)
    late.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = late.recv(100)
    assert not answer.startswith(b"HTTP/1.1 200"), f"a new connection was served while draining: {answer!r}"
except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
    pass
connection.sendall(body[len(body) // 2 :])
response = b""
while chunk := connection.recv(65536):
    response += chunk
status_line = response.split(b"\r\n", 1)[0].decode()
assert status_line == "HTTP/1.1 200 OK", f"in-flight webhook answered {status_line!r}: {response!r}"
print(f"in-flight webhook answered {status_line} after SIGTERM")
PY

status=0
wait "$pid" || status=$?
trap 'rm -f "$log"' EXIT
[[ $status -eq 0 ]] || { echo "ingest exited $status after SIGTERM:"; tail -20 "$log"; exit 1; }
grep -q 'service stopped' "$log" || { echo "no 'service stopped' line:"; tail -20 "$log"; exit 1; }
echo "ingest drained and exited 0"
