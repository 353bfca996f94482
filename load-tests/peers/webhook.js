// The Node.js peer of ingest: a WhatsApp webhook receiver as a competent team would write it
// with kafkajs. Verify the HMAC over the raw body, parse, de-duplicate in Redis, encode Avro
// (Confluent wire format, the same InboundMessage schema) and answer 200 only after Kafka
// acknowledged (acks=all, lz4 like ingest). It produces to its own topic so CAAS's workers do
// not see it.
//
//   PORT=8088 TOPIC=load.peer.inbound.v1 node webhook.js
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const { Kafka, logLevel, CompressionTypes } = require("kafkajs");
const { createClient } = require("redis");
const { config, whatsappTenants, registry, inboundSchema, SchemaType } = require("./common");

const PORT = Number(process.env.PORT || 8088);
const TOPIC = process.env.TOPIC || "load.peer.inbound.v1";
const tenants = whatsappTenants(config.tenants);

// UUIDv5 of the message id, like CAAS's deterministic event ids.
const NAMESPACE = Buffer.from("914ba93a631340b79204ecf9ecdb42c1", "hex");
function uuidv5(name) {
  const hash = crypto.createHash("sha1").update(NAMESPACE).update(name).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function verify(body, header) {
  if (typeof header !== "string" || !header.startsWith("sha256=")) return false;
  const expected = crypto.createHmac("sha256", config.appSecret).update(body).digest();
  const given = Buffer.from(header.slice(7), "hex");
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

// The events of one webhook; throws a message for a 400.
function parse(payload, now) {
  if (payload.object !== "whatsapp_business_account" || !Array.isArray(payload.entry)) {
    throw new Error("not a whatsapp_business_account webhook");
  }
  const events = [];
  for (const entry of payload.entry) {
    for (const change of entry.changes || []) {
      if (change.field !== "messages") continue;
      const value = change.value || {};
      const tenant = tenants.get(value.metadata && value.metadata.phone_number_id);
      if (!tenant) continue;
      const names = new Map((value.contacts || []).map((c) => [c.wa_id, c.profile && c.profile.name]));
      for (const message of value.messages || []) {
        if (!message.id || !message.from || !message.timestamp) throw new Error("message without id, from or timestamp");
        const content = message.type === "text" && message.text
          ? { "caas.v1.Text": { body: String(message.text.body), preview_url: false } }
          : { "caas.v1.Unsupported": { provider_type: String(message.type), reason: "not mapped by the peer", raw_json: JSON.stringify(message) } };
        const key = `${tenant}:whatsapp:${message.from}`;
        events.push({
          key,
          value: {
            event_id: uuidv5(`whatsapp:message:${message.id}`),
            tenant_id: tenant,
            conversation_key: key,
            channel: "whatsapp",
            occurred_at: Number(message.timestamp) * 1000,
            recorded_at: now,
            source: "load-peer-webhook",
            trace_parent: null,
            provider_message_id: message.id,
            customer_id: message.from,
            customer_display_name: names.get(message.from) || null,
            business_id: value.metadata.phone_number_id,
            reply_to: null,
            content,
          },
        });
      }
    }
  }
  return events;
}

async function main() {
  const kafka = new Kafka({ clientId: "load-peer-webhook", brokers: config.kafka, logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 12, replicationFactor: 1 }] }).catch(() => {});
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const { id: schemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: inboundSchema },
    { subject: `${TOPIC}-value` },
  );
  const redis = createClient({ url: config.redis });
  await redis.connect();

  const server = http.createServer((request, response) => {
    if (request.method !== "POST" || request.url !== "/webhooks/whatsapp") {
      response.writeHead(404).end();
      return;
    }
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", async () => {
      const body = Buffer.concat(chunks);
      if (!verify(body, request.headers["x-hub-signature-256"])) {
        response.writeHead(401, { "content-type": "application/json" }).end('{"error":"bad signature"}');
        return;
      }
      let events;
      try {
        events = parse(JSON.parse(body.toString("utf8")), Date.now());
      } catch (error) {
        response.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: error.message }));
        return;
      }
      try {
        // Claim each id; an id already claimed is a duplicate delivery.
        const claims = await Promise.all(events.map((event) =>
          redis.set(`load-peer:dedupe:${event.value.event_id}`, "1", { NX: true, EX: 86400 })));
        const fresh = events.filter((_, index) => claims[index] === "OK");
        if (fresh.length > 0) {
          const messages = await Promise.all(fresh.map(async (event) => ({
            key: event.key,
            value: await registry.encode(schemaId, event.value),
          })));
          await producer.send({ topic: TOPIC, acks: -1, compression: CompressionTypes.LZ4, messages });
        }
        response.writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ status: "ok", events: events.length, produced: fresh.length }));
      } catch (error) {
        await Promise.all(events.map((event) => redis.del(`load-peer:dedupe:${event.value.event_id}`))).catch(() => {});
        response.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: String(error) }));
      }
    });
  });
  server.keepAliveTimeout = 65000;
  server.listen(PORT, "127.0.0.1", () => console.error(`peer webhook on ${PORT} -> ${TOPIC}`));
  const stop = async () => { server.close(); await producer.disconnect(); await redis.quit(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => { console.error(error); process.exit(1); });
