// The CAAS operator dashboard: sign in with a token, watch the tenant's conversations live,
// open one, answer, take over from the bot, release, close; campaign progress on the side.
// The realtime contract is services/gateway/EVENTS.md; the REST API is /openapi.yaml.

import { io, Socket } from "socket.io-client";
import {
  CampaignProgress,
  CampaignView,
  Conversation,
  ConversationList,
  ConversationUpdate,
  EventFilter,
  EventLog,
  Message,
  StatusUpdate,
  StoredEvent,
  Thread,
  Typing,
  applyCampaignEvent,
  campaignDone,
  matchesEventFilter,
  previewOf,
} from "./model";

interface Me {
  operator_id: string;
  tenant: string;
  role: "operator" | "admin";
  exp: number;
}

type Filter = "all" | "unread" | "mine" | "bot" | "human";

const TOKEN_KEY = "caas.token";

const state = {
  token: "",
  me: null as Me | null,
  socket: null as Socket | null,
  connection: "offline" as "offline" | "connecting" | "online",
  list: new ConversationList(),
  threads: new Map<string, Thread>(),
  selected: null as string | null,
  filter: "all" as Filter,
  typing: new Typing(),
  customerPresence: new Map<string, string>(),
  operatorsOnline: new Map<string, number>(),
  campaigns: new Map<string, CampaignView>(),
  heartbeat: 0 as number | ReturnType<typeof setInterval>,
  view: "conversations" as "conversations" | "explorer",
  explorer: {
    log: new EventLog(),
    filter: { conversation_key: "", type: "", from: null, to: null, text: "" } as EventFilter,
    nextBefore: null as string | null,
    selected: null as string | null,
    /** Whether this socket receives `explorer.event` (admins, explorer open, live tail on). */
    tailing: false,
    searched: false,
  },
};

// ---------------------------------------------------------------- helpers

function $(selector: string): HTMLElement {
  const element = document.querySelector<HTMLElement>(selector);
  if (!element) throw new Error(`missing ${selector}`);
  return element;
}

function h(tag: string, attributes: Record<string, string> = {}, ...children: (Node | string | null)[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) if (child != null) element.append(child);
  return element;
}

function time(ms: number | null | undefined): string {
  if (!ms) return "";
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { day: "2-digit", month: "short" });
}

function uuid(): string {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
  });
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(text: string): void {
  const element = $("#toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (element.hidden = true), 5000);
}

async function api<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error((body as { error?: string }).error ?? `HTTP ${response.status}`);
  }
  return body as T;
}

function thread(key: string): Thread {
  let found = state.threads.get(key);
  if (!found) {
    found = new Thread(key);
    state.threads.set(key, found);
  }
  return found;
}

function customerLabel(conversation: Conversation | undefined, key: string): string {
  return conversation?.customer_name || conversation?.customer_id || key.split(":").slice(2).join(":");
}

// ---------------------------------------------------------------- rendering

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderHeader();
    renderList();
    renderThread();
    renderCampaigns();
    renderExplorer();
  });
}

function renderHeader(): void {
  const status = $("#connection");
  status.dataset.state = state.connection;
  status.textContent = { online: "live", connecting: "connecting…", offline: "offline" }[state.connection];
  $("#who").textContent = state.me ? `${state.me.operator_id} · ${state.me.tenant} · ${state.me.role}` : "";
  const online = [...state.operatorsOnline.entries()]
    .filter(([, until]) => until > Date.now())
    .map(([id]) => id);
  const operators = $("#operators");
  operators.textContent = online.length ? `${online.length} operator${online.length > 1 ? "s" : ""} online` : "";
  operators.title = online.join(", ");
}

function matchesFilter(conversation: Conversation): boolean {
  switch (state.filter) {
    case "unread":
      return (conversation.unread_count ?? 0) > 0;
    case "mine":
      return conversation.assignee === state.me?.operator_id;
    case "bot":
      return conversation.mode !== "human";
    case "human":
      return conversation.mode === "human";
    default:
      return true;
  }
}

