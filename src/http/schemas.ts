// The JSON schemas of every route: parameters, bodies and every answer per status. They are the
// OpenAPI document (/api/openapi.json, browsable at /docs) and, where a route has no check of its
// own with a more specific message, its input validation. docs/api.md, docs/bridges.md and
// docs/hooks.md say the same in words.
//
// Adding a route: write its schema here with `route({...})` (tags, summary, the answers by
// status, `rateLimited` under /api/), then pass it on the route as `{ schema: SCHEMAS.yourRoute }`.
// test/http/openapi.test.ts fails for a route without one, and every test server checks the
// answers it gives against the document (test/helpers/conformance.ts).
//
// Input schemas validate (fastify answers 400 `invalid request body`, or the route scope's own
// shape) unless the route also sets `attachValidation: true`: then its own checks answer, with
// their documented messages, and the schema only documents.

import type { FastifySchema } from "fastify";
import { ROOM_NAME_RE } from "../config.js";

type Schema = Record<string, unknown>;

interface Answer {
  description: string;
  /** Absent for an empty body. */
  content?: Record<string, { schema: Schema }>;
  /** Response headers, a schema each. */
  headers?: Record<string, Schema>;
}

const str = (description?: string): Schema => (description === undefined ? { type: "string" } : { type: "string", description });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({
  type: "object",
  properties,
  required,
});

// ---- shapes -------------------------------------------------------------------------------------

/** The API's error (docs/api.md, "Errors"). */
export const ERROR_SCHEMA: Schema = { ...obj({ error: str() }), additionalProperties: false };
/** The relay API's answer, errors included (docs/bridges.md, "Relay tasks"). */
const RELAY_ANSWER: Schema = obj({
  http_code: str("the HTTP status, as a string"),
  msg: str(),
  call_time: { type: "integer", description: "ms since the epoch" },
});
/** The /start-stream API's answer (docs/bridges.md, "/start-stream jobs"). */
const TRANSCODER_ANSWER: Schema = obj({ status: { type: "string", enum: ["success", "error"] }, message: str() });

const JOB_STATE: Schema = { type: "string", enum: ["starting", "running", "retrying", "stopped", "failed"] };
/** An FFmpeg job's fields (docs/bridges.md, "FFmpeg and its supervision"). */
const JOB_FIELDS: Record<string, Schema> = {
  id: str(),
  kind: str(),
  state: JOB_STATE,
  pid: { type: "integer" },
  restarts: { type: "integer" },
  since: str(),
  bytesOut: { type: "number" },
  outSeconds: { type: "number" },
  lastError: str(),
};
const job = (extra: Record<string, Schema>): Schema => obj({ ...JOB_FIELDS, ...extra }, ["id", "kind", "state", "restarts", ...Object.keys(extra)]);
const BRIDGE_INFO = job({ room: str(), createdAt: str(), url: str("HLS: the playlist; restream: the target, stream key masked") });
const STREAM_INFO = obj({ ...JOB_FIELDS, streamId: str(), createdAt: str(), hlsUrl: str(), node: str("the node running the job (a cluster only)") }, [
  "id",
  "kind",
  "state",
  "restarts",
  "streamId",
  "createdAt",
  "hlsUrl",
]);

