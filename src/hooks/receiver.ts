// Receiving publish callbacks (docs/hooks.md, "SRS callback receiver"): an RTMP server tells us a
// stream started or stopped, and the stream is pulled into the room of the same name (Ingests) or
// the pull stops. The routes that carry them are in src/http/srs-callbacks.ts.
//
// Two dialects:
// - SRS http_hooks: JSON {action, client_id, ip, vhost, app, tcUrl, stream, param, server_id};
//   SRS wants an integer answer, 0 = allow, anything else refuses the client.
// - nginx-rtmp on_publish / on_publish_done: a form (call=publish|publish_done, app, name, addr,
//   tcurl, …); nginx-rtmp allows on any 2xx and refuses on 4xx/5xx.
//
// Callbacks come from the network and start FFmpeg processes that connect where the body says:
// stream names follow the room-name rule, app names are plain path segments, the URL goes through
// the ingest URL policy (INGEST_ALLOWED_HOSTS), and SRS_CALLBACK_SECRET (?secret=) is checked first.
// With token auth on and no secret configured, callbacks are refused: they would otherwise let
// anybody create rooms without a publish token.

import type { Logger } from "../logger.js";
import { tokenMatches } from "../auth/auth.js";
import type { IngestOrigin, Ingests } from "../bridges/ingest.js";
import { isDomainError } from "../errors.js";
import { ROOM_NAME_RE } from "../config.js";

/** Non-zero answers to SRS, by cause. */
export const SRS_CODES = {
  ok: 0,
  /** Malformed body, unknown action, hostile names or URL. */
  invalid: 1,
  /** The room already has a publisher (WebRTC, or an ingest the API started). */
  busy: 2,
  /** Starting the ingest failed (shutting down, internal error). */
  failed: 3,
} as const;

export type CallbackDialect = "srs" | "nginx-rtmp";

export type CallbackEvent =
  | { dialect: CallbackDialect; action: "publish"; room: string; url: string; client?: string }
  | { dialect: CallbackDialect; action: "unpublish"; room: string; client?: string }
  /** nginx-rtmp's periodic on_update for a publish: nothing to do, allowed. */
  | { dialect: CallbackDialect; action: "update"; room?: string };

export type ParseResult = { ok: true; event: CallbackEvent } | { ok: false; reason: string };

