// Drives the official socket.io client (npm socket.io-client) for the gateway's interop test
// (services/gateway/tests/browser.rs). Not our client code: proves protocol compatibility.
//
//   node interop.mjs <url> <token|-> [transports, e.g. websocket or polling,websocket]
//
// stdout: one JSON object per line: {type: "connected", transport} | {type: "upgrade",
//   transport} | {type: "connect_error", message} | {type: "event", event, payload} |
//   {type: "ack", id, ack} | {type: "disconnected", reason}
// stdin: one JSON object per line: {id, event, payload} emits with an ack; {quit: true} ends.
import readline from "node:readline";
import { io } from "socket.io-client";

const [url, token, transports] = process.argv.slice(2);
const out = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const socket = io(url, {
  auth: token && token !== "-" ? { token } : undefined,
  transports: transports ? transports.split(",") : undefined,
  reconnection: false,
});
socket.on("connect", () => {
  const engine = socket.io.engine;
  out({ type: "connected", transport: engine.transport.name });
  engine.on("upgrade", (transport) => out({ type: "upgrade", transport: transport.name }));
});
socket.on("connect_error", (error) => out({ type: "connect_error", message: error.message }));
socket.on("disconnect", (reason) => out({ type: "disconnected", reason }));
socket.onAny((event, payload) => out({ type: "event", event, payload }));

const input = readline.createInterface({ input: process.stdin });
input.on("line", async (line) => {
  const command = JSON.parse(line);
  if (command.quit) {
    socket.close();
    process.exit(0);
  }
  try {
    const ack = await socket.timeout(15000).emitWithAck(command.event, command.payload);
    out({ type: "ack", id: command.id, ack });
  } catch (error) {
    out({ type: "ack", id: command.id, ack: null, error: String(error) });
  }
});
input.on("close", () => {
  socket.close();
  process.exit(0);
});