const LAYER: Schema = obj({ rid: str(), ssrc: { type: "integer" }, bitrate: { type: "number" }, active: { type: "boolean" }, forwarded: { type: "boolean" } }, [
  "rid",
  "bitrate",
  "active",
  "forwarded",
]);
const ROOM_INFO: Schema = obj(
  {
    name: str(),
    hasPublisher: { type: "boolean" },
    tracks: { type: "integer" },
    subscribers: { type: "integer" },
    codecs: { type: "array", items: str() },
    since: str(),
    layers: { type: "array", items: LAYER, description: "simulcast publishers only" },
  },
  ["name", "hasPublisher", "tracks", "subscribers", "codecs", "since"],
);
const ICE_SERVER: Schema = obj({ urls: { type: "array", items: str() }, username: str(), credential: str() }, ["urls"]);
const BOOTSTRAP: Schema = obj({
  authEnabled: { type: "boolean" },
  recordEnabled: { type: "boolean" },
  iceServers: { type: "array", items: ICE_SERVER },
  features: { type: "object", additionalProperties: { type: "boolean" }, description: "keys are added, never removed" },
});
const RECORD_ENTRY: Schema = obj(
  { name: str(), size: { type: "integer" }, modTime: str(), url: str(), playback: str("the session's merged, browser-playable file") },
  ["name", "size", "modTime", "url"],
);
const INGEST_INFO: Schema = obj(
  {
    id: str(),
    room: str(),
    url: str("credentials and query masked; files relative to MEDIA_DIR"),
    state: JOB_STATE,
    loop: { type: "boolean" },
    origin: { type: "string", enum: ["api", "srs", "nginx-rtmp"] },
    createdAt: str(),
    restarts: { type: "integer" },
    pid: { type: "integer" },
    since: str(),
    lastError: str(),
    outSeconds: { type: "number" },
    packets: { type: "integer" },
    video: { type: "string", enum: ["copy", "transcode", "none"] },
    audio: { type: "boolean" },
  },
  ["id", "room", "url", "state", "loop", "origin", "createdAt", "restarts", "packets", "video", "audio"],
);
const TARGET_STATE: Schema = { type: "string", enum: ["scheduled", "running", "stopped", "finished", "failed"] };
const RELAY_TASK: Schema = obj(
  {
    id: str(),
    state: TARGET_STATE,
    createdAt: str(),
    src: { type: "array", items: str() },
    loop: { type: ["integer", "null"], description: "null: until stopped" },
    start: str(),
    end: str(),
    targets: {
      type: "array",
      items: obj(
        {
          url: str("RTMP key masked"),
          state: TARGET_STATE,
          file: { type: "integer" },
          pass: { type: "integer" },
          offsetSeconds: { type: "number" },
          resumableUntil: str(),
          lastError: str(),
          job: str(),
        },
        ["url", "state", "pass", "offsetSeconds"],
      ),
    },
  },
  ["id", "state", "createdAt", "src", "loop", "targets"],
);

// ---- answers ------------------------------------------------------------------------------------

const json = (description: string, schema: Schema): Answer => ({ description, content: { "application/json": { schema } } });
const error = (description: string): Answer => json(description, ERROR_SCHEMA);
const text = (description: string, type = "text/plain"): Answer => ({ description, content: { [type]: { schema: str() } } });
const empty = (description: string): Answer => ({ description });
const file = (description: string, types: string[]): Answer => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema: str() }])),
});

const RETRY_AFTER = { "Retry-After": str("seconds") };
const WWW_AUTHENTICATE = { "WWW-Authenticate": str('Bearer realm="whip-whep"') };
const UNAUTHORIZED: Answer = { ...error("`unauthorized`: a missing or refused credential"), headers: WWW_AUTHENTICATE };
const CAPACITY = (what: string): Answer => ({ ...error(what), headers: RETRY_AFTER });
const TOO_MANY: Answer = { ...error('`too many requests`: the client\'s rate limit is spent (docs/api.md, "Rate limits")'), headers: RETRY_AFTER };
const INVALID_ROOM = error("`invalid room name`");
const METHOD_NOT_ALLOWED = (allow: string): Answer => ({
  ...error("`method not allowed`"),
  headers: { Allow: str(allow) },
});

// ---- inputs -------------------------------------------------------------------------------------

/** Path parameters: always strings; the routes check them with their own messages, so no patterns here. */
const params = (names: Record<string, string>): Schema => obj(Object.fromEntries(Object.entries(names).map(([k, d]) => [k, str(d)])));
const ROOM_PARAM = params({ room: "a room name, ^[A-Za-z0-9_-]{1,64}$ (else 400 `invalid room name`)" });
const TOKEN_QUERY = obj({ token: str("a credential, for players that cannot send headers") }, []);
const sdpBody = (type: string): Schema => ({ content: { [type]: { schema: str() } } });

const COUNT = { type: "integer", minimum: 0, maximum: 1e12 } as const;
const SECONDS = { type: "number", minimum: 0, maximum: 1e9 } as const;
const PIXELS = { type: "integer", minimum: 0, maximum: 16384 } as const;

/**
 * A player's report (docs/api.md, "Player statistics"): W3C getStats() names, all optional,
 * nothing else. Unknown fields fail (`additionalProperties: {not: {}}`, since fastify strips
 * rather than refuses `false`).
 */
export const PLAYER_REPORT_SCHEMA = {
  type: "object",
  properties: {
    freezeCount: COUNT,
    totalFreezesDuration: SECONDS,
    framesDecoded: COUNT,
    framesDropped: COUNT,
    jitterBufferDelay: SECONDS,
    jitterBufferEmittedCount: COUNT,
    packetsReceived: COUNT,
    // Negative when duplicates outnumber losses (RFC 3550 §6.4.1).
    packetsLost: { type: "integer", minimum: -1e12, maximum: 1e12 },
    roundTripTime: { type: "number", minimum: 0, maximum: 60 },
    frameWidth: PIXELS,
    frameHeight: PIXELS,
    frozenSeconds: { type: "number", minimum: 0, maximum: 86_400 },
  },
  additionalProperties: { not: {} },
} as const;