/** One or more plain path segments: "live", "live/sub"; no dot segments. */
const APP_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}(?:\/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}){0,3}$/;
/** SRS's param: "" or "?k=v&…", no whitespace, fragment or control characters. */
const PARAM_RE = /^(?:\?[^\s#\x00-\x1f\x7f]{0,1023})?$/;
const MAX_TCURL = 1024;

function clip(v: unknown): string {
  return typeof v === "string" ? v.slice(0, 80) : typeof v === "number" ? String(v) : typeof v;
}

/** `rtmp[s]://<host[:port] of tcUrl>/<app>/<stream><param>`, or the reason it cannot be built. */
export function pullUrl(tcUrl: unknown, app: unknown, stream: string, param = ""): { url: string } | { reason: string } {
  if (typeof tcUrl !== "string" || tcUrl === "" || tcUrl.length > MAX_TCURL) return { reason: "missing or over-long tcUrl" };
  if (/[\s\x00-\x1f\x7f]/.test(tcUrl)) return { reason: "tcUrl contains whitespace or control characters" };
  const m = /^(rtmps?):\/\//i.exec(tcUrl);
  if (!m) return { reason: `tcUrl is not an rtmp:// URL: "${clip(tcUrl)}"` };
  let host: string;
  try {
    host = new URL(tcUrl).host;
  } catch {
    return { reason: `tcUrl cannot be parsed: "${clip(tcUrl)}"` };
  }
  if (host === "" || host.includes("@")) return { reason: `tcUrl has no usable host: "${clip(tcUrl)}"` };
  if (typeof app !== "string" || !APP_RE.test(app)) return { reason: `invalid app "${clip(app)}"` };
  if (!PARAM_RE.test(param)) return { reason: `invalid param "${clip(param)}"` };
  return { url: `${m[1].toLowerCase()}://${host}/${app}/${stream}${param}` };
}

function streamName(v: unknown): string | undefined {
  return typeof v === "string" && ROOM_NAME_RE.test(v) ? v : undefined;
}

/** An SRS http_hooks body (JSON text). */
export function parseSrsCallback(text: string): ParseResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { ok: false, reason: "malformed JSON" };
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { ok: false, reason: "body is not a JSON object" };
  const b = body as Record<string, unknown>;
  const action = b.action;
  if (typeof action !== "string") return { ok: false, reason: "missing action" };
  const client = typeof b.client_id === "string" || typeof b.client_id === "number" ? String(b.client_id).slice(0, 64) : undefined;
  if (action !== "on_publish" && action !== "on_unpublish") return { ok: false, reason: `unsupported action "${clip(action)}"` };
  const room = streamName(b.stream);
  if (!room) return { ok: false, reason: `invalid stream name "${clip(b.stream)}" (must match ${ROOM_NAME_RE.source})` };
  if (action === "on_unpublish") return { ok: true, event: { dialect: "srs", action: "unpublish", room, client } };
  const param = b.param === undefined || b.param === null ? "" : b.param;
  if (typeof param !== "string") return { ok: false, reason: "param must be a string" };
  const built = pullUrl(b.tcUrl, b.app, room, param);
  if ("reason" in built) return { ok: false, reason: built.reason };
  return { ok: true, event: { dialect: "srs", action: "publish", room, url: built.url, client } };
}

/** An nginx-rtmp notification (form fields). */
export function parseNginxCallback(form: URLSearchParams): ParseResult {
  const call = form.get("call");
  const client = form.get("clientid")?.slice(0, 64) ?? undefined;
  if (call === "update_publish") return { ok: true, event: { dialect: "nginx-rtmp", action: "update", room: streamName(form.get("name")) } };
  if (call !== "publish" && call !== "publish_done") return { ok: false, reason: `unsupported call "${clip(call ?? "none")}"` };
  const room = streamName(form.get("name"));
  if (!room) return { ok: false, reason: `invalid stream name "${clip(form.get("name") ?? "")}" (must match ${ROOM_NAME_RE.source})` };
  if (call === "publish_done") return { ok: true, event: { dialect: "nginx-rtmp", action: "unpublish", room, client } };
  const built = pullUrl(form.get("tcurl"), form.get("app"), room);
  if ("reason" in built) return { ok: false, reason: built.reason };
  return { ok: true, event: { dialect: "nginx-rtmp", action: "publish", room, url: built.url, client } };
}

/** Which dialect a request speaks: nginx-rtmp sends forms, SRS JSON (sometimes with an odd Content-Type). */
export function dialectOf(contentType: string | undefined, text: string): CallbackDialect {
  const type = (contentType ?? "").split(";")[0].trim().toLowerCase();
  if (type === "application/x-www-form-urlencoded" && !text.trimStart().startsWith("{")) return "nginx-rtmp";
  return "srs";
}

export interface ReceiverDeps {
  ingests: Ingests;
  log: Logger;
  /** SRS_CALLBACK_SECRET: required as ?secret= when set. */
  secret?: string;
  /** Token auth is on: without a secret, callbacks are refused (they would bypass publish tokens). */
  authEnabled: boolean;
}

/** What the receiver decided, before it is written in the caller's dialect. */
export interface CallbackOutcome {
  allow: boolean;
  code: number;
  reason?: string;
}

export class CallbackReceiver {
  constructor(private readonly deps: ReceiverDeps) {}

  /** Acts on one callback body; never throws. */
  async handle(dialect: CallbackDialect, text: string, ip: string): Promise<CallbackOutcome> {
    const parsed = dialect === "srs" ? parseSrsCallback(text) : parseNginxCallback(new URLSearchParams(text));
    if (!parsed.ok) return this.refuse(dialect, SRS_CODES.invalid, parsed.reason, ip);
    const ev = parsed.event;
    const origin: IngestOrigin = dialect;
    const { ingests, log } = this.deps;
    if (ev.action === "update") return { allow: true, code: SRS_CODES.ok };
    if (ev.action === "unpublish") {
      const stopped = await ingests.stop(ev.room, { origins: ["srs", "nginx-rtmp"], reason: "publisher-left" });
      log.info({ callback: dialect, room: ev.room, client: ev.client, ip, stopped: stopped?.id ?? null }, "callback: unpublish");
      return { allow: true, code: SRS_CODES.ok };
    }
    try {
      // A new publish of a stream whose earlier callback ingest still runs (a reconnecting encoder
      // whose unpublish was lost) replaces it; an API ingest or a WebRTC publisher keeps the room.
      const info = await ingests.start(ev.room, ev.url, { origin, replaceCallbackIngest: true });
      log.info({ callback: dialect, room: ev.room, client: ev.client, ip, ingest: info.id, source: info.url }, "callback: publish, ingest started");
      return { allow: true, code: SRS_CODES.ok };
    } catch (err) {
      if (isDomainError(err)) {
        const code = err.kind === "conflict" ? SRS_CODES.busy : err.kind === "invalid_input" ? SRS_CODES.invalid : SRS_CODES.failed;
        return this.refuse(dialect, code, `${ev.room}: ${err.message}`, ip);
      }
      log.error({ callback: dialect, room: ev.room, err: (err as Error).message }, "callback: ingest failed");
      return this.refuse(dialect, SRS_CODES.failed, "internal error", ip);
    }
  }

  private refuse(dialect: CallbackDialect, code: number, reason: string, ip: string): CallbackOutcome {
    this.deps.log.warn({ callback: dialect, ip, code, reason }, "callback refused");
    return { allow: false, code, reason };
  }

  /** ?secret= check; undefined when the request may go on, else the reason it may not. */
  checkSecret(query: unknown): string | undefined {
    const { secret, authEnabled } = this.deps;
    if (secret === undefined) return authEnabled ? "callbacks need SRS_CALLBACK_SECRET when token auth is on" : undefined;
    const given = (query as Record<string, unknown> | undefined)?.secret;
    if (typeof given !== "string" || !tokenMatches(given, secret)) return "wrong or missing secret";
    return undefined;
  }
}
