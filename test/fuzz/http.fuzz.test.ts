// Fuzz: room names in every route that takes one, JSON bodies of every JSON POST route, and paths
// under the file routes sent raw (encoded traversal, NUL, over-long, double encoding). Canary
// files sit next to RECORD_DIR, HLS_DIR and WEB_DIR; their content must never come back, and a
// 200 must be one of the files the server is meant to serve.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../helpers/server.js";
import { CHROME_PLAY } from "./gen-sdp.js";
import { BODY_LIMIT, fuzzFilePath, fuzzJsonBody, fuzzRoomName, pctAll, ROOM_NAME_RE, validName, type FuzzName } from "./gen-http.js";
import {
  describeResponse,
  expectError,
  expectStatus,
  fail,
  fuzzServer,
  jsonError,
  plantFiles,
  runFuzz,
  timeoutFor,
  type CaseContext,
  type FuzzFiles,
  type FuzzServer,
} from "./harness.js";
import type { Rng } from "./prng.js";
import type { HttpTarget, RawResponse } from "./raw-http.js";

const ADMIN = "fuzz-admin-token";
const API_KEY = "fuzz-transcoder-key";
const RELAY_KEY = "fuzz-relay-key";

let fuzz: FuzzServer;
let server: TestServer;
let files: FuzzFiles;
let http: HttpTarget;
/** Every file the server may serve, by content: a 200/206 body must come from one of them. */
let servable: Buffer[];

beforeAll(async () => {
  files = plantFiles();
  fuzz = await fuzzServer(files, {
    ADMIN_TOKEN: ADMIN,
    TRANSCODER_API_KEY: API_KEY,
    RELAY_KEY: RELAY_KEY,
    RELAY_RATE_LIMIT: "1000000",
    RELAY_STATE_FILE: path.join(files.recordDir, "..", "relay-state.json"),
  });
  ({ server, http } = fuzz);
  const hlsDist = path.dirname(createRequire(import.meta.url).resolve("hls.js/dist/hls.min.mjs"));
  servable = [
    Buffer.from(files.record.content),
    Buffer.from(files.hls.content),
    readFileSync(path.join(files.webDir, "index.html")),
    ...["hls.min.mjs", "hls.light.min.mjs", "hls.min.mjs.map", "hls.light.min.mjs.map"].flatMap((f) => {
      try {
        return [readFileSync(path.join(hlsDist, f))];
      } catch {
        return [];
      }
    }),
  ];
});

afterAll(() => fuzz?.close());

const hasRoute = (method: "GET" | "POST" | "DELETE", url: string) => server.app.hasRoute({ method, url });

// ---- room names -----------------------------------------------------------------------------------

/** What a route says about a name, by the oracle: the exact error when it is knowable. */
function expectRoomVerdict(res: RawResponse, name: FuzzName, valid: { status: number; message: string | RegExp }, what: string): void {
  if (name.badEscape) {
    // A broken escape is refused before any route runs.
    if (res.status !== 400) fail(`${what}: broken escape answered ${describeResponse(res)}`);
    return;
  }
  if (name.decoded === undefined) return;
  if (ROOM_NAME_RE.test(name.decoded)) expectError(res, valid.status, valid.message, what);
  else expectError(res, 400, "invalid room name", what);
}

