// Outgoing SRS-style HTTP callbacks (docs/hooks.md): decisions before a session is
// created, notifications after it ends. Nothing here runs on the media path.

export type DecisionEvent = "on_connect" | "on_publish" | "on_play";
export type NotifyEvent = "on_close" | "on_unpublish" | "on_stop" | "on_record" | "on_failover";
export type HookEvent = DecisionEvent | NotifyEvent;

export const HOOK_EVENTS: readonly HookEvent[] = ["on_connect", "on_close", "on_publish", "on_unpublish", "on_play", "on_stop", "on_record", "on_failover"];
const DECISION_EVENTS: readonly HookEvent[] = ["on_connect", "on_publish", "on_play"];

/** How one callback HTTP call ended: "refused" is a decision answered with anything but 0. */
export type HookOutcome = "ok" | "refused" | "error";

/** Callback HTTP calls by event and outcome, every possible pair from zero (for /metrics). */
export type HookCallCounts = Record<HookEvent, Partial<Record<HookOutcome, number>>>;

function zeroCounts(): HookCallCounts {
  const counts = {} as HookCallCounts;
  for (const e of HOOK_EVENTS) counts[e] = DECISION_EVENTS.includes(e) ? { ok: 0, refused: 0, error: 0 } : { ok: 0, error: 0 };
  return counts;
}

export interface HookSettings {
  urls: Partial<Record<HookEvent, string[]>>;
  timeoutMs: number;
  serverId: string;
  /** Attempts for a notification whose receiver is down or answers non-200. */
  notifyAttempts?: number;
}

/** Who a callback is about: SRS's fields with WebRTC meaning. */
export interface HookClient {
  clientId: string;
  ip: string;
  room: string;
  /** The request's query string, "?..." or "" (tokens in it are not sent: see below). */
  param: string;
  tcUrl: string;
  protocol: "whip" | "whep";
}

export interface HookLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface Decision {
  allowed: boolean;
  /** Why it was refused, for the log. */
  reason?: string;
}

/** SRS's body for an event. `token` query parameters are cut from `param`: a callback is not a place for secrets. */
export function hookBody(event: HookEvent, serverId: string, c: HookClient, extra: Record<string, string> = {}): Record<string, string> {
  const param = c.param
    .replace(/^\?/, "")
    .split("&")
    .filter((kv) => kv !== "" && !/^token=/i.test(kv))
    .join("&");
  return {
    action: event,
    server_id: serverId,
    client_id: c.clientId,
    ip: c.ip,
    vhost: "__defaultVhost__",
    app: "live",
    stream: c.room,
    param: param === "" ? "" : `?${param}`,
    tcUrl: c.tcUrl,
    protocol: c.protocol,
    ...extra,
  };
}

/** SRS's rule: HTTP 200 with the integer 0, or JSON {"code":0}. */
export function allowsBody(text: string): boolean {
  const t = text.trim();
  if (t === "0") return true;
  try {
    const parsed: unknown = JSON.parse(t);
    return parsed === 0 || (typeof parsed === "object" && parsed !== null && (parsed as { code?: unknown }).code === 0);
  } catch {
    return false;
  }
}

export class Hooks {
  private readonly pending = new Set<Promise<void>>();
  private readonly aborter = new AbortController();
  private closed = false;
  /** Every call made, notification retries included. */
  readonly calls: HookCallCounts = zeroCounts();

  constructor(
    private readonly settings: HookSettings,
    private readonly log: HookLogger,
  ) {}

  has(event: HookEvent): boolean {
    return (this.settings.urls[event]?.length ?? 0) > 0;
  }

  get enabled(): boolean {
    return HOOK_EVENTS.some((e) => this.has(e));
  }

  /**
   * Asks every URL of each event in order; the first refusal, non-200, timeout or refused
   * connection decides "no". Events without URLs allow.
   */
  async decide(events: DecisionEvent[], client: HookClient): Promise<Decision> {
    for (const event of events) {
      for (const url of this.settings.urls[event] ?? []) {
        const outcome = await this.post(url, hookBody(event, this.settings.serverId, client), this.settings.timeoutMs);
        const allowed = outcome.ok && allowsBody(outcome.text);
        this.count(event, allowed ? "ok" : outcome.ok ? "refused" : "error");
        if (!allowed) {
          const reason = outcome.ok ? `${event} answered ${JSON.stringify(outcome.text.slice(0, 80))}` : `${event}: ${outcome.error}`;
          this.log.info({ room: client.room, session: client.clientId, url, reason }, "hook refused session");
          return { allowed: false, reason };
        }
      }
    }
    return { allowed: true };
  }

