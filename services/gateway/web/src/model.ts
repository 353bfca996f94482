// The dashboard's state and how server events change it. No DOM, no network: the rules a
// client must follow (EVENTS.md) live here, so they are tested without a browser.

export type Direction = "inbound" | "outbound";
export type Status = "received" | "queued" | "accepted" | "sent" | "delivered" | "read" | "failed";

export interface LastMessage {
  preview: string;
  direction: Direction;
  occurred_at: number;
}

export interface Conversation {
  conversation_key: string;
  seq: number | null;
  tenant_id?: string;
  channel?: string;
  customer_id?: string;
  customer_name?: string | null;
  mode?: "bot" | "human";
  assignee?: string | null;
  closed?: boolean;
  unread_count?: number;
  last_message?: LastMessage | null;
  last_inbound_at?: number | null;
  last_activity_at?: number | null;
  opted_out?: boolean;
}

export interface Message {
  id: string;
  conversation_key: string;
  seq: number | null;
  direction: Direction;
  origin: string;
  operator_id: string | null;
  command_id: string | null;
  provider_message_id: string | null;
  status: Status;
  content: unknown;
  preview: string;
  occurred_at: number;
  error: { code: string; reason: string } | null;
}

export interface StatusUpdate {
  conversation_key: string;
  seq: number | null;
  message_id: string | null;
  command_id: string | null;
  provider_message_id: string | null;
  status: Status;
  error: { code: string; reason: string } | null;
  occurred_at: number;
}

export interface ConversationUpdate extends Conversation {
  partial: boolean;
  change: string;
  event_seq?: number | null;
  erased?: boolean;
}

const RANK: Record<Status, number> = {
  received: 0,
  queued: 0,
  accepted: 1,
  sent: 2,
  delivered: 3,
  read: 4,
  failed: 5,
};

/** Statuses only move forward; failed is terminal. */
export function laterStatus(current: Status, next: Status): Status {
  return RANK[next] > RANK[current] ? next : current;
}

/** The conversation list: snapshots replace older entries, partial updates merge. */
export class ConversationList {
  readonly byKey = new Map<string, Conversation>();

  /** Replace everything with a fetched page (keeping newer live entries). */
  load(conversations: Conversation[]): void {
    for (const conversation of conversations) this.applySnapshot(conversation);
  }

  applySnapshot(snapshot: Conversation): void {
    const existing = this.byKey.get(snapshot.conversation_key);
    if (existing && existing.seq != null && snapshot.seq != null && snapshot.seq < existing.seq) {
      return;
    }
    this.byKey.set(snapshot.conversation_key, { ...existing, ...snapshot });
  }

  apply(update: ConversationUpdate): void {
    if (update.erased) {
      this.byKey.delete(update.conversation_key);
      return;
    }
    const { partial, change: _change, event_seq: _eventSeq, erased: _erased, ...fields } = update;
    if (!partial) {
      this.applySnapshot(fields);
      return;
    }
    const existing = this.byKey.get(update.conversation_key) ?? {
      conversation_key: update.conversation_key,
      seq: null,
    };
    const merged: Conversation = { ...existing };
    for (const [name, value] of Object.entries(fields)) {
      if (name === "seq") continue;
      (merged as unknown as Record<string, unknown>)[name] = value;
    }
    if (fields.seq != null && (existing.seq == null || fields.seq > existing.seq)) {
      merged.seq = fields.seq;
    }
    this.byKey.set(update.conversation_key, merged);
  }

  /** Newest activity first. */
  sorted(filter: (conversation: Conversation) => boolean = () => true): Conversation[] {
    return [...this.byKey.values()]
      .filter(filter)
      .sort(
        (a, b) =>
          (b.last_activity_at ?? b.last_message?.occurred_at ?? 0) -
            (a.last_activity_at ?? a.last_message?.occurred_at ?? 0) ||
          a.conversation_key.localeCompare(b.conversation_key),
      );
  }
}

