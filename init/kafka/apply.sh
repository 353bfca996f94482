#!/bin/sh
# Compose init job: create or update every topic from topics/catalogue.yaml and register every
# schema with FULL_TRANSITIVE compatibility. Idempotent; runs before the services start.
set -eu
caasctl topics apply --catalogue /app/topics/catalogue.yaml
caasctl schemas apply --catalogue /app/topics/catalogue.yaml