// ---- security -----------------------------------------------------------------------------------

/** The security schemes of the document (docs/api.md, "Authentication"). */
export const SECURITY_SCHEMES = {
  bearer: { type: "http", scheme: "bearer", description: "a room token, AUTH_TOKEN, ADMIN_TOKEN, METRICS_TOKEN or a JWT" },
  authToken: { type: "apiKey", in: "header", name: "X-Auth-Token", description: "the same credentials as bearer" },
  queryToken: { type: "apiKey", in: "query", name: "token", description: "only on GET /records/{name} and GET /hls/{name}/{file}" },
  apiKey: { type: "apiKey", in: "header", name: "X-API-Key", description: "TRANSCODER_API_KEY, for the /start-stream routes" },
  callbackSecret: { type: "apiKey", in: "query", name: "secret", description: "SRS_CALLBACK_SECRET" },
} as const;
type SchemeName = keyof typeof SECURITY_SCHEMES;

/** A token in a header; `{}` too when authentication may be off. */
const TOKEN: Record<string, string[]>[] = [{ bearer: [] }, { authToken: [] }, {}];
const REQUIRED_TOKEN: Record<string, string[]>[] = [{ bearer: [] }, { authToken: [] }];
const only = (...names: SchemeName[]): Record<string, string[]>[] => names.map((n) => ({ [n]: [] }));

// ---- routes -------------------------------------------------------------------------------------

interface RouteDoc {
  tags: string[];
  summary: string;
  description?: string;
  params?: Schema;
  querystring?: Schema;
  body?: Schema;
  security?: Record<string, string[]>[];
  /** Under the per-address rate limit (/api/, /records/, /docs): 429 is documented. */
  rateLimited?: boolean;
  /** A body is read: 413 is documented. */
  readsBody?: boolean;
  /** The body is parsed as JSON: 400 `invalid request body` and 415 are documented too. */
  jsonBody?: boolean;
  /** The error shape of this route's 429/413/500, when not the API's. */
  errorShape?: Schema;
  responses: Record<number, Answer>;
}

/** A route's schema: its own answers plus those every such route may give. */
function route(doc: RouteDoc): FastifySchema {
  const { rateLimited, readsBody, jsonBody, errorShape, responses, ...rest } = doc;
  const common = (message: string): Answer => (errorShape === undefined ? error(message) : json(`in this API's shape: ${message}`, errorShape));
  const all: Record<number, Answer> = { ...responses };
  if (rateLimited) all[429] ??= TOO_MANY;
  if (readsBody || jsonBody) all[413] ??= common("`request body too large`");
  if (jsonBody) {
    all[400] ??= common("`invalid request body`: malformed or empty JSON");
    all[415] ??= common("`unsupported media type`: a body that is not JSON");
  }
  all[500] ??= common("`internal server error`");
  return { ...rest, response: all } as FastifySchema;
}