/** One conversation's thread and what the client knows of its sequence. */
export class Thread {
  readonly messages = new Map<string, Message>();
  private readonly byProviderId = new Map<string, string>();
  /** Highest seq such that everything up to it was applied. */
  lastSeq = 0;
  /** Highest seq seen in any event of this conversation. */
  seenSeq = 0;
  loaded = false;

  constructor(readonly key: string) {}

  /** Apply a message (live or fetched); returns whether a gap was detected. */
  applyMessage(message: Message): boolean {
    const existing = this.messages.get(message.id);
    if (message.provider_message_id) this.byProviderId.set(message.provider_message_id, message.id);
    if (!existing) {
      this.messages.set(message.id, message);
    } else {
      const newer = message.seq != null && (existing.seq == null || message.seq >= existing.seq);
      const merged: Message = newer ? { ...existing, ...message } : { ...message, ...existing };
      merged.status = laterStatus(existing.status, message.status);
      merged.provider_message_id = existing.provider_message_id ?? message.provider_message_id;
      merged.error = merged.status === "failed" ? message.error ?? existing.error : null;
      this.messages.set(message.id, merged);
    }
    return this.observeSeq(message.seq);
  }

  /** Apply a status; returns whether a gap was detected. */
  applyStatus(update: StatusUpdate): boolean {
    if (update.provider_message_id && update.message_id) {
      this.byProviderId.set(update.provider_message_id, update.message_id);
    }
    const id =
      update.message_id ??
      (update.provider_message_id ? this.byProviderId.get(update.provider_message_id) : undefined);
    const message = id ? this.messages.get(id) : undefined;
    if (message) {
      const status = laterStatus(message.status, update.status);
      this.messages.set(message.id, {
        ...message,
        status,
        provider_message_id: message.provider_message_id ?? update.provider_message_id,
        error: status === "failed" ? update.error ?? message.error : message.error,
      });
    }
    return this.observeSeq(update.seq);
  }

  /** Note a seq of this conversation; true when something between lastSeq and it is missing. */
  observeSeq(seq: number | null | undefined): boolean {
    if (seq == null) return false;
    if (seq > this.seenSeq) this.seenSeq = seq;
    if (seq === this.lastSeq + 1) {
      this.lastSeq = seq;
      return false;
    }
    return seq > this.lastSeq + 1;
  }

  /** After a catch-up fetch that started once `seenBefore` had been seen. */
  caughtUp(seenBefore: number, fetchedLastSeq: number): void {
    this.lastSeq = Math.max(this.lastSeq, seenBefore, fetchedLastSeq);
  }

  /** Messages in the order they were written. */
  ordered(): Message[] {
    return [...this.messages.values()].sort(
      (a, b) => a.occurred_at - b.occurred_at || (a.seq ?? 0) - (b.seq ?? 0) || a.id.localeCompare(b.id),
    );
  }

  lastInbound(): Message | undefined {
    return this.ordered()
      .filter((message) => message.direction === "inbound")
      .pop();
  }
}

/** Who is typing, until when. */
export class Typing {
  private readonly until = new Map<string, { label: string; expires: number }>();

  set(conversationKey: string, who: string, label: string, active: boolean, expiresAt: number | null, now: number): void {
    const id = `${conversationKey}\u0000${who}`;
    if (!active || (expiresAt != null && expiresAt <= now)) this.until.delete(id);
    else this.until.set(id, { label, expires: expiresAt ?? now + 6000 });
  }

  who(conversationKey: string, now: number): string[] {
    const labels: string[] = [];
    for (const [id, entry] of this.until) {
      if (entry.expires <= now) {
        this.until.delete(id);
      } else if (id.startsWith(`${conversationKey}\u0000`)) {
        labels.push(entry.label);
      }
    }
    return labels;
  }
}

export interface CampaignProgress {
  conversation_key: string;
  campaign_id: string;
  kind: string;
  counts: {
    audience: number;
    queued: number;
    sent: number;
    delivered: number;
    read: number;
    failed: number;
    skipped: number;
    replied: number;
  };
  reason: string | null;
  occurred_at: number;
}