function renderList(): void {
  const list = $("#conversations");
  const rows = state.list.sorted(matchesFilter).map((conversation) => {
    const key = conversation.conversation_key;
    const unread = conversation.unread_count ?? 0;
    const typing = state.typing.who(key, Date.now()).length > 0;
    const row = h(
      "li",
      {
        class: `conversation${key === state.selected ? " selected" : ""}${conversation.closed ? " closed" : ""}`,
        "data-testid": "conversation-row",
        "data-key": key,
        tabindex: "0",
      },
      h(
        "div",
        { class: "row-top" },
        h("span", { class: `channel ${conversation.channel ?? ""}`, title: conversation.channel ?? "" }, conversation.channel === "rcs" ? "RCS" : "WA"),
        h("span", { class: "customer" }, customerLabel(conversation, key)),
        h("span", { class: "when" }, time(conversation.last_message?.occurred_at ?? conversation.last_activity_at)),
      ),
      h(
        "div",
        { class: "row-bottom" },
        h(
          "span",
          { class: "preview" },
          typing
            ? h("em", {}, "typing…")
            : `${conversation.last_message?.direction === "outbound" ? "↪ " : ""}${conversation.last_message?.preview ?? ""}`,
        ),
        h(
          "span",
          { class: `mode ${conversation.mode ?? "bot"}`, "data-testid": "mode-badge" },
          conversation.mode === "human" ? `human · ${conversation.assignee ?? "queue"}` : "bot",
        ),
        conversation.closed ? h("span", { class: "closed-badge" }, "closed") : null,
        unread > 0 ? h("span", { class: "unread", "data-testid": "unread-badge" }, String(unread)) : null,
      ),
    );
    row.addEventListener("click", () => select(key));
    row.addEventListener("keydown", (event) => {
      if ((event as KeyboardEvent).key === "Enter") select(key);
    });
    return row;
  });
  list.replaceChildren(...rows);
  if (!rows.length) {
    list.append(h("li", { class: "empty" }, state.connection === "online" ? "No conversations yet." : "…"));
  }
}

const TICKS: Record<string, string> = {
  queued: "◷",
  accepted: "✓",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓",
  failed: "⚠",
  received: "",
};

function renderMessage(message: Message): HTMLElement {
  const outbound = message.direction === "outbound";
  const who = outbound
    ? message.origin === "operator"
      ? message.operator_id ?? "operator"
      : message.origin
    : "";
  return h(
    "li",
    {
      class: `message ${message.direction}`,
      "data-testid": "message",
      "data-id": message.id,
      "data-status": message.status,
    },
    h("div", { class: "bubble" }, previewOf(message)),
    h(
      "div",
      { class: "meta" },
      who ? h("span", { class: "origin" }, who) : null,
      h("span", { class: "when" }, time(message.occurred_at)),
      outbound
        ? h(
            "span",
            {
              class: `tick ${message.status}`,
              "data-testid": "status-tick",
              title: message.error ? `${message.status}: ${message.error.reason}` : message.status,
            },
            TICKS[message.status] ?? "",
          )
        : null,
    ),
  );
}

