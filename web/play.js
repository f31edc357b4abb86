// WHEP player: recvonly video+audio, stats overlay, playback reports to the server, DELETE on
// unload. It follows the session's WHEP events (live, waiting for the publisher, viewer count,
// reconnect), keeps its session while the publisher reconnects, and when the session is lost
// starts a new one with back-off.
import {
  $,
  ROOM_RE,
  HttpError,
  createPeer,
  negotiate,
  deleteSession,
  whepUrl,
  describeError,
  setStatus,
  setupTokenField,
  queryParam,
  humanBitrate,
  rateMeter,
  authHeaders,
} from "./lib.js";

const RETRY_MS = 3000;
// A lost session is retried after 0.5, 1, 2, 4, 8 then every 15 s.
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const STALL_S = 6; // seconds without incoming bytes before reconnecting
const CONNECT_S = 15; // seconds allowed to establish ICE/DTLS
const RETRY_STATUSES = new Set([404, 429, 500, 502, 503, 504]);
const REPORT_EVERY = 2; // stats ticks (seconds) between two playback reports (docs/api.md, "Player statistics")

const state = (window.__state = {
  page: "play",
  room: "",
  status: "idle",
  error: "",
  retrying: false,
  retries: 0,
  resource: null,
  framesDecoded: 0,
  framesDropped: 0,
  width: 0,
  height: 0,
  fps: 0,
  bitrateKbps: 0,
  packetsReceived: 0,
  packetsLost: 0,
  packetLoss: 0,
  latencyMs: null,
  hasAudio: false,
  muted: true,
  audioPacketsReceived: 0,
  codec: "",
  mode: "webrtc",
  hlsPlaying: false,
  frozenSeconds: 0,
  reportsSent: 0,
  reportsAccepted: 0,
  // From the WHEP events: "live" or "waiting" (no publication), the audience, event streams open.
  publisher: null,
  viewers: null,
  events: [],
  eventStream: false,
  // WHEP sessions (RTCPeerConnections) this page has made.
  sessions: 0,
});

const video = $("#video");
const roomInput = $("#room");
const tokenInput = $("#token");
const getToken = () => tokenInput.value.trim();
let session = null; // { pc, resource, token, timer, stall, downSince, ticks, reports, frames, framesAt }
let generation = 0;
let retryTimer = 0;

roomInput.value = queryParam("room");
function syncRoom() {
  const room = roomInput.value.trim();
  const valid = ROOM_RE.test(room);
  $("#room-title").textContent = valid ? room : "";
  $("#publish-link").href = valid ? `publish.html?room=${encodeURIComponent(room)}` : "publish.html";
  document.title = `Watch ${valid ? room + " " : ""}· WHIP/WHEP SFU`;
}
roomInput.addEventListener("input", syncRoom);
syncRoom();

// ---- connect / retry / stop ----
function teardown() {
  const s = session;
  session = null;
  state.resource = null;
  if (!s) return;
  clearInterval(s.timer);
  stopEvents(s);
  deleteSession(s.resource, s.token);
  s.pc.close();
}

function scheduleRetry(status, error, delayMs = RETRY_MS) {
  teardown();
  state.retrying = true;
  setStatus(state, status, error);
  clearTimeout(retryTimer);
  const gen = generation;
  retryTimer = setTimeout(() => gen === generation && connect(true), delayMs);
}

/** The wait before the next try at a lost session: doubling from BACKOFF_MIN_MS, with jitter. */
function backoff() {
  const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(state.retries, 5));
  return Math.round(ms * (0.8 + 0.4 * Math.random()));
}