async function roomCase(rng: Rng, _index: number, ctx: CaseContext): Promise<void> {
  const name = fuzzRoomName(rng);
  const route = rng.weighted<string>([
    [4, "whip"],
    [4, "whep"],
    [3, "admin"],
    [1, "options"],
    [1, "get-endpoint"],
    [2, "session"],
    ...(hasRoute("POST", "/api/rooms/:room/hls") ? ([[2, "hls-start"]] as const) : []),
    ...(hasRoute("GET", "/api/rooms/:room/restreams") ? ([[1, "restreams"]] as const) : []),
  ]);
  // Anything routable answers within the statuses of its route; a name that breaks the path
  // may land on another route (404 not found, 405) or be refused by the HTTP parser (400, 431).
  const unroutable = name.decoded === undefined && !name.badEscape;
  // (403: @fastify/static refuses a path like /api/whep/play//x that no route takes.)
  const extra = unroutable ? [400, 403, 404, 405, 431] : [431];
  let res: RawResponse;
  let what: string;
  switch (route) {
    case "whip": {
      const p = `/api/whip/publish/${name.raw}`;
      what = `POST ${JSON.stringify(p.slice(0, 200))}`;
      // An invalid SDP body: a valid name gets "invalid SDP", an invalid one "invalid room name".
      res = await ctx.send({ method: "POST", path: p, headers: [["Content-Type", "application/sdp"]], body: "v=0\r\n" });
      expectStatus(res, [400, 401, 409, 413, 415, 422, 429, 503, ...extra], what);
      if (res.status !== 431) expectRoomVerdict(res, name, { status: 400, message: "invalid SDP" }, what);
      break;
    }
    case "whep": {
      const p = `/api/whep/play/${name.raw}`;
      what = `POST ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({ method: "POST", path: p, headers: [["Content-Type", "application/sdp"]], body: CHROME_PLAY });
      expectStatus(res, [400, 401, 403, 404, 413, 415, 422, 429, 503, ...extra], what);
      if (res.status !== 431) expectRoomVerdict(res, name, { status: 404, message: "no active publisher in room" }, what);
      break;
    }
    case "admin": {
      const p = `/api/admin/rooms/${name.raw}/close`;
      what = `POST ${JSON.stringify(p.slice(0, 200))}`;
      const auth = rng.chance(0.8);
      res = await ctx.send({ method: "POST", path: p, headers: auth ? [["Authorization", `Bearer ${ADMIN}`]] : [] });
      expectStatus(res, [400, 401, 404, 429, ...extra], what);
      // No room exists on this server: every name is 404 room not found (the route does not
      // validate names; nothing by that name can exist), 401 without the admin token.
      if (!name.badEscape && name.decoded !== undefined && res.status !== 431) {
        if (auth) expectError(res, 404, "room not found", what);
        else expectError(res, 401, "unauthorized", what);
      }
      break;
    }
    case "options": {
      const p = `/api/whip/publish/${name.raw}`;
      what = `OPTIONS ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({ method: "OPTIONS", path: p });
      expectStatus(res, [204, ...extra, 400, 404], what);
      break;
    }
    case "get-endpoint": {
      const p = `/api/whep/play/${name.raw}`;
      what = `GET ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({ method: "GET", path: p });
      expectStatus(res, [405, ...extra, 400, 404], what);
      break;
    }
    case "session": {
      const kind = rng.pick(["whip", "whep"]);
      const method = rng.pick(["DELETE", "PATCH"]);
      const p = `/api/${kind}/session/${name.raw}`;
      what = `${method} ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({
        method,
        path: p,
        headers: [
          ["Content-Type", "application/trickle-ice-sdpfrag"],
          ["If-Match", "*"],
        ],
        body: method === "PATCH" ? "a=ice-ufrag:x\r\na=ice-pwd:y\r\n" : undefined,
      });
      expectStatus(res, [404, ...extra, 400], what);
      if (!name.badEscape && name.decoded !== undefined && name.decoded !== "" && res.status !== 431) expectError(res, 404, "session not found", what);
      break;
    }
    case "hls-start": {
      const p = `/api/rooms/${name.raw}/hls`;
      what = `POST ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({ method: "POST", path: p });
      expectStatus(res, [200, 201, 400, 401, 404, 409, 413, 415, 429, 503, ...extra], what);
      if (!name.badEscape && name.decoded !== undefined && !ROOM_NAME_RE.test(name.decoded) && res.status !== 431)
        expectError(res, 400, "invalid room name", what);
      break;
    }
    default: {
      const p = `/api/rooms/${name.raw}/restreams`;
      what = `GET ${JSON.stringify(p.slice(0, 200))}`;
      res = await ctx.send({ method: "GET", path: p });
      expectStatus(res, [200, 400, 401, 404, 429, ...extra], what);
      if (!name.badEscape && name.decoded !== undefined && !ROOM_NAME_RE.test(name.decoded) && res.status !== 431)
        expectError(res, 400, "invalid room name", what);
    }
  }
  if (res.status >= 400 && !res.raw && res.status !== 431) jsonError(res, what);
}

// ---- JSON bodies ----------------------------------------------------------------------------------

interface JsonRoute {
  path: (rng: Rng) => string;
  /** Statuses the route may answer, whatever the body. */
  allowed: number[];
  headers: (rng: Rng) => [string, string][];
  /** For a body that parses: the statuses the handler itself gives (body checks done by the route). */
  parsed: number[];
  /** The /start-stream family's answer shape {status, message} (docs/bridges.md, "/start-stream jobs"). */
  streamShape?: boolean;
  /** The relay API's reply shape {http_code, msg, call_time} (docs/bridges.md, "Relay tasks"). */
  relayShape?: boolean;
}

function jsonRoutes(): Record<string, JsonRoute> {
  const admin = (rng: Rng): [string, string][] => (rng.chance(0.8) ? [["Authorization", `Bearer ${ADMIN}`]] : []);
  const routes: Record<string, JsonRoute> = {
    "admin-close": {
      path: (rng) => `/api/admin/rooms/${validName(rng)}/close`,
      allowed: [200, 400, 401, 404, 413, 415, 429],
      headers: admin,
      parsed: [401, 404],
    },
  };
  // The bridges' routes (docs/bridges.md), where this build has them; no room exists on this server, so
  // nothing here can start a process except /start-stream with the key, which pulls from a closed
  // loopback port and fails (its documented 500).
  if (hasRoute("POST", "/api/rooms/:room/hls")) {
    routes["room-hls"] = {
      path: (rng) => `/api/rooms/${validName(rng)}/hls`,
      allowed: [200, 201, 400, 401, 404, 409, 413, 415, 429, 503],
      headers: admin,
      parsed: [200, 201, 401, 404, 409, 503],
    };
  }
  if (hasRoute("POST", "/api/rooms/:room/restreams")) {
    routes.restreams = {
      path: (rng) => `/api/rooms/${validName(rng)}/restreams`,
      allowed: [201, 400, 401, 404, 409, 413, 415, 429, 503],
      headers: admin,
      parsed: [201, 400, 401, 404, 409, 503],
    };
  }
  if (hasRoute("POST", "/api/rooms/:room/ingest")) {
    routes.ingest = {
      path: (rng) => `/api/rooms/${validName(rng)}/ingest`,
      allowed: [201, 400, 401, 404, 409, 413, 415, 422, 429, 503],
      headers: admin,
      parsed: [201, 400, 401, 404, 409, 422, 503],
    };
  }
  const key = (rng: Rng): [string, string][] =>
    rng.chance(0.6) ? [["X-API-Key", API_KEY]] : rng.chance(0.5) ? [["X-API-Key", rng.pick(["", "wrong", API_KEY + "x", API_KEY.toUpperCase()])]] : [];
  if (hasRoute("POST", "/start-stream")) {
    routes["start-stream"] = {
      path: () => "/start-stream",
      allowed: [200, 400, 403, 409, 413, 415, 500],
      headers: key,
      parsed: [200, 400, 403, 409, 500],
      streamShape: true,
    };
  }
  if (hasRoute("POST", "/stop-stream")) {
    routes["stop-stream"] = {
      path: () => "/stop-stream",
      allowed: [200, 400, 403, 404, 413, 415],
      headers: key,
      parsed: [200, 400, 403, 404],
      streamShape: true,
    };
  }
  if (hasRoute("POST", "/api/relay")) {
    // n/r/k right most of the time, else wrong, missing or with r over 10 characters.
    const relayPath = (rng: Rng) => {
      const r = rng.chance(0.9) ? String(rng.int(0, 1e9)) : "x".repeat(rng.int(0, 20));
      const k = rng.chance(0.85)
        ? createHash("md5")
            .update(r + RELAY_KEY)
            .digest("hex")
        : rng.pick(["", "0".repeat(32), "zz"]);
      const base = rng.pick(["/api/relay", "/api/cdn/v2/forwardRequest.action"]);
      return rng.chance(0.95) ? `${base}?n=fuzz&r=${r}&k=${k}` : base;
    };
    routes.relay = { path: relayPath, allowed: [200, 400, 403, 413, 429, 503], headers: () => [], parsed: [200, 400, 403, 503], relayShape: true };
  }
  return routes;
}

let routes: Record<string, JsonRoute>;

async function jsonCase(rng: Rng, _index: number, ctx: CaseContext): Promise<void> {
  const name = rng.pick(Object.keys(routes).sort());
  const route = routes[name]!;
  const p = route.path(rng);
  const { body, contentType, parses } = fuzzJsonBody(rng);
  const headers = route.headers(rng);
  if (contentType !== undefined) headers.push(["Content-Type", contentType]);
  const what = `${name}: POST ${p} (${body?.length ?? "no"} body bytes, content-type ${JSON.stringify(contentType?.slice(0, 40))})`;
  // /start-stream documents a 500 when FFmpeg cannot pull the source.
  const res = await ctx.send({ method: "POST", path: p, headers, body, allow5xx: route.allowed.includes(500) });
  expectStatus(res, route.allowed, what);
  // Over 1 MiB in a type the server reads: 413 (another type is 415 first; /start-stream says
  // 403 to a wrong key before anything, and 400 for every other bad body).
  const readable = contentType !== undefined && /^application\/json($|;\s*charset=("?)utf-8\2$)/i.test(contentType);
  if (body !== undefined && body.length > BODY_LIMIT && readable && res.status !== 413 && res.status !== 403)
    fail(`${what}: a body over 1 MiB answered ${describeResponse(res)}`);
  if (parses && !route.parsed.includes(res.status))
    fail(`${what}: a well-formed JSON body answered ${describeResponse(res)}, expected one of [${route.parsed.join(", ")}]`);
  if (res.status >= 400) {
    if (route.relayShape) {
      const parsed = JSON.parse(res.body.toString("utf8")) as { http_code?: unknown; msg?: unknown; call_time?: unknown };
      if (parsed.http_code !== String(res.status) || typeof parsed.msg !== "string" || typeof parsed.call_time !== "number")
        fail(`${what}: not the relay API's reply shape: ${describeResponse(res)}`);
    } else if (route.streamShape) {
      const parsed = JSON.parse(res.body.toString("utf8")) as { status?: unknown; message?: unknown };
      if (parsed.status !== "error" || typeof parsed.message !== "string") fail(`${what}: not the /start-stream answer shape: ${describeResponse(res)}`);
      if (res.status === 500 && !parsed.message.startsWith("Failed to start FFmpeg process for stream "))
        fail(`${what}: undocumented 500: ${describeResponse(res)}`);
    } else {
      jsonError(res, what);
    }
  }
}

