// WHIP publisher page: capture, codec preference, negotiate, stats every second, OBS settings.
import {
  $,
  ROOM_RE,
  createPeer,
  negotiate,
  deleteSession,
  whipUrl,
  describeError,
  setStatus,
  setupTokenField,
  queryParam,
  copyText,
  humanBitrate,
  rateMeter,
} from "./lib.js";

const SIZES = { 360: [640, 360], 720: [1280, 720], 1080: [1920, 1080] };

const state = (window.__state = {
  page: "publish",
  room: "",
  status: "idle",
  error: "",
  resource: null,
  codec: "",
  bitrateKbps: 0,
  packetsSent: 0,
  packetsLost: 0,
  packetLoss: 0,
  rttMs: null,
  framesEncoded: 0,
  framesSent: 0,
  width: 0,
  height: 0,
  fps: 0,
});

const video = $("#video");
const roomInput = $("#room");
const tokenInput = $("#token");
const getToken = () => tokenInput.value.trim();
setupTokenField(tokenInput, $("#token-row"));
let session = null; // { pc, stream, resource, token, timer, downTimer }
let generation = 0;

// ---- room + OBS box ----
roomInput.value = queryParam("room");
function syncRoom() {
  const room = roomInput.value.trim();
  const valid = ROOM_RE.test(room);
  state.room = room;
  $("#room-title").textContent = valid ? room : "";
  $("#obs-server").value = `${location.origin}${whipUrl(valid ? room : "<room>")}`;
  $("#obs-token").value = getToken();
  $("#watch-link").href = valid ? `play.html?room=${encodeURIComponent(room)}` : "play.html";
  document.title = `Publish ${valid ? room + " " : ""}· WHIP/WHEP SFU`;
}
roomInput.addEventListener("input", syncRoom);
tokenInput.addEventListener("input", syncRoom);
syncRoom();
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", () => copyText($(`#${button.dataset.copy}`).value, button));
}

// Grey out codecs this browser cannot send.
const caps = globalThis.RTCRtpReceiver?.getCapabilities?.("video")?.codecs ?? [];
for (const opt of $("#codec").options) {
  if (opt.value && caps.length && !caps.some((c) => c.mimeType.toLowerCase() === opt.value.toLowerCase())) {
    opt.disabled = true;
    opt.textContent += " (unsupported)";
  }
}

// ---- capture ----
async function capture(source, height) {
  if (!navigator.mediaDevices) throw new Error("Camera access needs a secure page (https or localhost).");
  const [width, h] = SIZES[height];
  const size = { width: { ideal: width }, height: { ideal: h }, frameRate: { ideal: 30 } };
  if (source === "screen") {
    if (!navigator.mediaDevices.getDisplayMedia) throw new Error("This browser cannot share the screen.");
    return navigator.mediaDevices.getDisplayMedia({ video: size, audio: true });
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: size, audio: true });
  } catch (err) {
    if (err.name !== "NotFoundError" && err.name !== "OverconstrainedError") throw err;
    // No microphone (or no camera): publish what exists.
    try {
      return await navigator.mediaDevices.getUserMedia({ video: size });
    } catch {
      return navigator.mediaDevices.getUserMedia({ audio: true });
    }
  }
}

function preferCodec(transceiver, mime) {
  if (!mime || typeof transceiver.setCodecPreferences !== "function") return;
  const all = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
  const wanted = all.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
  if (wanted.length === 0) return;
  try {
    transceiver.setCodecPreferences([...wanted, ...all.filter((c) => !wanted.includes(c))]);
  } catch (err) {
    console.warn("setCodecPreferences failed; using the browser default", err);
  }
}

// ---- start / stop ----
function setBusy(live) {
  $("#start").disabled = live;
  $("#stop").disabled = !live;
  for (const el of [roomInput, tokenInput, $("#source"), $("#resolution"), $("#codec")]) el.disabled = live;
}