async function connect(isRetry = false) {
  clearTimeout(retryTimer);
  teardown();
  stopHls();
  const room = roomInput.value.trim();
  if (!ROOM_RE.test(room)) {
    setStatus(state, "error", "That room name is not valid: use letters, digits, - or _ (at most 64).");
    return;
  }
  if (!isRetry) {
    state.retries = 0;
    history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
  } else state.retries++;
  const gen = ++generation;
  state.room = room;
  $("#start").disabled = true;
  $("#stop").disabled = false;
  if (!isRetry) setStatus(state, "connecting");
  const token = getToken();
  let s;
  try {
    const pc = await createPeer();
    if (gen !== generation) return pc.close();
    s = session = {
      pc,
      resource: null,
      token,
      timer: 0,
      stall: 0,
      downSince: 0,
      ticks: 0,
      reports: true,
      frames: 0,
      framesAt: 0,
      events: null,
      publisherLive: true,
    };
    state.sessions++;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (e) => {
      stream.addTrack(e.track);
      video.srcObject = stream;
      state.hasAudio = stream.getAudioTracks().length > 0;
      video.play().catch(() => {});
    });
    pc.addEventListener("connectionstatechange", () => gen === generation && onConnection(s));
    s.resource = await negotiate(pc, whepUrl(room), token, "play");
    if (gen !== generation) return deleteSession(s.resource, token);
    state.resource = s.resource;
    s.timer = setInterval(() => updateStats(s, gen), 1000);
    followEvents(s, gen);
  } catch (err) {
    if (gen !== generation) return;
    // Refused for this viewer (full room, no codec in common, server at capacity) or no WebRTC in
    // this browser: the room's HLS output, when it has one, still plays.
    if ((err instanceof HttpError && HLS_FALLBACK_STATUSES.has(err.status)) || !("RTCPeerConnection" in window)) {
      if (await playHls(room, token, gen, describeError(err))) return;
    }
    const retry = err instanceof HttpError ? RETRY_STATUSES.has(err.status) : err.name === "TypeError";
    if (retry) {
      scheduleRetry(err.status === 404 ? "waiting" : "retrying", describeError(err));
    } else stop(describeError(err));
  }
}

// ---- HLS fallback (hls.js from the server's own /vendor/, never a CDN) ----
const HLS_FALLBACK_STATUSES = new Set([403, 422, 503]);
let hls = null;

/** Plays /hls/{room}/stream.m3u8 when it exists; false when the room has no HLS output. */
async function playHls(room, token, gen, why) {
  const url = `/hls/${encodeURIComponent(room)}/stream.m3u8`;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const probe = await fetch(url, { headers }).catch(() => null);
  if (!probe?.ok || gen !== generation) return false;
  teardown();
  // hls.js wherever Media Source Extensions exist (every desktop browser); the element's own HLS
  // only where they do not (iPhone Safari): some Chromium builds claim HLS support they lack.
  const { default: Hls } = await import("/vendor/hls/hls.min.mjs");
  if (gen !== generation) return false;
  if (Hls.isSupported()) {
    hls = new Hls({ xhrSetup: (xhr) => token && xhr.setRequestHeader("Authorization", `Bearer ${token}`) });
    // Start once the playlist is read: a play() before any media may be refused by the browser.
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = token ? `${url}?token=${encodeURIComponent(token)}` : url;
  } else {
    return false;
  }
  video.play().catch(() => {});
  state.mode = "hls";
  state.retrying = false;
  $("#placeholder").hidden = true;
  setStatus(state, "live", `Playing the HLS stream instead (a few seconds behind): ${why}`);
  video.addEventListener(
    "loadeddata",
    () => {
      state.hlsPlaying = true;
    },
    { once: true },
  );
  return true;
}

function stopHls() {
  hls?.destroy();
  hls = null;
  if (state.mode === "hls") video.removeAttribute("src");
  state.mode = "webrtc";
  state.hlsPlaying = false;
}

function onConnection(s) {
  const st = s.pc.connectionState;
  if (st === "connected") {
    s.downSince = 0;
    state.retrying = false;
    state.retries = 0;
    if (s.publisherLive) {
      setStatus(state, "live");
      $("#placeholder").hidden = true;
    } else setStatus(state, "waiting", "Waiting for the publisher…");
  } else if (st === "failed") {
    // UDP blocked or the network went away: HLS over plain HTTP may still get through.
    const gen = generation;
    void playHls(state.room, s.token, gen, "the WebRTC connection failed.").then((ok) => {
      if (!ok && gen === generation) scheduleRetry("reconnecting", "The connection was lost. Reconnecting…", backoff());
    });
  } else if (st === "disconnected") {
    s.downSince = Date.now();
  }
}

function stop(error = "") {
  generation++;
  clearTimeout(retryTimer);
  teardown();
  stopHls();
  video.srcObject = null;
  $("#placeholder").hidden = false;
  $("#stats").hidden = true;
  state.retrying = false;
  state.resource = null;
  $("#start").disabled = false;
  $("#stop").disabled = true;
  setStatus(state, error ? "error" : "stopped", error);
}

