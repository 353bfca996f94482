#!/bin/bash
# Compose init job: initiate the three-node replica set once, then create the application user.
# Runs against mongo-1 with the root credentials from .env; safe to run again.
set -euo pipefail
until mongosh --quiet --host mongo-1 -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" \
    --authenticationDatabase admin --eval 'db.adminCommand({ping: 1})' >/dev/null 2>&1; do
  sleep 2
done
mongosh --quiet --host mongo-1 -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" \
  --authenticationDatabase admin /init/init-replica-set.js