const sessionSchemas = (kind: "whip" | "whep") => {
  const tags = [kind === "whip" ? "WHIP" : "WHEP"];
  const name = kind === "whip" ? "publish" : "play";
  const section = kind === "whip" ? "WHIP" : "WHEP";
  const created = {
    description: "the SDP answer, every ICE candidate inline",
    content: { "application/sdp": { schema: str() } },
    headers: {
      Location: str(`/api/${kind}/session/{id}`),
      ETag: str("the ICE session's tag"),
      Link: str('one `<url>; rel="ice-server"` per ICE server'),
    },
  };
  return {
    post: route({
      tags,
      summary: kind === "whip" ? "Publish into a room (WHIP, RFC 9725)" : "Play a room (WHEP)",
      description: `docs/api.md, "${section}": the checks in the order a request meets them.`,
      params: ROOM_PARAM,
      body: sdpBody("application/sdp"),
      security: TOKEN,
      rateLimited: true,
      readsBody: true,
      responses: {
        201: created,
        400: error("`invalid room name`, `invalid SDP`"),
        401: UNAUTHORIZED,
        307: { description: "cluster only: this node is draining; the same request to a live node", headers: { Location: str("the same route on that node") } },
        415: error("`unsupported media type`: not application/sdp"),
        503: CAPACITY("`server at capacity: …`, `server is shutting down`; in a cluster also `node is draining`, `cluster directory unavailable`"),
        ...(kind === "whip"
          ? {
              403: error("`rejected by hook`"),
              409: error("`publisher already exists in this room`"),
              422: error("`no supported codec in offer: …`"),
            }
          : {
              403: error("`rejected by hook`, `subscriber limit reached`"),
              404: error("`no active publisher in room`"),
              422: error("`offer cannot receive the publisher's codec: <codec>`"),
            }),
      },
    }),
    options: route({
      tags,
      summary: `What the ${name} endpoint accepts`,
      params: ROOM_PARAM,
      rateLimited: true,
      responses: {
        204: {
          description: "`Accept-Post: application/sdp` and the ICE servers' `Link` headers",
          headers: { "Accept-Post": str("application/sdp") },
        },
      },
    }),
    notAllowed: route({
      tags,
      summary: "Not a method of this endpoint",
      params: ROOM_PARAM,
      rateLimited: true,
      readsBody: true,
      responses: { 405: METHOD_NOT_ALLOWED("POST, OPTIONS") },
    }),
    sessionDelete: route({
      tags,
      summary: "End the session",
      params: params({ id: "the session id of the Location header" }),
      security: TOKEN,
      rateLimited: true,
      readsBody: true,
      responses: {
        200: empty("ended; empty body"),
        401: UNAUTHORIZED,
        404: error("`session not found`"),
        502: error("cluster only: `node unreachable`, the session's node did not answer"),
      },
    }),
    sessionPatch: route({
      tags,
      summary: "Trickle ICE candidates or restart ICE (RFC 8840 fragment)",
      params: params({ id: "the session id of the Location header" }),
      body: sdpBody("application/trickle-ice-sdpfrag"),
      security: TOKEN,
      rateLimited: true,
      readsBody: true,
      responses: {
        200: { ...text("ICE restart: the server's new fragment", "application/trickle-ice-sdpfrag"), headers: { ETag: str("the new tag") } },
        204: empty("candidates added"),
        400: error("`invalid SDP fragment`"),
        401: UNAUTHORIZED,
        404: error("`session not found`"),
        412: error("`precondition failed`: If-Match is neither `*` nor the current ETag"),
        415: error("`unsupported media type`"),
        428: error("`If-Match required`"),
        502: error("cluster only: `node unreachable`, the session's node did not answer"),
      },
    }),
    sessionOptions: route({
      tags,
      summary: "What the session resource accepts",
      params: params({ id: "the session id" }),
      rateLimited: true,
      responses: {
        204: { description: "`Accept-Patch: application/trickle-ice-sdpfrag`", headers: { "Accept-Patch": str("application/trickle-ice-sdpfrag") } },
      },
    }),
    sessionNotAllowed: route({
      tags,
      summary: "Not a method of the session resource",
      params: params({ id: "the session id" }),
      rateLimited: true,
      readsBody: true,
      responses: { 405: METHOD_NOT_ALLOWED("DELETE, PATCH, OPTIONS"), 404: error("`not found`") },
    }),
  };
};

const roomManager = { security: REQUIRED_TOKEN.concat([{}]), rateLimited: true, params: ROOM_PARAM } as const;
const managerErrors = { 400: INVALID_ROOM, 401: UNAUTHORIZED };

const relayCall = (summary: string, responses: Record<number, Answer>, more: Partial<RouteDoc> = {}): FastifySchema =>
  route({
    tags: ["relay"],
    summary,
    description: 'docs/bridges.md, "Relay tasks". Signed with the query parameters n, r and k = hex md5(r + RELAY_KEY).',
    querystring: obj({ n: str("the account, 1–64 characters"), r: str("a nonce of 1–10 characters"), k: str("hex md5(r + RELAY_KEY), any case") }),
    rateLimited: true,
    errorShape: RELAY_ANSWER,
    ...more,
    responses: {
      403: json("`forbidden: …`: the API is off, or the signature is missing or wrong", RELAY_ANSWER),
      429: { ...json("`too many requests: …`: the account's or the address's limit is spent", { oneOf: [RELAY_ANSWER, ERROR_SCHEMA] }), headers: RETRY_AFTER },
      ...responses,
    },
  });

const transcoder = (summary: string, responses: Record<number, Answer>, more: Partial<RouteDoc> = {}): FastifySchema =>
  route({
    tags: ["streams"],
    summary,
    description: 'docs/bridges.md, "/start-stream jobs".',
    security: only("apiKey"),
    errorShape: TRANSCODER_ANSWER,
    ...more,
    responses: { 403: json("`Forbidden`: X-API-Key missing or wrong, or TRANSCODER_API_KEY unset", TRANSCODER_ANSWER), ...responses },
  });

