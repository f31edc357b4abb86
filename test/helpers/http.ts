// Raw WHIP/WHEP HTTP exchanges, for the tests that look at statuses and headers themselves.

export interface SdpResponse {
  status: number;
  /** The response body: the SDP answer on 201, a JSON error otherwise. */
  body: string;
  headers: Headers;
  /** Location resolved against the request URL (absolute), when present. */
  location?: string;
  etag?: string;
  /** Every Link header value, split at top-level commas. */
  links: string[];
  /** The parsed `{"error": …}` message of an error response, when it has one. */
  error?: string;
}

export interface SdpRequestOptions {
  token?: string;
  /** Sent as X-Auth-Token instead of Authorization: Bearer. */
  tokenHeader?: "authorization" | "x-auth-token";
  headers?: Record<string, string>;
  contentType?: string;
  timeoutMs?: number;
}

function authHeaders(opts: SdpRequestOptions): Record<string, string> {
  const h: Record<string, string> = {};
  if (opts.token !== undefined) {
    if (opts.tokenHeader === "x-auth-token") h["X-Auth-Token"] = opts.token;
    else h.Authorization = `Bearer ${opts.token}`;
  }
  return h;
}

function splitLinks(value: string | null): string[] {
  if (!value) return [];
  // fetch joins repeated headers with ", "; a Link value contains no comma outside <…> in practice.
  return value
    .split(/,(?=\s*<)/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function errorMessage(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null && typeof (parsed as { error?: unknown }).error === "string") {
      return (parsed as { error: string }).error;
    }
  } catch {
    // not JSON
  }
  return undefined;
}

export async function toSdpResponse(url: string, res: Response): Promise<SdpResponse> {
  const body = await res.text();
  const loc = res.headers.get("location");
  return {
    status: res.status,
    body,
    headers: res.headers,
    location: loc === null ? undefined : new URL(loc, url).toString(),
    etag: res.headers.get("etag") ?? undefined,
    links: splitLinks(res.headers.get("link")),
    error: res.status >= 400 ? errorMessage(body) : undefined,
  };
}

/** POSTs an SDP offer (Content-Type application/sdp unless told otherwise); never throws on a status. */
export async function postSdp(url: string, sdp: string, opts: SdpRequestOptions = {}): Promise<SdpResponse> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": opts.contentType ?? "application/sdp", ...authHeaders(opts), ...opts.headers },
    body: sdp,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
  });
  return toSdpResponse(url, res);
}

/** DELETEs a session resource; returns the status (never throws on a status). */
export async function deleteSession(location: string, opts: SdpRequestOptions = {}): Promise<number> {
  const res = await fetch(location, {
    method: "DELETE",
    headers: { ...authHeaders(opts), ...opts.headers },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Thrown by publish()/play() when the server does not answer 201. */
export class SdpStatusError extends Error {
  constructor(
    readonly url: string,
    readonly response: SdpResponse,
  ) {
    super(`POST ${url} answered ${response.status}${response.body ? `: ${response.body.slice(0, 300)}` : ""}`);
    this.name = "SdpStatusError";
  }

  get status(): number {
    return this.response.status;
  }
}

// ---- JSON routes --------------------------------------------------------------------------------

export interface JsonResponse {
  status: number;
  /** The parsed body; undefined when it is not JSON. Loose on purpose: tests pick fields by name. */
  // biome-ignore lint/suspicious/noExplicitAny: each test reads the JSON answer by the shape it expects
  json: any;
  text: string;
}

/** A request to a JSON route: `body` is sent as JSON (a string as it is), the answer parsed when it can be. */
export async function requestJson(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** Names of the rooms /api/rooms lists with a publisher. */
export async function liveRooms(base: string): Promise<string[]> {
  const list = (await (await fetch(`${base}/api/rooms`)).json()) as { name: string; hasPublisher: boolean }[];
  return list.filter((r) => r.hasPublisher).map((r) => r.name);
}
