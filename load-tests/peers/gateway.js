// The Node.js peer of the gateway's fan-out: socket.io with @socket.io/redis-adapter, consuming
// inbound.messages.v1 with kafkajs in one consumer group shared by its instances, decoding the
// Avro records through the schema registry and emitting `message.new` to the conversation's room
// and `conversation.updated` to the tenant's room, like CAAS's gateway (EVENTS.md). Operators
// authenticate with the same HS256 JWT. What it leaves out (the logger's `seq`, snapshots,
// operator actions beyond join) is work CAAS does and the peer does not.
//
//   PORT=3100 GROUP=load-peer-gateway node gateway.js
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");
const { Kafka, logLevel } = require("kafkajs");
const jwt = require("jsonwebtoken");
const { config, registry } = require("./common");

const PORT = Number(process.env.PORT || 3100);
const GROUP = process.env.GROUP || "load-peer-gateway";
const TOPIC = process.env.TOPIC || "inbound.messages.v1";

function contentPreview(content) {
  if (!content) return "";
  const text = content["caas.v1.Text"] || content.Text || content.text;
  return text ? String(text.body).slice(0, 120) : "";
}

async function main() {
  const pubClient = createClient({ url: config.redis });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);

  const server = http.createServer();
  const io = new Server(server, { transports: ["websocket", "polling"], serveClient: false });
  io.adapter(createAdapter(pubClient, subClient, { key: "load-peer" }));

  io.use((socket, next) => {
    const token = (socket.handshake.auth && socket.handshake.auth.token) || "";
    try {
      const claims = jwt.verify(token, config.jwtSecret, { algorithms: ["HS256"], clockTolerance: 30 });
      if (!claims.sub || !claims.tenant || !["operator", "admin"].includes(claims.role)) {
        return next(new Error("invalid token claims"));
      }
      socket.data.operator = claims;
      next();
    } catch (error) {
      next(new Error(`invalid token: ${error.message}`));
    }
  });

  io.on("connection", (socket) => {
    const { sub, tenant, role } = socket.data.operator;
    socket.join([`tenant:${tenant}`, `operator:${tenant}:${sub}`]);
    socket.emit("session", { operator_id: sub, tenant, role });
    const ownKey = (payload) =>
      payload && typeof payload.conversation_key === "string" && payload.conversation_key.startsWith(`${tenant}:`);
    socket.on("conversation.join", (payload, ack) => {
      if (!ownKey(payload)) return typeof ack === "function" && ack({ ok: false, error: "not in your tenant" });
      socket.join(`conversation:${payload.conversation_key}`);
      if (typeof ack === "function") ack({ ok: true, id: payload.conversation_key });
    });
    // The peer keeps no conversation state; taking over is acknowledged only.
    socket.on("conversation.handoff", (payload, ack) => {
      if (typeof ack === "function") ack(ownKey(payload) ? { ok: true, id: payload.conversation_key } : { ok: false, error: "not in your tenant" });
    });
  });

  const kafka = new Kafka({ clientId: `load-peer-gateway-${PORT}`, brokers: config.kafka, logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: GROUP, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: false });
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      for (const record of batch.messages) {
        let event;
        try {
          event = await registry.decode(record.value);
        } catch (error) {
          console.error(`undecodable record at ${batch.partition}/${record.offset}: ${error.message}`);
          continue;
        }
        const key = event.conversation_key;
        const preview = contentPreview(event.content);
        io.to(`conversation:${key}`).emit("message.new", {
          id: `in:whatsapp:${event.provider_message_id}`,
          conversation_key: key,
          seq: null,
          direction: "inbound",
          origin: "customer",
          provider_message_id: event.provider_message_id,
          status: "received",
          content: event.content,
          preview,
          occurred_at: Number(event.occurred_at),
        });
        io.to(`tenant:${event.tenant_id}`).emit("conversation.updated", {
          conversation_key: key,
          seq: null,
          partial: true,
          change: "message.inbound",
          last_message: { preview, direction: "inbound", occurred_at: Number(event.occurred_at) },
        });
      }
    },
  });

  server.listen(PORT, "127.0.0.1", () => console.error(`peer gateway on ${PORT}, group ${GROUP}`));
  const stop = async () => { await consumer.disconnect().catch(() => {}); io.close(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => { console.error(error); process.exit(1); });