function renderThread(): void {
  const pane = $("#thread-pane");
  const key = state.selected;
  pane.hidden = !key;
  $("#placeholder").hidden = !!key;
  if (!key) return;
  const conversation = state.list.byKey.get(key);
  $("#thread-title").textContent = customerLabel(conversation, key);
  const presence = state.customerPresence.get(key);
  $("#thread-subtitle").textContent = [
    conversation?.channel === "rcs" ? "RCS" : "WhatsApp",
    conversation?.mode === "human" ? `handled by ${conversation.assignee ?? "nobody yet"}` : "bot answers",
    conversation?.closed ? "closed" : "",
    conversation?.opted_out ? "opted out" : "",
    presence ?? "",
  ]
    .filter(Boolean)
    .join(" · ");
  const human = conversation?.mode === "human";
  const mine = conversation?.assignee === state.me?.operator_id;
  ($("#takeover") as HTMLButtonElement).disabled = human && mine;
  ($("#release") as HTMLButtonElement).disabled = !human;
  ($("#close") as HTMLButtonElement).disabled = !!conversation?.closed;

  const list = $("#messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const current = thread(key);
  list.replaceChildren(...current.ordered().map(renderMessage));
  if (!current.loaded) list.append(h("li", { class: "empty" }, "Loading…"));
  if (atBottom) list.scrollTop = list.scrollHeight;

  const typing = state.typing.who(key, Date.now());
  const indicator = $("#typing");
  indicator.textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
}

function renderCampaigns(): void {
  const section = $("#campaigns");
  const items = [...state.campaigns.values()].sort((a, b) => b.occurred_at - a.occurred_at);
  section.hidden = items.length === 0;
  $("#campaign-list").replaceChildren(
    ...items.map((campaign) => {
      const done = Math.round(campaignDone(campaign) * 100);
      const { audience, sent, delivered, read, failed, skipped } = campaign.counts;
      const share = (count: number) => `width:${audience ? Math.max(0, (count / audience) * 100).toFixed(2) : 0}%`;
      // Stacked, cumulative totals: read ⊆ delivered ⊆ sent; then failed and skipped.
      const segments: [string, number][] = [
        ["read", read],
        ["delivered", delivered - read],
        ["sent", sent - delivered],
        ["failed", failed],
        ["skipped", skipped],
      ];
      return h(
        "li",
        {
          class: "campaign",
          "data-testid": "campaign-row",
          "data-id": campaign.campaign_id,
          "data-state": campaign.state,
          "data-done": String(done),
        },
        h(
          "div",
          { class: "campaign-top" },
          h("span", { class: "campaign-name", title: campaign.campaign_id }, campaign.name || campaign.campaign_id),
          h("span", { class: `kind ${campaign.state}`, "data-testid": "campaign-state" }, campaign.state),
        ),
        h(
          "div",
          {
            class: "bar",
            role: "progressbar",
            "aria-valuemin": "0",
            "aria-valuemax": "100",
            "aria-valuenow": String(done),
            "data-testid": "campaign-bar",
          },
          ...segments.map(([name, count]) => h("div", { class: `fill ${name}`, style: share(count), title: `${name}: ${count}` })),
        ),
        h(
          "div",
          { class: "campaign-counts", "data-testid": "campaign-counts" },
          `${done}% of ${audience} · ${sent} sent · ${delivered} delivered · ${read} read · ${failed} failed${skipped ? ` · ${skipped} skipped` : ""}`,
        ),
        campaign.reason ? h("div", { class: "campaign-reason" }, campaign.reason) : null,
      );
    }),
  );
}

function renderExplorer(): void {
  const admin = state.me?.role === "admin";
  $("[data-view=explorer]").hidden = !admin;
  if (!admin && state.view === "explorer") state.view = "conversations";
  $("main").hidden = state.view !== "conversations";
  $("#explorer").hidden = state.view !== "explorer";
  $("#explorer").dataset.tailing = String(state.explorer.tailing);
  for (const tab of document.querySelectorAll<HTMLElement>("#tabs .tab")) tab.classList.toggle("active", tab.dataset.view === state.view);
  if (state.view !== "explorer") return;
  const explorer = state.explorer;
  $("#explorer-results").replaceChildren(
    ...explorer.log.ordered().map((event) => {
      const row = h(
        "tr",
        {
          class: `event-row${event.live ? " live" : ""}${event.id === explorer.selected ? " selected" : ""}`,
          "data-testid": "event-row",
          "data-id": event.id,
          "data-type": event.type,
          "data-live": String(!!event.live),
          title: event.id,
        },
        h("td", {}, new Date(event.occurred_at).toLocaleString()),
        h("td", { class: "event-type" }, event.type),
        h("td", {}, event.conversation_key),
        h("td", { "data-testid": "event-summary" }, event.summary),
      );
      row.addEventListener("click", () => void openEvent(event.id));
      return row;
    }),
  );
  ($("#explorer-more") as HTMLButtonElement).hidden = !explorer.nextBefore;
}

function setStatus(text: string, error = false): void {
  const status = $("#explorer-status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

function localMillis(selector: string): number | null {
  const value = ($(selector) as HTMLInputElement).value;
  return value ? new Date(value).getTime() : null;
}

function readFilter(): EventFilter {
  return {
    conversation_key: ($("#explorer-conversation") as HTMLInputElement).value.trim(),
    type: ($("#explorer-type") as HTMLSelectElement).value,
    from: localMillis("#explorer-from"),
    to: localMillis("#explorer-to"),
    text: ($("#explorer-text") as HTMLInputElement).value.trim(),
  };
}

/** Search the stored events with the form's filters (a new search, or the next older page). */
async function searchEvents(older = false): Promise<void> {
  const explorer = state.explorer;
  if (!older) explorer.filter = readFilter();
  const filter = explorer.filter;
  const query = new URLSearchParams({ limit: "100" });
  if (filter.conversation_key) query.set("conversation_key", filter.conversation_key);
  if (filter.type) query.set("type", filter.type);
  if (filter.from != null) query.set("from", String(filter.from));
  if (filter.to != null) query.set("to", String(filter.to));
  if (filter.text) query.set("q", filter.text);
  if (older && explorer.nextBefore) query.set("before", explorer.nextBefore);
  setStatus("Searching…");
  try {
    const body: { events: StoredEvent[]; next_before: string | null; from: number; to: number } = await api(`/api/v1/events?${query}`);
    if (!older) explorer.log.clear();
    explorer.log.add(body.events);
    explorer.nextBefore = body.next_before;
    explorer.searched = true;
    setStatus(
      `${explorer.log.size} event${explorer.log.size === 1 ? "" : "s"} from ${new Date(body.from).toLocaleString()} to ${new Date(body.to).toLocaleString()}` +
        (explorer.tailing ? " · live tail on: new events appear at the top" : ""),
    );
  } catch (error) {
    setStatus((error as Error).message, true);
  }
  render();
}

/** Show one event's whole payload. */
async function openEvent(id: string): Promise<void> {
  state.explorer.selected = id;
  render();
  $("#explorer-detail").hidden = false;
  $("#explorer-detail-title").textContent = id;
  const pre = $("#explorer-payload");
  pre.textContent = "Loading…";
  try {
    const event = await api<Record<string, unknown>>(`/api/v1/events/${encodeURIComponent(id)}`);
    pre.textContent = JSON.stringify(event, null, 2);
  } catch (error) {
    pre.textContent = (error as Error).message;
  }
}

/** Tail while the explorer is open, its live box is ticked and the operator is an admin. */
function syncTail(): void {
  const socket = state.socket;
  const wanted =
    state.view === "explorer" && state.me?.role === "admin" && ($("#explorer-live") as HTMLInputElement).checked;
  if (!socket?.connected) {
    state.explorer.tailing = false;
    return;
  }
  if (wanted === state.explorer.tailing) return;
  state.explorer.tailing = wanted;
  socket.emit(wanted ? "explorer.subscribe" : "explorer.unsubscribe", {}, (ack: { ok: boolean; error?: string }) => {
    if (!ack.ok) {
      state.explorer.tailing = false;
      setStatus(ack.error ?? "the live tail was refused", true);
    }
    render();
  });
}

function showView(view: "conversations" | "explorer"): void {
  state.view = view;
  render();
  syncTail();
  if (view === "explorer" && !state.explorer.searched) void searchEvents();
}

// ---------------------------------------------------------------- data

interface CampaignSummary {
  campaign_id: string;
  name: string | null;
  state: string;
  counts: CampaignProgress["counts"];
  reason: string | null;
  created_at: number;
}

/** The tenant's unfinished campaigns, with their names; live totals follow by socket. */
async function loadCampaigns(): Promise<void> {
  const body: { campaigns: CampaignSummary[] } = await api("/api/v1/campaigns?limit=50");
  for (const campaign of body.campaigns) {
    const known = state.campaigns.get(campaign.campaign_id);
    if (known) {
      known.name = campaign.name;
    } else if (["created", "scheduled", "running", "paused"].includes(campaign.state)) {
      state.campaigns.set(campaign.campaign_id, {
        conversation_key: `${state.me?.tenant}:campaign:${campaign.campaign_id}`,
        campaign_id: campaign.campaign_id,
        kind: campaign.state,
        state: campaign.state,
        name: campaign.name,
        counts: campaign.counts,
        reason: campaign.reason,
        occurred_at: campaign.created_at,
      });
    }
  }
  render();
}

async function loadConversations(): Promise<void> {
  let cursor: string | null = null;
  for (let page = 0; page < 10; page += 1) {
    const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
    const body: { conversations: Conversation[]; next_cursor: string | null } = await api(`/api/v1/conversations${query}`);
    state.list.load(body.conversations);
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  render();
}

const fetching = new Set<string>();
const fetchAgain = new Set<string>();

/** Fetch what a thread misses (everything on first open), by after_seq. */
async function catchUp(key: string): Promise<void> {
  if (fetching.has(key)) {
    fetchAgain.add(key);
    return;
  }
  fetching.add(key);
  const current = thread(key);
  try {
    let after = current.lastSeq;
    const seenBefore = current.seenSeq;
    for (;;) {
      const body: { messages: Message[]; has_more: boolean; last_seq: number } = await api(
        `/api/v1/conversations/${encodeURIComponent(key)}/messages?after_seq=${after}`,
      );
      for (const message of body.messages) current.applyMessage(message);
      after = Math.max(after, body.last_seq);
      if (!body.has_more) break;
    }
    current.caughtUp(seenBefore, after);
    current.loaded = true;
  } catch (error) {
    toast(`Cannot load the conversation: ${(error as Error).message}`);
  } finally {
    fetching.delete(key);
    render();
    if (fetchAgain.delete(key)) void catchUp(key);
  }
}

function select(key: string): void {
  const socket = state.socket;
  if (state.selected && state.selected !== key && socket) {
    socket.emit("conversation.leave", { conversation_key: state.selected }, () => undefined);
  }
  state.selected = key;
  render();
  if (socket) {
    socket.emit("conversation.join", { conversation_key: key }, (ack: { ok: boolean; error?: string }) => {
      if (!ack.ok) toast(ack.error ?? "cannot open the conversation");
    });
  }
  void catchUp(key).then(markRead);
  ($("#reply-text") as HTMLTextAreaElement).focus();
}

function markRead(): void {
  const key = state.selected;
  if (!key || !state.socket || document.hidden) return;
  const last = thread(key).lastInbound();
  state.socket.emit("conversation.read", { conversation_key: key, provider_message_id: last?.provider_message_id ?? undefined }, () => undefined);
}

// ---------------------------------------------------------------- actions

async function act(event: string, payload: Record<string, unknown>): Promise<{ ok: boolean; id?: string; error?: string }> {
  const socket = state.socket;
  if (!socket?.connected) {
    toast("Not connected; try again in a moment.");
    return { ok: false, error: "not connected" };
  }
  try {
    const ack = await socket.timeout(15000).emitWithAck(event, payload);
    if (!ack.ok) toast(ack.error);
    return ack;
  } catch {
    toast(`${event}: no answer from the server; try again.`);
    return { ok: false, error: "timeout" };
  }
}

async function sendReply(): Promise<void> {
  const key = state.selected;
  const box = $("#reply-text") as HTMLTextAreaElement;
  const text = box.value.trim();
  if (!key || !text) return;
  const idempotency_id = box.dataset.idempotency ?? uuid();
  box.dataset.idempotency = idempotency_id;
  stopTyping();
  const ack = await act("message.send", { conversation_key: key, text, idempotency_id });
  if (!ack.ok || !ack.id || !state.me) return;
  box.value = "";
  delete box.dataset.idempotency;
  const id = `out:${state.me.tenant}:${ack.id}`;
  const current = thread(key);
  if (!current.messages.has(id)) {
    current.applyMessage({
      id,
      conversation_key: key,
      seq: null,
      direction: "outbound",
      origin: "operator",
      operator_id: state.me.operator_id,
      command_id: ack.id,
      provider_message_id: null,
      status: "queued",
      content: { text: { body: text, preview_url: false } },
      preview: text,
      occurred_at: Date.now(),
      error: null,
    });
  }
  render();
}

let typingSentAt = 0;
let typingStop: ReturnType<typeof setTimeout> | undefined;
function onTyping(): void {
  const key = state.selected;
  if (!key || !state.socket?.connected) return;
  const now = Date.now();
  if (now - typingSentAt > 3000) {
    typingSentAt = now;
    state.socket.emit("typing", { conversation_key: key, active: true }, () => undefined);
  }
  clearTimeout(typingStop);
  typingStop = setTimeout(stopTyping, 4000);
}

function stopTyping(): void {
  clearTimeout(typingStop);
  if (typingSentAt && state.selected && state.socket?.connected) {
    state.socket.emit("typing", { conversation_key: state.selected, active: false }, () => undefined);
  }
  typingSentAt = 0;
}

// ---------------------------------------------------------------- socket

function connect(): void {
  state.socket?.disconnect();
  state.connection = "connecting";
  render();
  // WebSocket only: no sticky sessions needed in front of several gateway instances.
  const socket = io(location.origin, { auth: { token: state.token }, transports: ["websocket"] });
  state.socket = socket;

  socket.on("connect", () => {
    state.connection = "online";
    render();
    loadConversations().catch((error: Error) => toast(`Cannot load conversations: ${error.message}`));
    loadCampaigns().catch((error: Error) => console.warn(`cannot load campaigns: ${error.message}`));
    if (state.selected) {
      socket.emit("conversation.join", { conversation_key: state.selected }, () => undefined);
      void catchUp(state.selected);
    }
    for (const key of state.threads.keys()) if (key !== state.selected) thread(key).loaded = false;
    // A new connection tails nothing yet; subscribe again if the explorer is live.
    state.explorer.tailing = false;
    syncTail();
  });
  socket.on("connect_error", (error: Error) => {
    state.connection = "offline";
    render();
    if (/token|authentication|signature|claims|algorithm/i.test(error.message)) {
      signOut(error.message);
    }
  });
  socket.on("disconnect", () => {
    state.connection = "offline";
    render();
  });
  socket.on("session.expired", () => signOut("Your session expired; sign in again."));

  socket.on("conversation.updated", (update: ConversationUpdate) => {
    state.list.apply(update);
    if (update.erased && state.selected === update.conversation_key) state.selected = null;
    const known = state.threads.get(update.conversation_key);
    if (known?.loaded && known.observeSeq(update.event_seq ?? null)) void catchUp(known.key);
    render();
  });
  socket.on("message.new", (message: Message) => {
    const current = thread(message.conversation_key);
    if (current.applyMessage(message) && current.loaded) void catchUp(current.key);
    if (message.direction === "inbound" && message.conversation_key === state.selected) markRead();
    render();
  });
  socket.on("message.status", (update: StatusUpdate) => {
    const current = thread(update.conversation_key);
    if (current.applyStatus(update) && current.loaded) void catchUp(current.key);
    render();
  });
  socket.on("typing", (signal: { conversation_key: string; subject: string; subject_id: string; active: boolean; expires_at: number | null }) => {
    if (signal.subject === "operator" && signal.subject_id === state.me?.operator_id) return;
    const conversation = state.list.byKey.get(signal.conversation_key);
    const label = signal.subject === "customer" ? customerLabel(conversation, signal.conversation_key) : signal.subject_id;
    state.typing.set(signal.conversation_key, `${signal.subject}:${signal.subject_id}`, label, signal.active, signal.expires_at, Date.now());
    render();
    if (signal.expires_at) setTimeout(render, Math.max(0, signal.expires_at - Date.now()) + 50);
  });
  socket.on("presence.updated", (update: { conversation_key: string; kind: string; subject: string; subject_id: string; active: boolean; last_seen_at: number | null; expires_at: number | null }) => {
    if (update.subject === "operator" && (update.kind === "online" || update.kind === "offline")) {
      if (update.kind === "online" && update.active) state.operatorsOnline.set(update.subject_id, update.expires_at ?? Date.now() + 60000);
      else state.operatorsOnline.delete(update.subject_id);
    } else if (update.subject === "customer") {
      const text =
        update.kind === "online" && update.active
          ? "online"
          : update.last_seen_at
            ? `last seen ${time(update.last_seen_at)}`
            : "";
      if (text) state.customerPresence.set(update.conversation_key, text);
    }
    render();
  });
  socket.on("explorer.event", (event: StoredEvent) => {
    if (!matchesEventFilter(event, state.explorer.filter)) return;
    state.explorer.log.add([{ ...event, live: true }]);
    render();
  });
  socket.on("campaign.progress", (progress: CampaignProgress) => {
    const known = state.campaigns.get(progress.campaign_id);
    state.campaigns.set(progress.campaign_id, applyCampaignEvent(known, progress));
    // A campaign first seen live: its name comes from the REST API.
    if (!known) loadCampaigns().catch(() => undefined);
    render();
  });

  clearInterval(state.heartbeat);
  state.heartbeat = setInterval(() => {
    if (socket.connected) socket.emit("heartbeat", {}, () => undefined);
  }, 20000);
}

// ---------------------------------------------------------------- sign-in

async function signIn(token: string): Promise<void> {
  state.token = token.trim();
  try {
    state.me = await api<Me>("/api/v1/me");
  } catch (error) {
    signOut((error as Error).message);
    return;
  }
  localStorage.setItem(TOKEN_KEY, state.token);
  $("#signin").hidden = true;
  $("#app").hidden = false;
  connect();
  render();
}

function signOut(reason?: string): void {
  state.socket?.disconnect();
  state.socket = null;
  state.me = null;
  state.token = "";
  localStorage.removeItem(TOKEN_KEY);
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = reason ?? "";
}

function start(): void {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) history.replaceState(null, "", location.pathname);
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void signIn(($("#token") as HTMLTextAreaElement).value);
  });
  $("#signout").addEventListener("click", () => signOut());
  for (const button of document.querySelectorAll<HTMLButtonElement>("#filters button")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter as Filter;
      for (const other of document.querySelectorAll("#filters button")) other.classList.toggle("active", other === button);
      render();
    });
  }
  $("#reply-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void sendReply();
  });
  const box = $("#reply-text") as HTMLTextAreaElement;
  box.addEventListener("input", onTyping);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      void sendReply();
    }
  });
  const action = (event: string) => () => {
    if (state.selected) void act(event, { conversation_key: state.selected });
  };
  $("#takeover").addEventListener("click", action("conversation.handoff"));
  $("#release").addEventListener("click", action("conversation.release"));
  $("#close").addEventListener("click", action("conversation.close"));
  document.addEventListener("visibilitychange", markRead);
  for (const tab of document.querySelectorAll<HTMLButtonElement>("#tabs .tab")) {
    tab.addEventListener("click", () => showView(tab.dataset.view as "conversations" | "explorer"));
  }
  $("#explorer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    void searchEvents();
  });
  $("#explorer-more").addEventListener("click", () => void searchEvents(true));
  $("#explorer-live").addEventListener("change", syncTail);
  $("#explorer-detail-close").addEventListener("click", () => {
    $("#explorer-detail").hidden = true;
    state.explorer.selected = null;
    render();
  });
  setInterval(render, 5000);

  const token = fromUrl ?? localStorage.getItem(TOKEN_KEY);
  if (token) void signIn(token);
  else signOut();
}

start();
