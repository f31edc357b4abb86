// Recordings list: /api/records with an optional token; download links carry ?token=.
// Each session whose track files were merged into one .webm/.mp4 (`playback`) gets a Play button
// that plays it in the <video controls> above the list.
// window.__state: { page, status, error, records, playing: "" | merged file name, currentTime,
// paused, playError }.
import { $, h, getJson, describeError, setStatus, setupTokenField, humanBytes, humanTime } from "./lib.js";

const state = (window.__state = {
  page: "records",
  status: "loading",
  error: "",
  records: [],
  playing: "",
  currentTime: 0,
  paused: true,
  playError: "",
});
const tokenInput = $("#token");
const getToken = () => tokenInput.value.trim();
const player = $("#player");

/** A /records/ URL with ?token= when a token is set (a media element cannot send headers). */
function withToken(path) {
  const url = new URL(path, location.href);
  if (getToken()) url.searchParams.set("token", getToken());
  return url.pathname + url.search;
}

const downloadUrl = (rec) => withToken(rec.url || `/records/${encodeURIComponent(rec.name)}`);
const fileName = (url) => decodeURIComponent(url.split("?")[0].split("/").pop() ?? "");

function play(playback) {
  state.playing = fileName(playback);
  state.playError = "";
  state.currentTime = 0;
  $("#player-title").textContent = state.playing;
  $("#player-panel").hidden = false;
  player.src = withToken(playback);
  player.play().catch((err) => {
    // Autoplay refused: the controls are there to start it by hand.
    if (err?.name !== "NotAllowedError" && err?.name !== "AbortError") state.playError = describeError(err);
  });
  $("#player-panel").scrollIntoView({ block: "nearest" });
  render();
}

function closePlayer() {
  player.pause();
  player.removeAttribute("src");
  player.load();
  state.playing = "";
  state.currentTime = 0;
  $("#player-panel").hidden = true;
  render();
}

player.addEventListener("timeupdate", () => (state.currentTime = player.currentTime));
player.addEventListener("play", () => (state.paused = false));
player.addEventListener("pause", () => (state.paused = true));
player.addEventListener("ended", () => (state.paused = true));
player.addEventListener("error", () => {
  if (!state.playing) return;
  state.playError = "This recording cannot be played here. Download it instead.";
  setStatus(state, state.status, state.playError);
});
$("#player-close").addEventListener("click", closePlayer);

function render() {
  // One Play button per session: on the first (newest) row that links to its merged file.
  const seen = new Set();
  const rows = state.records.map((rec) => {
    const first = rec.playback && !seen.has(rec.playback);
    if (rec.playback) seen.add(rec.playback);
    const current = first && fileName(rec.playback) === state.playing;
    return h(
      "tr",
      { dataset: { name: rec.name } },
      h("td", { class: "name mono" }, rec.name),
      h("td", { class: "num", title: `${rec.size} bytes` }, humanBytes(rec.size)),
      h("td", { class: "time" }, h("time", { datetime: rec.modTime }, humanTime(rec.modTime))),
      h(
        "td",
        { class: "num actions-cell" },
        h(
          "span",
          { class: "actions" },
          first &&
            h(
              "button",
              {
                class: `small play${current ? " primary" : ""}`,
                type: "button",
                title: `Play ${fileName(rec.playback)}`,
                "aria-pressed": current ? "true" : "false",
                dataset: { playback: rec.playback },
                onclick: () => play(rec.playback),
              },
              "Play",
            ),
          h("a", { class: "btn small download", href: downloadUrl(rec), download: rec.name }, "Download"),
        ),
      ),
    );
  });
  $("#records").replaceChildren(...rows);
  $("#empty").hidden = rows.length > 0 || state.status !== "ok";
  const total = state.records.reduce((n, r) => n + (r.size || 0), 0);
  $("#summary").textContent = rows.length
    ? `${rows.length} file${rows.length === 1 ? "" : "s"}, ${humanBytes(total)} in total, newest first.`
    : "Files written by the server, newest first.";
}

async function load() {
  setStatus(state, "loading");
  try {
    const list = await getJson("/api/records", getToken(), "records");
    state.records = Array.isArray(list) ? list : [];
    setStatus(state, "ok", state.playError);
  } catch (err) {
    state.records = [];
    setStatus(state, "error", describeError(err));
    if (err.status === 401) $("#token-row").hidden = false;
  }
  render();
}

$("#controls").addEventListener("submit", (e) => {
  e.preventDefault();
  load();
});
tokenInput.addEventListener("change", load);
setupTokenField(tokenInput, $("#token-row"));
load();
