// Shared helpers for the WHIP/WHEP pages: bootstrap, negotiation, errors, formatting.

export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TOKEN_KEY = "whipsfu.token";
const ICE_CAP_MS = 2000;

/** An HTTP failure with a sentence meant for people in `message`. */
export class HttpError extends Error {
  constructor(status, serverMessage, context) {
    super(sentenceFor(status, serverMessage, context));
    this.name = "HttpError";
    this.status = status;
    this.serverMessage = serverMessage;
  }
}

/** Status code (plus the server's `{"error"}` text) → plain sentence. */
export function sentenceFor(status, serverMessage = "", context = "stream") {
  switch (status) {
    case 400:
      if (/room name/i.test(serverMessage)) return "That room name is not valid: use letters, digits, - or _ (at most 64).";
      if (/sdp/i.test(serverMessage)) return "The server could not read the browser's offer.";
      return "The request was not valid.";
    case 401:
      if (context === "admin") return "The admin token was not accepted.";
      if (context === "records") return "A valid token is needed to see the recordings.";
      return "This room needs a valid token.";
    case 403:
      return "The room is full.";
    case 404:
      if (context === "admin") return "That room is already gone.";
      if (context === "publish") return "The server has no publish route here.";
      return "Nobody is publishing in this room yet.";
    case 409:
      return "Someone is already publishing in this room.";
    case 413:
      return "The browser's offer is too large for the server.";
    case 415:
      return "The server did not accept the request format.";
    case 422:
      return serverMessage ? capitalize(serverMessage) + "." : "The server cannot forward this codec.";
    case 429:
      return "Too many requests — wait a moment and try again.";
    default:
      if (status >= 500) return "The server ran into a problem. Try again shortly.";
      return `The server answered with status ${status}.`;
  }
}

/** Any thrown value → sentence (media permission errors, network errors, HTTP errors). */
export function describeError(err) {
  if (!err) return "Something went wrong.";
  if (err instanceof HttpError) return err.message;
  switch (err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Permission to use the camera, microphone or screen was denied. Allow it in the browser and try again.";
    case "NotFoundError":
      return "No camera or microphone was found.";
    case "NotReadableError":
    case "AbortError":
      return "The camera or microphone is busy or could not be started (is another app using it?).";
    case "OverconstrainedError":
      return "The camera cannot provide the selected resolution.";
    case "TypeError":
      if (/fetch|network|load/i.test(err.message)) return "Cannot reach the server. Check the connection.";
  }
  if (typeof navigator !== "undefined" && !navigator.mediaDevices && /mediaDevices/.test(String(err.message))) {
    return "Camera access needs a secure page (https or localhost).";
  }
  return err.message ? capitalize(String(err.message)) : "Something went wrong.";
}

function capitalize(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

async function errorText(res) {
  try {
    const body = await res.json();
    return typeof body?.error === "string" ? body.error : "";
  } catch {
    return "";
  }
}

/** GET JSON from the API, with an optional bearer token; throws HttpError. */
export async function getJson(path, token, context) {
  const res = await fetch(path, { headers: authHeaders(token), cache: "no-store" });
  if (!res.ok) throw new HttpError(res.status, await errorText(res), context);
  return res.json();
}

export function authHeaders(token, extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

let bootstrapPromise;
/** `/api/bootstrap`, fetched once; falls back to "no auth, no ICE servers" when unreachable. */
export function getBootstrap() {
  bootstrapPromise ??= getJson("/api/bootstrap").catch(() => ({
    authEnabled: false,
    recordEnabled: false,
    iceServers: [],
    features: {},
    unreachable: true,
  }));
  return bootstrapPromise;
}

export async function createPeer() {
  const { iceServers = [] } = await getBootstrap();
  return new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
}

/** Resolves when ICE gathering completes, or after `capMs` — whatever comes first. */
export function waitIceGathering(pc, capMs = ICE_CAP_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const onCandidate = (e) => e.candidate === null && done();
    const timer = setTimeout(done, capMs);
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

/**
 * WHIP/WHEP offer/answer: create the offer, gather candidates (2 s cap), POST it, apply the
 * answer. Returns the absolute session resource URL (the `Location`, resolved against the endpoint).
 */
export async function negotiate(pc, endpoint, token, context = "stream") {
  const url = new URL(endpoint, location.href).href;
  await pc.setLocalDescription(await pc.createOffer());
  await waitIceGathering(pc);
  const res = await fetch(url, {
    method: "POST",
    headers: authHeaders(token, { "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201 && res.status !== 200) {
    throw new HttpError(res.status, await errorText(res), context);
  }
  const answer = await res.text();
  const loc = res.headers.get("Location");
  if (pc.signalingState === "closed") throw new Error("Stopped.");
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  return loc ? new URL(loc, url).href : null;
}

/** DELETE the session resource; never throws. `keepalive` lets it outlive the page. */
export async function deleteSession(resource, token, keepalive = false) {
  if (!resource) return;
  try {
    await fetch(resource, { method: "DELETE", headers: authHeaders(token), keepalive });
  } catch {
    // The server may be gone already; nothing left to end.
  }
}

export const whipUrl = (room) => `/api/whip/publish/${encodeURIComponent(room)}`;
export const whepUrl = (room) => `/api/whep/play/${encodeURIComponent(room)}`;

// ---- page helpers ----

export const $ = (sel, root = document) => root.querySelector(sel);

/** Tiny element builder: h("a", { href, class: "btn" }, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

export function queryParam(name) {
  return new URLSearchParams(location.search).get(name) ?? "";
}

/** The stream token shared by the pages of this tab (a `?token=` in the URL wins). */
export function savedToken() {
  const fromUrl = queryParam("token");
  if (fromUrl) saveToken(fromUrl);
  return fromUrl || sessionStorage.getItem(TOKEN_KEY) || "";
}

export function saveToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Fills the token input (kept in sessionStorage) and shows its row once bootstrap says auth is on. */
export async function setupTokenField(input, row) {
  input.value = savedToken();
  input.addEventListener("input", () => saveToken(input.value.trim()));
  const boot = await getBootstrap();
  row.hidden = !boot.authEnabled && !input.value;
  return boot;
}

/** Status pill + error line shared by the pages. */
export function setStatus(state, status, error = "") {
  state.status = status;
  state.error = error;
  const pill = $("#status");
  if (pill) {
    pill.textContent = status;
    pill.dataset.status = status;
  }
  const box = $("#error");
  if (box) {
    box.textContent = error;
    box.hidden = !error;
  }
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { style: "position:fixed;opacity:0" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  if (button) {
    const old = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = old), 1200);
  }
}

export function humanBytes(n) {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

export function humanBitrate(kbps) {
  if (!Number.isFinite(kbps)) return "–";
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(2)} Mb/s` : `${Math.round(kbps)} kb/s`;
}

export function humanTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "–" : d.toLocaleString();
}

export function timeAgo(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (!Number.isFinite(s)) return "";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Rate meter: feed it a byte counter and a timestamp (ms), get kbit/s since the last call. */
export function rateMeter() {
  let last;
  return (bytes, ts) => {
    const prev = last;
    last = { bytes, ts };
    if (!prev || ts <= prev.ts || bytes < prev.bytes) return 0;
    return ((bytes - prev.bytes) * 8) / (ts - prev.ts);
  };
}