const whip = sessionSchemas("whip");
const whep = sessionSchemas("whep");
const STREAM_ID = { type: "string", pattern: ROOM_NAME_RE.source, description: "a room name" };

/** Every route's schema, by route. */
export const SCHEMAS = {
  whip,
  whep,

  healthz: route({ tags: ["status"], summary: "Liveness", responses: { 200: text("`ok`") } }),
  metrics: route({
    tags: ["status"],
    summary: "Prometheus metrics",
    description: 'docs/api.md, "Metrics". Needs METRICS_TOKEN when it is set.',
    security: TOKEN,
    responses: { 200: text("the Prometheus text format"), 401: UNAUTHORIZED },
  }),
  bootstrap: route({ tags: ["status"], summary: "What the pages need to know", rateLimited: true, responses: { 200: json("server features", BOOTSTRAP) } }),
  rooms: route({
    tags: ["rooms"],
    summary: "Every room that has a publisher",
    rateLimited: true,
    responses: { 200: json("the rooms; fields may be added, never removed", { type: "array", items: ROOM_INFO }) },
  }),
  closeRoom: route({
    tags: ["rooms"],
    summary: "Close a room: disconnect everyone, finalise recordings, stop its bridges",
    params: ROOM_PARAM,
    security: REQUIRED_TOKEN,
    rateLimited: true,
    jsonBody: true,
    responses: { 200: json("closed", obj({ closed: str() })), 401: UNAUTHORIZED, 404: error("`room not found`") },
  }),

  records: route({
    tags: ["records"],
    summary: "The recordings, newest first",
    security: TOKEN,
    rateLimited: true,
    responses: { 200: json("a room-scoped credential sees its rooms' files only", { type: "array", items: RECORD_ENTRY }), 401: UNAUTHORIZED },
  }),
  recordFile: route({
    tags: ["records"],
    summary: "One recording, with Range support",
    params: params({ name: "a recording's file name" }),
    querystring: TOKEN_QUERY,
    security: TOKEN.concat(only("queryToken")),
    rateLimited: true,
    responses: {
      200: file("the file", ["video/x-ivf", "video/h264", "audio/ogg", "video/webm", "video/mp4"]),
      206: file("the requested range", ["video/x-ivf", "video/h264", "audio/ogg", "video/webm", "video/mp4"]),
      304: empty("not modified"),
      400: error("`invalid record name`"),
      401: UNAUTHORIZED,
      404: error("`record not found`"),
      416: error("the range cannot be satisfied"),
    },
  }),
  recordDeeper: route({
    tags: ["records"],
    summary: "Any deeper path under /records/: never a recording",
    rateLimited: true,
    responses: { 400: error("`invalid record name`") },
  }),

  hlsStart: route({
    ...roomManager,
    tags: ["hls"],
    summary: "Start the room's HLS",
    jsonBody: true,
    responses: {
      200: json("already running", BRIDGE_INFO),
      201: json("started", BRIDGE_INFO),
      ...managerErrors,
      404: error("`no active publisher in room`"),
      409: error("the name is in use by a /start-stream job"),
      422: error("`cannot bridge AV1 video`"),
      503: CAPACITY("the FFmpeg job limit, `server is shutting down`"),
    },
  }),
  hlsInfo: route({
    ...roomManager,
    tags: ["hls"],
    summary: "The room's HLS job",
    responses: { 200: json("running", BRIDGE_INFO), ...managerErrors, 404: error("`hls not running`") },
  }),
  hlsStop: route({
    ...roomManager,
    tags: ["hls"],
    summary: "Stop the room's HLS",
    jsonBody: true,
    responses: { 200: json("stopped", obj({ stopped: str() })), ...managerErrors, 404: error("`hls not running`") },
  }),
  hlsFile: route({
    tags: ["hls"],
    summary: "A playlist or segment of room HLS or of a /start-stream job",
    description: 'docs/bridges.md, "HLS". Not rate limited.',
    params: params({ name: "a room or stream name", file: "stream.m3u8 or seg_<digits>.ts" }),
    querystring: TOKEN_QUERY,
    security: TOKEN.concat(only("queryToken")),
    responses: {
      200: file("the file", ["application/vnd.apple.mpegurl", "video/mp2t"]),
      206: file("the requested range", ["video/mp2t"]),
      304: empty("not modified"),
      400: error("`invalid HLS path`"),
      401: UNAUTHORIZED,
      404: error("`not found`"),
      416: error("the range cannot be satisfied"),
    },
  }),
  hlsDeeper: route({ tags: ["hls"], summary: "Any other path under /hls/", responses: { 400: error("`invalid HLS path`") } }),

  restreamAdd: route({
    ...roomManager,
    tags: ["restreams"],
    summary: "Push the room to an RTMP server",
    body: obj({ url: str("rtmp:// or rtmps:// with a host and a path, at most 2048 characters") }),
    jsonBody: true,
    responses: {
      201: json("started", BRIDGE_INFO),
      400: error("`invalid room name`, `invalid restream url: …`, `invalid request body`"),
      401: UNAUTHORIZED,
      404: error("`no active publisher in room`"),
      409: error("`too many restreams for this room (at most 8)`"),
      415: error("`unsupported media type`"),
      422: error("`cannot bridge AV1 video`"),
      503: CAPACITY("the FFmpeg job limit, `server is shutting down`"),
    },
  }),
  restreamList: route({
    ...roomManager,
    tags: ["restreams"],
    summary: "The room's restreams",
    responses: { 200: json("the restreams", { type: "array", items: BRIDGE_INFO }), ...managerErrors, 404: error("`no active publisher in room`") },
  }),
  restreamStop: route({
    ...roomManager,
    tags: ["restreams"],
    summary: "Stop one restream",
    params: params({ room: "a room name", id: "16 hex digits" }),
    jsonBody: true,
    responses: { 200: json("stopped", obj({ stopped: str() })), ...managerErrors, 404: error("`restream not found`") },
  }),

  ingestStart: route({
    ...roomManager,
    tags: ["ingest"],
    summary: "Make the room live from a source FFmpeg pulls",
    description: 'docs/bridges.md, "Ingest": the sources accepted and every 400 message.',
    body: obj({ url: str("rtmp(s)://, http(s)://….m3u8|.mp4|.flv, or a file under MEDIA_DIR"), loop: { type: "boolean" } }, ["url"]),
    jsonBody: true,
    responses: {
      201: json("FFmpeg started", INGEST_INFO),
      400: error("`invalid room name`, a body or source refused, with the reason"),
      401: UNAUTHORIZED,
      409: error("`publisher already exists in this room`"),
      415: error("`unsupported media type`"),
      422: error("`the source has neither video nor audio`"),
      503: CAPACITY("`server at capacity: too many rooms`, the FFmpeg job limit, `server is shutting down`"),
    },
  }),
  ingestInfo: route({
    ...roomManager,
    tags: ["ingest"],
    summary: "The running ingest, else the last one that ended",
    responses: { 200: json("the ingest", INGEST_INFO), ...managerErrors, 404: error("`no ingest in this room`") },
  }),
  ingestStop: route({
    ...roomManager,
    tags: ["ingest"],
    summary: "Stop the ingest; the room ends",
    jsonBody: true,
    responses: {
      200: json("stopped", obj({ stopped: str(), room: str(), state: JOB_STATE })),
      ...managerErrors,
      404: error("`no ingest in this room`"),
    },
  }),

  startStream: transcoder(
    "Start (or restart) an RTMP-to-HLS job",
    {
      200: json("`Stream <id> started.`", TRANSCODER_ANSWER),
      400: json("`Invalid request body: streamId and rtmpUrl are required.`", TRANSCODER_ANSWER),
      409: json("the name is in use by a room's HLS", TRANSCODER_ANSWER),
      503: { ...json("the FFmpeg job limit", TRANSCODER_ANSWER), headers: RETRY_AFTER },
    },
    { body: obj({ streamId: STREAM_ID, rtmpUrl: str("rtmp(s)://host/path") }), readsBody: true },
  ),
  stopStream: transcoder(
    "Stop a job and remove its HLS directory",
    {
      200: json("`Stream <id> stopped.`", TRANSCODER_ANSWER),
      400: json("`Invalid request body: streamId is required.`", TRANSCODER_ANSWER),
      404: json("`Stream <id> not found.`", TRANSCODER_ANSWER),
    },
    { body: obj({ streamId: STREAM_ID }), readsBody: true },
  ),
  streams: transcoder("Every job", {
    200: json("the jobs", obj({ status: { type: "string", enum: ["success"] }, streams: { type: "array", items: STREAM_INFO } })),
  }),

  relayCommand: relayCall(
    "Start, stop, replace or resume relay tasks",
    {
      200: json("`receive task success!`", RELAY_ANSWER),
      400: json("the reason; `the body must be JSON (Content-Type: application/json)`", RELAY_ANSWER),
      503: { ...json("the FFmpeg job limit, `server is shutting down`", RELAY_ANSWER), headers: RETRY_AFTER },
    },
    {
      body: { type: "object", description: 'the "forwardRequest" body: cmd, type, transcallbackurl, list (docs/bridges.md, "Relay tasks")' },
      readsBody: true,
    },
  ),
  relayList: relayCall("Every relay task", { 200: json("the tasks", { type: "array", items: RELAY_TASK }) }),
  relayTask: relayCall(
    "One relay task",
    { 200: json("the task", RELAY_TASK), 404: json("`no relay task with this id`", RELAY_ANSWER) },
    { params: params({ id: "the task id" }) },
  ),

  srsCallback: route({
    tags: ["callbacks"],
    summary: "SRS on_publish/on_unpublish, nginx-rtmp on_publish/on_publish_done",
    description: 'docs/hooks.md, "SRS callback receiver". The body is read as text whatever its Content-Type, at most 64 KiB.',
    querystring: obj({ secret: str("SRS_CALLBACK_SECRET") }, []),
    body: { content: { "application/json": { schema: { type: "object" } }, "application/x-www-form-urlencoded": { schema: { type: "object" } } } },
    security: only("callbackSecret").concat([{}]),
    rateLimited: true,
    readsBody: true,
    responses: {
      200: text("SRS: an integer, 0 allows; nginx-rtmp: `ok`"),
      403: {
        description: "`forbidden` (a refused secret, JSON), or nginx-rtmp's `refused: <reason>` (text)",
        content: { "application/json": { schema: ERROR_SCHEMA }, "text/plain": { schema: str() } },
      },
    },
  }),

  whipBackup: route({
    tags: ["WHIP"],
    summary: "Join a room as its hot standby: kept warm, forwarded when the primary fails",
    description:
      'docs/api.md, "Hot standby". The same checks and answers as publishing; 409 while the room has a live backup, 422 when its codecs differ from the room\'s.',
    params: ROOM_PARAM,
    body: sdpBody("application/sdp"),
    security: TOKEN,
    rateLimited: true,
    readsBody: true,
    responses: {
      201: {
        description: "the SDP answer",
        content: { "application/sdp": { schema: str() } },
        headers: { Location: str("/api/whip/session/{id}"), ETag: str("the ICE session's tag") },
      },
      307: { description: "cluster only: this node is draining", headers: { Location: str("the same route on a live node") } },
      400: error("`invalid room name`, `invalid SDP`"),
      401: UNAUTHORIZED,
      403: error("`rejected by hook`"),
      409: error("`publisher already exists in this room`: a live backup is attached"),
      415: error("`unsupported media type`: not application/sdp"),
      422: error("`no supported codec in offer: …`, or `the room sends …; this publisher offers …`"),
      503: CAPACITY("`server at capacity: …`, `server is shutting down`"),
    },
  }),
  eventsCreate: route({
    tags: ["WHEP"],
    summary: "Open a WHEP event stream (urn:ietf:params:whep:ext:core:server-sent-events)",
    description: 'docs/api.md, "WHEP events". The body may list the event types wanted; none = all.',
    params: params({ id: "the WHEP session id" }),
    body: { type: "array", items: str() },
    security: TOKEN.concat(only("queryToken")),
    rateLimited: true,
    jsonBody: true,
    responses: {
      201: { description: "the stream's resource", headers: { Location: str("/api/whep/session/{id}/sse/{stream}") } },
      400: error("`expected a JSON array of event types`, `invalid request body`"),
      401: UNAUTHORIZED,
      404: error("`session not found`"),
    },
  }),
  eventsStream: route({
    tags: ["WHEP"],
    summary: "The event stream (text/event-stream): active, inactive, viewercount, reconnect, layers",
    params: params({ id: "the WHEP session id", stream: "the stream id of the Location header" }),
    security: TOKEN.concat(only("queryToken")),
    rateLimited: true,
    responses: {
      200: text("server-sent events, one JSON line of data each", "text/event-stream"),
      401: UNAUTHORIZED,
      404: error("`session not found`, `event stream not found`"),
    },
  }),
  eventsDelete: route({
    tags: ["WHEP"],
    summary: "Close an event stream",
    params: params({ id: "the WHEP session id", stream: "the stream id" }),
    security: TOKEN.concat(only("queryToken")),
    rateLimited: true,
    readsBody: true,
    responses: { 200: empty("closed"), 401: UNAUTHORIZED, 404: error("`session not found`, `event stream not found`") },
  }),
  playerStats: route({
    tags: ["WHEP"],
    summary: "A player's getStats() summary, for /metrics",
    description: 'docs/api.md, "Player statistics". The session id is the capability; at most 3 reports in any 3 s per session.',
    params: params({ id: "the WHEP session id of the Location header" }),
    body: PLAYER_REPORT_SCHEMA,
    security: TOKEN,
    rateLimited: true,
    jsonBody: true,
    responses: { 204: empty("taken"), 401: UNAUTHORIZED, 404: error("`session not found`: no such WHEP session") },
  }),
  playerStatsOptions: route({
    tags: ["WHEP"],
    summary: "What the statistics resource accepts",
    params: params({ id: "the WHEP session id" }),
    rateLimited: true,
    responses: { 204: { description: "`Accept-Post: application/json`", headers: { "Accept-Post": str("application/json") } } },
  }),
  playerStatsNotAllowed: route({
    tags: ["WHEP"],
    summary: "Not a method of the statistics resource",
    params: params({ id: "the WHEP session id" }),
    rateLimited: true,
    readsBody: true,
    responses: { 405: METHOD_NOT_ALLOWED("POST, OPTIONS") },
  }),
  drain: route({
    tags: ["cluster"],
    summary: "Drain this node: no new sessions, viewers moved, publishers kept until they leave",
    description: 'docs/api.md, "Cluster". Only registered when REDIS_URL is set.',
    security: REQUIRED_TOKEN,
    rateLimited: true,
    jsonBody: true,
    responses: { 202: json("draining", obj({ draining: str("this node's id"), seconds: { type: "integer" } })), 401: UNAUTHORIZED },
  }),

  openapi: route({
    tags: ["docs"],
    summary: "This document (OpenAPI 3.1)",
    rateLimited: true,
    responses: { 200: json("the OpenAPI document", obj({ openapi: str(), info: { type: "object" }, paths: { type: "object" } })) },
  }),
} as const;