  /** Fire-and-forget notification, retried a few times with back-off; answers are only logged. */
  notify(event: NotifyEvent, client: HookClient, extra: Record<string, string> = {}): void {
    const urls = this.settings.urls[event] ?? [];
    if (urls.length === 0 || this.closed) return;
    const body = hookBody(event, this.settings.serverId, client, extra);
    const task = (async () => {
      for (const url of urls) {
        const attempts = this.settings.notifyAttempts ?? 3;
        for (let attempt = 1; attempt <= attempts; attempt++) {
          const outcome = await this.post(url, body, this.settings.timeoutMs);
          const delivered = outcome.ok && outcome.status === 200;
          this.count(event, delivered ? "ok" : "error");
          if (delivered) break;
          const error = outcome.ok ? `HTTP ${outcome.status}` : outcome.error;
          this.log.warn({ room: client.room, session: client.clientId, event, url, attempt, error }, "hook notification failed");
          if (attempt < attempts && !this.closed) await delay(500 * 2 ** (attempt - 1), this.aborter.signal);
          if (this.closed) return;
        }
      }
    })();
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  private count(event: HookEvent, outcome: HookOutcome): void {
    const counts = this.calls[event];
    counts[outcome] = (counts[outcome] ?? 0) + 1;
  }

  private async post(url: string, body: object, timeoutMs: number): Promise<{ ok: true; status: number; text: string } | { ok: false; error: string }> {
    // A signal of its own per request, ended by its timeout or by close(). Not AbortSignal.any
    // with the long-lived close signal: Node 20 keeps a reference in that signal per call, for
    // the life of the server (four per session with every hook on).
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), timeoutMs);
    timer.unref();
    const closing = this.aborter.signal;
    const onClose = (): void => controller.abort(closing.reason);
    closing.addEventListener("abort", onClose, { once: true });
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
        redirect: "error",
      });
      const text = await res.text();
      if (res.status !== 200) return { ok: false, error: `HTTP ${res.status}` };
      return { ok: true, status: res.status, text };
    } catch (err) {
      const e = err as Error;
      return { ok: false, error: e.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : e.message };
    } finally {
      clearTimeout(timer);
      closing.removeEventListener("abort", onClose);
    }
  }

  /** Lets notifications already sent finish (at most `graceMs`), then abandons the rest. Idempotent. */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = Promise.all([...this.pending]);
    const timer = delay(graceMs);
    await Promise.race([all, timer]);
    this.aborter.abort();
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // The listener goes when the delay ends either way: the close signal outlives every retry.
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    t.unref();
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Callbacks bound to the session lifecycle: decide before a WHIP/WHEP session exists, then send
 * its end notifications exactly once, whatever ends it.
 */
export class SessionHooks {
  private readonly live = new Map<string, HookClient>();

  constructor(readonly hooks: Hooks) {}

  /** on_connect then on_publish (WHIP) or on_play (WHEP). */
  decide(client: HookClient): Promise<Decision> {
    return this.hooks.decide(["on_connect", client.protocol === "whip" ? "on_publish" : "on_play"], client);
  }

  started(client: HookClient): void {
    this.live.set(client.clientId, client);
  }

  /** A session that was allowed but never came to be still closes its connection. */
  failed(client: HookClient): void {
    this.hooks.notify("on_close", client);
  }

  ended(sessionId: string): void {
    const client = this.live.get(sessionId);
    if (!client) return;
    this.live.delete(sessionId);
    this.hooks.notify(client.protocol === "whip" ? "on_unpublish" : "on_stop", client);
    this.hooks.notify("on_close", client);
  }

  /** A room's live source changed role (hot standby): `source` is the one forwarded now, `reason` why. */
  switched(room: string, source: "primary" | "backup", reason: string): void {
    this.hooks.notify("on_failover", { clientId: "", ip: "", param: "", tcUrl: "", protocol: "whip", room }, { source, reason });
  }

  recorded(client: Pick<HookClient, "room">, file: string): void {
    this.hooks.notify("on_record", { clientId: "", ip: "", param: "", tcUrl: "", protocol: "whip", ...client }, { file });
  }
}