/** A campaign as the dashboard shows it: the latest totals and the lifecycle state. */
export interface CampaignView extends CampaignProgress {
  /** `created`, `scheduled`, `running`, `paused`, `cancelled`, `completed` or `failed`. */
  state: string;
  /** From the REST list, when known. */
  name?: string | null;
}

const CAMPAIGN_STATES: Record<string, string> = {
  created: "created",
  scheduled: "scheduled",
  started: "running",
  resumed: "running",
  paused: "paused",
  cancelled: "cancelled",
  completed: "completed",
  failed: "failed",
};

/**
 * Apply a `campaign.progress` event: totals come from the newest event (a campaign's events
 * share one Kafka partition, so they arrive in order; an older one never wins); lifecycle
 * kinds set the state, `progress` keeps it (totals keep coming after `completed`), and a
 * `rejected` command changes nothing but the reason shown.
 */
export function applyCampaignEvent(existing: CampaignView | undefined, event: CampaignProgress): CampaignView {
  if (existing && event.occurred_at < existing.occurred_at) return existing;
  const state = CAMPAIGN_STATES[event.kind] ?? existing?.state ?? (event.kind === "progress" ? "running" : "created");
  return {
    ...event,
    name: existing?.name,
    state,
    reason: event.kind === "rejected" ? event.reason : event.reason ?? existing?.reason ?? null,
  };
}

/** Share of a campaign's audience that is done (sent, failed or skipped), 0..1. */
export function campaignDone(progress: CampaignProgress): number {
  const { audience, sent, failed, skipped } = progress.counts;
  if (!audience) return progress.kind === "completed" ? 1 : 0;
  return Math.min(1, (sent + failed + skipped) / audience);
}

/** A one-line preview of a message's content, when the server sent none. */
export function previewOf(message: Message): string {
  if (message.preview) return message.preview;
  const content = message.content as Record<string, { body?: string }> | null;
  return content?.text?.body ?? "";
}

/** A stored event as the explorer lists it (`GET /api/v1/events`, `explorer.event`). */
export interface StoredEvent {
  id: string;
  type: string;
  tenant_id: string;
  conversation_key: string;
  topic: string | null;
  seq: number | null;
  source: string | null;
  occurred_at: number;
  stored_at: number | null;
  summary: string;
  /** Arrived by the live tail (not by a search). */
  live?: boolean;
}

/** The explorer's filters; empty strings and nulls mean "any". */
export interface EventFilter {
  conversation_key: string;
  type: string;
  from: number | null;
  to: number | null;
  text: string;
}

/**
 * Whether a live event belongs in the current result list. The server searches the payload's
 * text fields; the tail only carries the summary, so the client matches the text against what
 * it has (id, key, type, summary): a live row may need a search to be found by a payload field.
 */
export function matchesEventFilter(event: StoredEvent, filter: EventFilter): boolean {
  if (filter.conversation_key && event.conversation_key !== filter.conversation_key.trim()) return false;
  if (filter.type && !filter.type.split(",").includes(event.type)) return false;
  if (filter.from != null && event.occurred_at < filter.from) return false;
  if (filter.to != null && event.occurred_at >= filter.to) return false;
  const text = filter.text.trim().toLowerCase();
  if (text) {
    const haystack = [event.id, event.conversation_key, event.type, event.summary, event.source ?? ""].join("\n").toLowerCase();
    if (!haystack.includes(text)) return false;
  }
  return true;
}

/** The explorer's result list: newest first, each event once, at most `capacity` rows. */
export class EventLog {
  private readonly byId = new Map<string, StoredEvent>();

  constructor(private readonly capacity = 500) {}

  clear(): void {
    this.byId.clear();
  }

  /** Add events (a search page or a live one); a known id keeps its first version. */
  add(events: StoredEvent[]): void {
    for (const event of events) if (!this.byId.has(event.id)) this.byId.set(event.id, event);
    const ordered = this.ordered();
    for (const dropped of ordered.slice(this.capacity)) this.byId.delete(dropped.id);
  }

  ordered(): StoredEvent[] {
    return [...this.byId.values()].sort((a, b) => b.occurred_at - a.occurred_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  get size(): number {
    return this.byId.size;
  }
}