/**
 * Routes that plugins register (the pages, hls.js, CORS preflights), by URL: the plugins take no
 * schema of their own, so these are given to the document (and only to it). The docs page's own
 * routes (/docs and its assets) stay out of the document.
 */
export const PLUGIN_ROUTE_SCHEMAS: Readonly<Record<string, FastifySchema>> = {
  "/*": route({
    tags: ["pages"],
    summary: "The pages (index.html, publish.html, play.html, records.html) and their assets",
    description: 'docs/api.md, "Pages". Served from WEB_DIR.',
    responses: {
      200: file("the file", ["text/html", "text/javascript", "text/css", "image/svg+xml"]),
      206: file("the requested range", ["text/html"]),
      304: empty("not modified"),
      403: error("a dotfile, or a path that leaves the directory"),
      404: error("`not found`"),
      416: error("the range cannot be satisfied"),
    },
  }),
  "/vendor/hls/*": route({
    tags: ["pages"],
    summary: "hls.js from its npm package (hls.min.mjs, hls.light.min.mjs and their maps)",
    responses: {
      200: file("the file", ["text/javascript", "application/json"]),
      206: file("the requested range", ["text/javascript", "application/json"]),
      304: empty("not modified"),
      403: error("a dotfile, or a path that leaves the directory"),
      404: error("`not found`"),
      416: error("the range cannot be satisfied"),
    },
  }),
  "*": route({
    tags: ["cors"],
    summary: "CORS preflight of every route",
    description: 'docs/api.md, "CORS".',
    jsonBody: true,
    responses: { 204: empty("the CORS headers"), 429: TOO_MANY },
  }),
};

