// Shared by the peers: configuration from the environment (same variables as CAAS), the schema
// registry client and the Avro schema of inbound messages.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { SchemaRegistry, SchemaType } = require("@kafkajs/confluent-schema-registry");
const { CompressionTypes, CompressionCodecs } = require("kafkajs");
const LZ4 = require("kafkajs-lz4");

// CAAS's producers compress with lz4; kafkajs needs the codec registered to read (and write) it.
CompressionCodecs[CompressionTypes.LZ4] = new LZ4().codec;

const env = (name, fallback) => process.env[name] || fallback;

const config = {
  kafka: env("CAAS_KAFKA_BOOTSTRAP", "127.0.0.1:9092").split(","),
  registry: env("CAAS_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
  redis: env("CAAS_REDIS_URL", "redis://127.0.0.1:6379"),
  appSecret: env("CAAS_WHATSAPP_APP_SECRET", "local-whatsapp-app-secret"),
  jwtSecret: env("CAAS_JWT_SECRET", "local-jwt-secret-change-me"),
  tenants: env("CAAS_INGEST_TENANTS", "demo:whatsapp=100000000000001,rcs=demo-agent"),
};

// phone_number_id -> tenant, from the same CAAS_INGEST_TENANTS format ingest reads.
function whatsappTenants(spec) {
  const tenants = new Map();
  for (const binding of spec.split(";")) {
    const [tenant, ids] = binding.split(":");
    for (const pair of (ids || "").split(",")) {
      const [channel, id] = pair.split("=");
      if (channel === "whatsapp") tenants.set(id, tenant);
    }
  }
  return tenants;
}

const registry = new SchemaRegistry(
  { host: config.registry.replace(/\/+$/, "") },
  { [SchemaType.AVRO]: { wrapUnions: "auto" } },
);

const inboundSchema = fs.readFileSync(
  path.join(__dirname, "..", "..", "schemas", "caas.v1.InboundMessage.avsc"),
  "utf8",
);

module.exports = { config, whatsappTenants, registry, inboundSchema, SchemaType };
