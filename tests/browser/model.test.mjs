// The dashboard's client rules (services/gateway/web/src/model.ts), as EVENTS.md states them:
// statuses only move forward, snapshots never go back in seq, partial updates merge, a seq gap
// asks for a catch-up. Run by run.sh with the module bundled to CAAS_DASHBOARD_MODEL.
import assert from "node:assert/strict";
import test from "node:test";

const { ConversationList, EventLog, Thread, Typing, applyCampaignEvent, campaignDone, laterStatus, matchesEventFilter } = await import(process.env.CAAS_DASHBOARD_MODEL);

const message = (id, seq, status = "received", direction = "inbound") => ({
  id, conversation_key: "acme:whatsapp:1", seq, direction, origin: "customer", operator_id: null,
  command_id: null, provider_message_id: `p-${id}`, status, content: { text: { body: id } },
  preview: id, occurred_at: seq ?? 0, error: null,
});

test("statuses only move forward and failed is terminal", () => {
  assert.equal(laterStatus("delivered", "sent"), "delivered");
  assert.equal(laterStatus("sent", "read"), "read");
  assert.equal(laterStatus("read", "failed"), "failed");
  assert.equal(laterStatus("failed", "read"), "failed");
});

test("a thread detects gaps and catches up", () => {
  const thread = new Thread("acme:whatsapp:1");
  assert.equal(thread.applyMessage(message("a", 1)), false);
  assert.equal(thread.applyMessage(message("b", 2)), false);
  assert.equal(thread.lastSeq, 2);
  assert.equal(thread.applyMessage(message("d", 4)), true, "seq 3 is missing");
  assert.equal(thread.lastSeq, 2);
  thread.caughtUp(thread.seenSeq, 4);
  assert.equal(thread.lastSeq, 4);
  assert.equal(thread.applyMessage(message("e", null)), false, "unsequenced events never gap");
  assert.deepEqual(thread.ordered().map((m) => m.id), ["e", "a", "b", "d"]);
});

test("statuses find their message by provider id and never go back", () => {
  const thread = new Thread("acme:whatsapp:1");
  thread.applyMessage(message("out", 1, "queued", "outbound"));
  thread.applyStatus({ conversation_key: "acme:whatsapp:1", seq: 2, message_id: null, command_id: null, provider_message_id: "p-out", status: "read", error: null, occurred_at: 2 });
  thread.applyStatus({ conversation_key: "acme:whatsapp:1", seq: 3, message_id: "out", command_id: null, provider_message_id: "p-out", status: "delivered", error: null, occurred_at: 3 });
  assert.equal(thread.messages.get("out").status, "read");
  // A fetched copy with an older seq does not undo the status either.
  thread.applyMessage(message("out", 1, "queued", "outbound"));
  assert.equal(thread.messages.get("out").status, "read");
});

test("the list takes newer snapshots, merges partial updates and drops erased entries", () => {
  const list = new ConversationList();
  list.apply({ conversation_key: "k", seq: 5, mode: "bot", unread_count: 2, partial: false, change: "x" });
  list.apply({ conversation_key: "k", seq: 4, mode: "human", unread_count: 9, partial: false, change: "x" });
  assert.equal(list.byKey.get("k").mode, "bot", "an older snapshot is ignored");
  list.apply({ conversation_key: "k", seq: null, mode: "human", assignee: "op-1", partial: true, change: "assigned" });
  assert.equal(list.byKey.get("k").mode, "human");
  assert.equal(list.byKey.get("k").unread_count, 2, "absent fields are unchanged");
  assert.equal(list.byKey.get("k").seq, 5);
  list.apply({ conversation_key: "k", seq: null, partial: true, erased: true, change: "erased" });
  assert.equal(list.byKey.has("k"), false);
});

test("typing lapses and campaigns report progress", () => {
  const typing = new Typing();
  typing.set("k", "customer:1", "Kim", true, 1_000, 0);
  assert.deepEqual(typing.who("k", 500), ["Kim"]);
  assert.deepEqual(typing.who("k", 1_500), []);
  typing.set("k", "operator:op-2", "op-2", true, 5_000, 0);
  typing.set("k", "operator:op-2", "op-2", false, null, 100);
  assert.deepEqual(typing.who("k", 200), []);
  const counts = { audience: 10, queued: 0, sent: 4, delivered: 3, read: 1, failed: 1, skipped: 0, replied: 0 };
  assert.equal(campaignDone({ conversation_key: "c", campaign_id: "c", kind: "progress", counts, reason: null, occurred_at: 0 }), 0.5);
});

test("campaign events keep the lifecycle state and the newest totals", () => {
  const counts = (sent) => ({ audience: 4, queued: 4 - sent, sent, delivered: 0, read: 0, failed: 0, skipped: 0, replied: 0 });
  const event = (kind, sent, at) => ({ conversation_key: "t:campaign:c", campaign_id: "c", kind, counts: counts(sent), reason: null, occurred_at: at });
  let view = applyCampaignEvent(undefined, event("started", 0, 1));
  assert.equal(view.state, "running");
  view = applyCampaignEvent(view, event("progress", 2, 2));
  assert.equal(view.state, "running");
  assert.equal(campaignDone(view), 0.5);
  view = applyCampaignEvent(view, event("progress", 1, 1));
  assert.equal(view.counts.sent, 2, "an older event never wins");
  view = applyCampaignEvent(view, event("completed", 4, 3));
  view = applyCampaignEvent(view, event("progress", 4, 4));
  assert.equal(view.state, "completed", "totals after completion keep the state");
  assert.equal(campaignDone(view), 1);
  view = applyCampaignEvent(view, { ...event("rejected", 4, 5), reason: "already completed" });
  assert.equal(view.state, "completed");
  assert.equal(view.reason, "already completed");
});

test("the event explorer keeps events newest first, once each, and filters live ones", () => {
  const event = (id, at, extra = {}) => ({ id, type: "inbound_message", tenant_id: "t", conversation_key: "t:whatsapp:1", topic: null, seq: null, source: "ingest", occurred_at: at, stored_at: at, summary: "Ada · text: hello", ...extra });
  const log = new EventLog(3);
  log.add([event("a", 1), event("b", 3)]);
  log.add([event("c", 2), event("b", 3, { summary: "changed" })]);
  assert.deepEqual(log.ordered().map((e) => e.id), ["b", "c", "a"]);
  assert.equal(log.ordered()[0].summary, "Ada · text: hello");
  log.add([event("d", 4)]);
  assert.deepEqual(log.ordered().map((e) => e.id), ["d", "b", "c"], "the oldest drops out");
  const any = { conversation_key: "", type: "", from: null, to: null, text: "" };
  assert.ok(matchesEventFilter(event("x", 5), any));
  assert.ok(matchesEventFilter(event("x", 5), { ...any, text: "HELLO" }));
  assert.ok(!matchesEventFilter(event("x", 5), { ...any, text: "bye" }));
  assert.ok(!matchesEventFilter(event("x", 5), { ...any, type: "inbound_status,outbound_result" }));
  assert.ok(matchesEventFilter(event("x", 5), { ...any, type: "inbound_status,inbound_message" }));
  assert.ok(!matchesEventFilter(event("x", 5), { ...any, conversation_key: "t:whatsapp:2" }));
  assert.ok(!matchesEventFilter(event("x", 5), { ...any, to: 5 }));
  assert.ok(!matchesEventFilter(event("x", 5), { ...any, from: 6 }));
});