export const TAGS = [
  { name: "WHIP", description: 'Publishing (docs/api.md, "WHIP", "Sessions")' },
  { name: "WHEP", description: 'Playing (docs/api.md, "WHEP", "Sessions")' },
  { name: "rooms", description: 'docs/api.md, "Rooms"' },
  { name: "status", description: 'docs/api.md, "Server status", "Metrics"' },
  { name: "records", description: 'docs/api.md, "Recordings"' },
  { name: "hls", description: 'docs/bridges.md, "HLS"' },
  { name: "restreams", description: 'docs/bridges.md, "RTMP restreams"' },
  { name: "ingest", description: 'docs/bridges.md, "Ingest"' },
  { name: "streams", description: 'docs/bridges.md, "/start-stream jobs" (X-API-Key, own answer shape)' },
  { name: "relay", description: 'docs/bridges.md, "Relay tasks" (n/r/k signature, own answer shape)' },
  { name: "callbacks", description: 'docs/hooks.md, "SRS callback receiver"' },
  { name: "pages", description: 'docs/api.md, "Pages"' },
  { name: "cors", description: 'docs/api.md, "CORS"' },
  { name: "cluster", description: 'docs/api.md, "Cluster" (REDIS_URL only)' },
  { name: "docs", description: "The OpenAPI document and its browsable page" },
];