// ---- stats overlay ----
const meter = rateMeter();
let lastJitter = null;
async function updateStats(s, gen) {
  const report = await s.pc.getStats();
  if (gen !== generation) return;
  let bytes = 0,
    received = 0,
    lost = 0,
    ts = 0,
    v = null,
    a = null,
    rtt;
  report.forEach((r) => {
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime;
    if (r.type !== "inbound-rtp") return;
    bytes += r.bytesReceived ?? 0;
    received += r.packetsReceived ?? 0;
    lost += Math.max(0, r.packetsLost ?? 0);
    ts = Math.max(ts, r.timestamp);
    if (r.kind === "video") v = r;
    if (r.kind === "audio") a = r;
  });
  const kbps = meter(bytes, ts);
  // Latency: jitter buffer delay per emitted frame over the last second (cumulative as fallback).
  let latency = null;
  if (v?.jitterBufferEmittedCount) {
    const d = lastJitter && v.jitterBufferEmittedCount - lastJitter.count;
    latency = d > 0 ? (v.jitterBufferDelay - lastJitter.delay) / d : v.jitterBufferDelay / v.jitterBufferEmittedCount;
    lastJitter = { delay: v.jitterBufferDelay, count: v.jitterBufferEmittedCount };
  }
  Object.assign(state, {
    framesDecoded: v?.framesDecoded ?? 0,
    framesDropped: v?.framesDropped ?? 0,
    width: v?.frameWidth ?? video.videoWidth ?? 0,
    height: v?.frameHeight ?? video.videoHeight ?? 0,
    fps: Math.round(v?.framesPerSecond ?? 0),
    bitrateKbps: Math.round(kbps),
    packetsReceived: received,
    packetsLost: lost,
    audioPacketsReceived: a?.packetsReceived ?? 0,
    codec: v ? (report.get(v.codecId)?.mimeType ?? "").replace(/^video\//, "") : "",
    packetLoss: received + lost > 0 ? +((100 * lost) / (received + lost)).toFixed(2) : 0,
    latencyMs: latency === null ? null : Math.round(latency * 1000),
    muted: video.muted,
  });
  const overlay = $("#stats");
  overlay.hidden = false;
  // biome-ignore lint/performance/useDomNodeTextContent: innerText turns the lines into line breaks
  overlay.innerText = [
    `${state.width ? `${state.width}×${state.height}` : "no video"} · ${state.fps} fps`,
    `${humanBitrate(kbps)} · loss ${state.packetLoss.toFixed(1)} %`,
    `latency ${state.latencyMs ?? "–"} ms`,
  ].join("\n");
  if (state.framesDecoded > 0) $("#placeholder").hidden = true;

  // A picture that stopped moving: frames decoded before, none since the last tick.
  const now = performance.now();
  if (!v || state.framesDecoded > s.frames) s.framesAt = now;
  state.frozenSeconds = v && state.framesDecoded > 0 && state.framesDecoded === s.frames ? +((now - s.framesAt) / 1000).toFixed(1) : 0;
  s.frames = state.framesDecoded;
  if (++s.ticks % REPORT_EVERY === 0) sendReport(s, v, received, lost, rtt);

  // Nothing arriving, never connecting, or stuck "disconnected": start over. While the events say
  // the publisher is away the session is kept: a new publisher resumes it.
  s.stall = kbps > 0 || (!s.publisherLive && s.pc.connectionState === "connected") ? 0 : s.stall + 1;
  const limit = s.pc.connectionState === "connected" ? STALL_S : CONNECT_S;
  const down = s.downSince && Date.now() - s.downSince > 5000;
  if (s.stall >= limit || down) scheduleRetry("reconnecting", "The stream stopped. Reconnecting…", backoff());
}

// ---- WHEP events (the server-sent events extension; docs/api.md, "WHEP events") ----

/**
 * Opens the session's event stream: a POST to the entry point the 201's Link header names (this
 * server always puts it at {session}/sse), then an EventSource on the stream it creates.
 */
async function followEvents(s, gen) {
  try {
    const res = await fetch(`${s.resource}/sse`, { method: "POST", headers: authHeaders(s.token) });
    if (!res.ok || gen !== generation || session !== s) return;
    const where = new URL(res.headers.get("Location"), s.resource);
    if (s.token) where.searchParams.set("token", s.token);
    const source = new EventSource(where.href);
    s.events = source;
    state.eventStream = true;
    for (const type of ["active", "inactive", "viewercount", "reconnect", "layers"]) {
      source.addEventListener(type, (e) => gen === generation && onWhepEvent(s, type, e.data));
    }
    // The server sends `active` first thing when someone publishes, and no initial `inactive`
    // (the draft): a stream that opens without one means the room waits for its publisher.
    let heard = false;
    source.addEventListener(
      "active",
      () => {
        heard = true;
      },
      { once: true },
    );
    source.addEventListener(
      "open",
      () => {
        setTimeout(() => {
          if (!heard && gen === generation && session === s) onWhepEvent(s, "inactive", "{}");
        }, 1000);
      },
      { once: true },
    );
    // A stream that ends for good (404: the session is gone) means the session was lost.
    source.addEventListener("error", () => {
      if (gen !== generation || session !== s || source.readyState !== EventSource.CLOSED) return;
      scheduleRetry("reconnecting", "The session ended. Reconnecting…", backoff());
    });
  } catch {
    // No events (an older server, a network blip): the stall check still notices a dead stream.
  }
}

function stopEvents(s) {
  s.events?.close();
  s.events = null;
  state.eventStream = false;
}

function onWhepEvent(s, type, data) {
  let body = {};
  try {
    body = JSON.parse(data);
  } catch {
    // the draft's events carry JSON; anything else is ignored
  }
  state.events.push(type);
  if (state.events.length > 50) state.events.shift();
  if (type === "active") {
    s.publisherLive = true;
    state.publisher = "live";
    if (s.pc.connectionState === "connected") {
      setStatus(state, "live");
      $("#placeholder").hidden = true;
    }
  } else if (type === "inactive") {
    s.publisherLive = false;
    s.stall = 0;
    state.publisher = "waiting";
    setStatus(state, "waiting", "Waiting for the publisher…");
  } else if (type === "viewercount" && typeof body.viewercount === "number") {
    state.viewers = body.viewercount;
    const pill = $("#viewers");
    pill.hidden = false;
    pill.textContent = `${body.viewercount} watching`;
  } else if (type === "reconnect") {
    // The server asks for a new session (a new codec, a server draining): at once, then back-off.
    scheduleRetry("reconnecting", "Reconnecting…", state.retries === 0 ? 0 : backoff());
  }
}

// ---- playback reports: the server turns them into viewer metrics and asks keyframes for frozen viewers ----
/** Posts the cumulative getStats() counters to `{session}/stats`; a failure never touches playback. */
function sendReport(s, v, received, lost, rtt) {
  if (!s.reports || !s.resource || s.pc.connectionState !== "connected") return;
  const body = {
    packetsReceived: received,
    packetsLost: lost,
    roundTripTime: rtt,
    ...(v
      ? {
          freezeCount: v.freezeCount,
          totalFreezesDuration: v.totalFreezesDuration,
          framesDecoded: v.framesDecoded ?? 0,
          framesDropped: v.framesDropped,
          jitterBufferDelay: v.jitterBufferDelay,
          jitterBufferEmittedCount: v.jitterBufferEmittedCount,
          frameWidth: v.frameWidth,
          frameHeight: v.frameHeight,
          frozenSeconds: state.frozenSeconds,
        }
      : {}),
  };
  state.reportsSent++;
  fetch(`${s.resource}/stats`, {
    method: "POST",
    headers: authHeaders(s.token, { "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  }).then(
    (res) => {
      if (res.ok) state.reportsAccepted++;
      // The server does not take reports (an older one, or the session is gone): stop asking.
      else if (res.status === 404 || res.status === 405 || res.status === 400) s.reports = false;
    },
    () => {},
  );
}

// ---- controls ----
function syncMute() {
  state.muted = video.muted;
  $("#unmute").textContent = video.muted ? "Unmute" : "Mute";
}
$("#unmute").addEventListener("click", () => {
  video.muted = !video.muted;
  video.play().catch(() => {});
  syncMute();
});
video.addEventListener("volumechange", syncMute);
$("#settings").addEventListener("submit", (e) => {
  e.preventDefault();
  connect();
});
$("#stop").addEventListener("click", () => stop());
addEventListener("pagehide", () => {
  if (session?.resource) deleteSession(session.resource, session.token, true);
  session = null;
});

setupTokenField(tokenInput, $("#token-row"));
if (ROOM_RE.test(roomInput.value.trim())) connect();
else setStatus(state, "idle", roomInput.value ? "That room name is not valid: use letters, digits, - or _ (at most 64)." : "");