async function start() {
  const room = roomInput.value.trim();
  if (!ROOM_RE.test(room)) {
    setStatus(state, "error", "That room name is not valid: use letters, digits, - or _ (at most 64).");
    roomInput.focus();
    return;
  }
  history.replaceState(null, "", `?room=${encodeURIComponent(room)}`);
  const gen = ++generation;
  const token = getToken();
  setBusy(true);
  setStatus(state, "starting");
  const s = (session = { pc: null, stream: null, resource: null, token, timer: 0 });
  try {
    s.stream = await capture($("#source").value, $("#resolution").value);
    if (gen !== generation) {
      for (const t of s.stream.getTracks()) t.stop();
      return;
    }
    video.srcObject = s.stream;
    $("#placeholder").hidden = true;
    s.pc = await createPeer();
    const audio = s.stream.getAudioTracks()[0];
    const cam = s.stream.getVideoTracks()[0];
    if (cam) preferCodec(s.pc.addTransceiver(cam, { direction: "sendonly", streams: [s.stream] }), $("#codec").value);
    if (audio) s.pc.addTransceiver(audio, { direction: "sendonly", streams: [s.stream] });
    // The browser's "Stop sharing" button ends the screen track.
    cam?.addEventListener("ended", () => gen === generation && stop());
    s.pc.addEventListener("connectionstatechange", () => onConnection(s, gen));
    setStatus(state, "connecting");
    s.resource = await negotiate(s.pc, whipUrl(room), token, "publish");
    state.resource = s.resource;
    if (gen !== generation) return deleteSession(s.resource, token);
    s.timer = setInterval(() => updateStats(s), 1000);
  } catch (err) {
    if (gen === generation) await stop(describeError(err));
  }
}

function onConnection(s, gen) {
  if (gen !== generation) return;
  const st = s.pc.connectionState;
  clearTimeout(s.downTimer);
  if (st === "connected") setStatus(state, "live");
  else if (st === "failed") stop("The connection to the server was lost.");
  else if (st === "disconnected") {
    setStatus(state, "connecting", "Connection interrupted, trying to recover…");
    // The server closing the room looks like this too; give up after a few seconds.
    s.downTimer = setTimeout(() => gen === generation && stop("The connection to the server was lost."), 5000);
  }
}

async function stop(error = "") {
  generation++;
  const s = session;
  session = null;
  if (s) {
    clearInterval(s.timer);
    clearTimeout(s.downTimer);
    await deleteSession(s.resource, s.token);
    s.pc?.close();
    for (const t of s.stream?.getTracks() ?? []) t.stop();
  }
  video.srcObject = null;
  $("#placeholder").hidden = false;
  state.resource = null;
  setBusy(false);
  setStatus(state, error ? "error" : "stopped", error);
}

// ---- stats ----
const meter = rateMeter();
async function updateStats(s) {
  if (!s.pc || s.pc.connectionState === "closed") return;
  const report = await s.pc.getStats();
  let bytes = 0,
    sent = 0,
    lost = 0,
    ts = 0,
    rtt = null,
    v = null;
  const codecs = new Map();
  report.forEach((r) => {
    if (r.type === "codec") codecs.set(r.id, r.mimeType);
    if (r.type === "outbound-rtp") {
      bytes += r.bytesSent ?? 0;
      sent += r.packetsSent ?? 0;
      ts = Math.max(ts, r.timestamp);
      if (r.kind === "video") v = r;
    }
    if (r.type === "remote-inbound-rtp") {
      lost += Math.max(0, r.packetsLost ?? 0);
      if (r.roundTripTime !== undefined) rtt = Math.max(rtt ?? 0, r.roundTripTime * 1000);
    }
  });
  const kbps = meter(bytes, ts);
  Object.assign(state, {
    bitrateKbps: Math.round(kbps),
    packetsSent: sent,
    packetsLost: lost,
    packetLoss: sent + lost > 0 ? +((100 * lost) / (sent + lost)).toFixed(2) : 0,
    rttMs: rtt === null ? null : Math.round(rtt),
    framesEncoded: v?.framesEncoded ?? 0,
    framesSent: v?.framesSent ?? 0,
    width: v?.frameWidth ?? 0,
    height: v?.frameHeight ?? 0,
    fps: Math.round(v?.framesPerSecond ?? 0),
    codec: (v && codecs.get(v.codecId)?.replace(/^video\//, "")) ?? state.codec,
  });
  $("#stat-bitrate").textContent = humanBitrate(kbps);
  $("#stat-loss").textContent = `${state.packetLoss.toFixed(1)} %`;
  $("#stat-resolution").textContent = state.width ? `${state.width}×${state.height}` : "–";
  $("#stat-fps").textContent = state.fps ? `${state.fps}` : "–";
  $("#stat-codec").textContent = state.codec || "–";
  $("#stat-rtt").textContent = state.rttMs === null ? "–" : `${state.rttMs} ms`;
}

$("#settings").addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
$("#stop").addEventListener("click", () => stop());
addEventListener("pagehide", () => session && deleteSession(session.resource, session.token, true));
