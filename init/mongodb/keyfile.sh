#!/bin/sh
# Writes the replica set's shared keyfile from MONGO_REPLICA_KEY (in .env) with the permissions
# mongod insists on, then execs mongod with the arguments given.
set -eu
if [ -z "${MONGO_REPLICA_KEY:-}" ]; then echo "MONGO_REPLICA_KEY is not set; put it in .env" >&2; exit 1; fi
printf '%s' "$MONGO_REPLICA_KEY" > /tmp/keyfile
chmod 400 /tmp/keyfile
chown mongodb:mongodb /tmp/keyfile 2>/dev/null || true
exec docker-entrypoint.sh "$@"