// ---- file paths -----------------------------------------------------------------------------------

async function pathCase(rng: Rng, _index: number, ctx: CaseContext): Promise<void> {
  const legit = [
    `/records/${files.record.name}`,
    `/records/${pctAll(files.record.name)}`,
    `/hls/${files.hls.room}/stream.m3u8`,
    `/hls/${files.hls.room}/%73tream.m3u8`,
    "/",
    "/index.html",
    "/vendor/hls/hls.min.mjs",
    "/api/records",
  ];
  const { path: p, range } = fuzzFilePath(rng, files.root, legit);
  const headers: [string, string][] = range ? [["Range", range]] : [];
  const method = rng.chance(0.9) ? "GET" : "HEAD";
  const what = `${method} ${JSON.stringify(p.length > 300 ? `${p.slice(0, 300)}… (${p.length} chars)` : p)}${range ? ` Range ${range}` : ""}`;
  const res = await ctx.send({ method, path: p, headers });
  expectStatus(res, [200, 206, 400, 401, 403, 404, 405, 416, 429, 431], what);
  if ((res.status === 200 || res.status === 206) && method === "GET" && !p.startsWith("/api/")) {
    if (!servable.some((f) => (res.status === 200 ? f.equals(res.body) : f.includes(res.body)))) {
      fail(`${what}: ${res.status} with a body that is none of the servable files: ${describeResponse(res)}`);
    }
  }
}

