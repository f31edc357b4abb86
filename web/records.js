// Recordings list: /api/records with an optional token; download links carry ?token=.
import { $, h, getJson, describeError, setStatus, setupTokenField, humanBytes, humanTime } from "./lib.js";

const state = (window.__state = { page: "records", status: "loading", error: "", records: [] });
const tokenInput = $("#token");
const getToken = () => tokenInput.value.trim();

function downloadUrl(rec) {
  const url = new URL(rec.url || `/records/${encodeURIComponent(rec.name)}`, location.href);
  if (getToken()) url.searchParams.set("token", getToken());
  return url.pathname + url.search;
}

function render() {
  const rows = state.records.map((rec) =>
    h("tr", { dataset: { name: rec.name } },
      h("td", { class: "name mono" }, rec.name),
      h("td", { class: "num", title: `${rec.size} bytes` }, humanBytes(rec.size)),
      h("td", { class: "time" }, h("time", { datetime: rec.modTime }, humanTime(rec.modTime))),
      h("td", { class: "num" }, h("a", { class: "btn small download", href: downloadUrl(rec), download: rec.name }, "Download"))));
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
    setStatus(state, "ok");
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
