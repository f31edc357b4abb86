// Rooms dashboard: polls /api/rooms every 2 s, new-room form, admin "Close" buttons.
import { $, h, ROOM_RE, HttpError, getJson, getBootstrap, authHeaders, describeError, setStatus, timeAgo } from "./lib.js";

const ADMIN_KEY = "whipsfu.adminToken";
const POLL_MS = 2000;

const state = (window.__state = {
  page: "rooms",
  status: "loading",
  error: "",
  rooms: [],
  updatedAt: null,
  authEnabled: false,
  closeError: "",
});

const adminInput = $("#admin-token");
adminInput.value = sessionStorage.getItem(ADMIN_KEY) ?? "";
adminInput.addEventListener("input", () => {
  const v = adminInput.value.trim();
  v ? sessionStorage.setItem(ADMIN_KEY, v) : sessionStorage.removeItem(ADMIN_KEY);
  state.closeError = "";
  setStatus(state, state.status, state.status === "error" ? state.error : "");
  render();
});
const adminToken = () => adminInput.value.trim();

// ---- new room ----
const nameInput = $("#room-name");
nameInput.addEventListener("input", () => nameInput.setCustomValidity(""));
$("#new-room").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = nameInput.value.trim();
  if (!ROOM_RE.test(room)) {
    nameInput.setCustomValidity("Use 1–64 letters, digits, - or _.");
    nameInput.reportValidity();
    setStatus(state, state.status, "That room name is not valid: use letters, digits, - or _ (at most 64).");
    return;
  }
  location.href = `publish.html?room=${encodeURIComponent(room)}`;
});

// ---- rendering ----
function roomCard(r) {
  const q = `?room=${encodeURIComponent(r.name)}`;
  const live = r.hasPublisher;
  const codecs = Array.isArray(r.codecs) ? r.codecs : [];
  return h(
    "article",
    { class: "panel card", dataset: { room: r.name } },
    h(
      "div",
      { class: "card-head" },
      h("h3", {}, r.name),
      h("span", { class: "pill", "data-status": live ? "live" : "waiting" }, live ? "live" : "no publisher"),
    ),
    h(
      "div",
      { class: "meta" },
      h("span", {}, h("b", {}, String(r.tracks ?? 0)), " tracks"),
      h("span", { class: "subs" }, h("b", {}, String(r.subscribers ?? 0)), " watching"),
      r.since && h("span", {}, "up ", h("b", {}, timeAgo(r.since))),
    ),
    codecs.length > 0 && h("div", { class: "meta" }, ...codecs.map((c) => h("span", { class: "tag" }, c))),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "btn primary small watch", href: `play.html${q}` }, "Watch"),
      h("a", { class: "btn small publish", href: `publish.html${q}` }, "Publish"),
      adminToken() && h("button", { class: "danger small close-room", type: "button", onclick: () => closeRoom(r.name) }, "Close"),
    ),
  );
}

function render() {
  const list = $("#rooms");
  if (state.rooms.length === 0) {
    list.replaceChildren(
      h(
        "div",
        { class: "empty", style: "grid-column: 1 / -1" },
        state.status === "error" ? "Rooms are unavailable right now." : "No live rooms. Start one above, or point OBS at the WHIP endpoint.",
      ),
    );
    return;
  }
  list.replaceChildren(...state.rooms.map(roomCard));
}

// ---- polling ----
let timer;
async function poll() {
  clearTimeout(timer);
  try {
    const rooms = await getJson("/api/rooms");
    state.rooms = Array.isArray(rooms) ? [...rooms].sort((a, b) => a.name.localeCompare(b.name)) : [];
    state.updatedAt = Date.now();
    setStatus(state, "ok", state.closeError);
  } catch (err) {
    setStatus(state, "error", describeError(err));
  }
  render();
  timer = setTimeout(poll, POLL_MS);
}

async function closeRoom(room) {
  state.closeError = "";
  try {
    const res = await fetch(`/api/admin/rooms/${encodeURIComponent(room)}/close`, {
      method: "POST",
      headers: authHeaders(adminToken()),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new HttpError(res.status, body.error ?? "", "admin");
    }
  } catch (err) {
    state.closeError = describeError(err);
  }
  poll();
}

getBootstrap().then((b) => {
  state.authEnabled = !!b.authEnabled;
  if (!b.unreachable) {
    $("#server-info").textContent = `Auth ${b.authEnabled ? "on" : "off"} · recording ${b.recordEnabled ? "on" : "off"}`;
  }
});
poll();