describe("fuzz: HTTP routes", () => {
  it(
    "room names",
    async () => {
      const report = await runFuzz({ name: "rooms", http, canary: files.canary, run: roomCase });
      expect(report.failures).toEqual([]);
    },
    timeoutFor("rooms"),
  );

  it(
    "JSON bodies of the JSON POST routes",
    async () => {
      routes = jsonRoutes();
      console.log(`[fuzz] JSON routes: ${Object.keys(routes).join(", ")}`);
      const report = await runFuzz({ name: "json", http, canary: files.canary, run: jsonCase });
      expect(report.failures).toEqual([]);
    },
    timeoutFor("json"),
  );

  it(
    "record, HLS and static paths, sent raw",
    async () => {
      const report = await runFuzz({ name: "paths", http, canary: files.canary, run: pathCase });
      expect(report.failures).toEqual([]);
      // The legitimate files are served, so the checks above did look at real 200s.
      for (const [p, content] of [
        [`/records/${files.record.name}`, files.record.content],
        [`/records/${pctAll(files.record.name)}`, files.record.content],
        ["/", readFileSync(path.join(files.webDir, "index.html"), "utf8")],
      ] as const) {
        const res = await http.send({ method: "GET", path: p });
        expect(res.status, p).toBe(200);
        expect(res.body.toString()).toBe(content);
      }
    },
    timeoutFor("paths"),
  );
});
