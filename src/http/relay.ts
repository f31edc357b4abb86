// The relay API (docs/bridges.md, "Relay tasks"): POST /api/relay and its original path
// /api/cdn/v2/forwardRequest.action, GET /api/relay[/{id}]. Auth is n/r/k
// (k = md5(r + RELAY_KEY)), 100 calls per 5 minutes per account by default; replies in the
// API's own shape ({ http_code, msg, call_time }).

import { createHash } from "node:crypto";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { tokenMatches } from "../auth/auth.js";
import { parseRelayRequest, type RelayCommand } from "../bridges/relay/request.js";
import type { RelayTasks } from "../bridges/relay/tasks.js";
import type { Config } from "../config.js";
import type { RelayTaskInfo } from "../bridges/relay/types.js";
import { fail, isDomainError, type ErrorKind } from "../errors.js";
import type { JobRouting } from "./cluster.js";
import { RETRY_AFTER_SECONDS } from "./errors.js";
import { isClusterPeer } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export interface RelayRouteDeps {
  relays: RelayTasks;
  config: Pick<Config, "relayKey" | "relayAccounts" | "relayMinWindowSeconds" | "relayRateLimit" | "relayRateWindowSeconds">;
  /** A cluster's relay tasks: run by one node each, reached from any (src/http/cluster.ts). */
  jobs?: JobRouting;
}

declare module "fastify" {
  interface FastifyInstance {
    relays: RelayTasks;
  }
}

/**
 * The relay API's statuses for a refused command: 503 (with Retry-After) when the server cannot take
 * work now, 400 for everything the request got wrong, an unknown task id included.
 */
const RELAY_STATUS_OF_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid_input: 400,
  unauthorized: 400,
  forbidden: 400,
  not_found: 400,
  conflict: 400,
  unsupported_codec: 400,
  capacity: 503,
  shutting_down: 503,
  start_failed: 500,
};

const reply = (res: FastifyReply, status: number, msg: string): FastifyReply =>
  res
    .code(status)
    .type("application/json; charset=utf-8")
    .send({ http_code: String(status), msg, call_time: Date.now() });

export async function registerRelayRoutes(app: FastifyInstance, deps: RelayRouteDeps): Promise<void> {
  const { relays, config, jobs } = deps;
  app.decorate("relays", relays);
  const limiter = new RateLimiterMemory({ points: config.relayRateLimit, duration: config.relayRateWindowSeconds });

  /** n/r/k: the account, a nonce of at most 10 characters, md5(r + key) in hex. */
  const authorize = async (request: FastifyRequest, res: FastifyReply): Promise<boolean> => {
    const q = request.query as Record<string, unknown>;
    const key = config.relayKey;
    if (key === undefined) {
      await reply(res, 403, "forbidden: the relay API is off (RELAY_KEY is not set)");
      return false;
    }
    const { n, r, k } = q;
    if (typeof n !== "string" || n === "" || n.length > 64 || typeof r !== "string" || r === "" || r.length > 10 || typeof k !== "string") {
      await reply(res, 403, "forbidden: n, r (at most 10 characters) and k are required");
      return false;
    }
    if (config.relayAccounts.length > 0 && !config.relayAccounts.includes(n)) {
      await reply(res, 403, "forbidden: unknown account");
      return false;
    }
    const expected = createHash("md5")
      .update(r + key, "utf8")
      .digest("hex");
    if (!tokenMatches(k.toLowerCase(), expected)) {
      await reply(res, 403, "forbidden: k does not match md5(r + key)");
      return false;
    }
    // A request another node sent on was counted there.
    if (isClusterPeer(request)) return true;
    try {
      await limiter.consume(n);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      res.header("Retry-After", String(Math.max(1, Math.ceil(err.msBeforeNext / 1000))));
      await reply(res, 429, `too many requests: at most ${config.relayRateLimit} calls per ${config.relayRateWindowSeconds} s`);
      return false;
    }
    return true;
  };

  /** A command run on this node: it takes the leases of its tasks, given up again when they did not start. */
  const executeHere = async (routing: JobRouting, command: RelayCommand): Promise<void> => {
    const ids = command.tasks.map((t) => t.id);
    try {
      for (const id of ids) await routing.jobs.take("relay", id, command.cmd !== "1");
      await relays.execute(command);
    } finally {
      for (const id of ids) if (!relays.get(id)) routing.jobs.release("relay", id);
      relays.save();
    }
  };

  await app.register(async (scope) => {
    // Bad JSON and wrong content types answer in the API's shape too.
    scope.setErrorHandler((err: FastifyError, request, res) => {
      const status = err.statusCode ?? 500;
      if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") return reply(res, 413, "request body too large");
      if (status >= 400 && status < 500) return reply(res, 400, "the body must be JSON (Content-Type: application/json)");
      request.log.error({ err }, "relay request failed");
      return reply(res, 500, "internal server error");
    });

    const post = async (request: FastifyRequest, res: FastifyReply) => {
      if (!(await authorize(request, res))) return res;
      try {
        const command = parseRelayRequest(request.body, { minWindowMs: config.relayMinWindowSeconds * 1000, now: Date.now() });
        if (jobs) {
          const ids = command.tasks.map((t) => t.id);
          const where = await jobs.route(request, res, "relay", ids);
          if (where === "forwarded") return res;
          if (where === "split") throw fail("invalid_input", "the tasks of this command run on different nodes: send one command per task");
          await executeHere(jobs, command);
        } else {
          await relays.execute(command);
        }
        request.log.info({ cmd: command.cmd, relays: command.tasks.map((t) => t.id) }, "relay command");
      } catch (err) {
        if (!isDomainError(err)) throw err;
        const status = RELAY_STATUS_OF_KIND[err.kind];
        if (status === 503) res.header("Retry-After", RETRY_AFTER_SECONDS);
        return reply(res, status, err.message);
      }
      return reply(res, 200, "receive task success!");
    };
    // The signature and the body are checked by the route, with this API's messages; the schemas only document.
    const command = { schema: SCHEMAS.relayCommand, attachValidation: true };
    scope.post("/api/relay", command, post);
    scope.post("/api/cdn/v2/forwardRequest.action", command, post);

    scope.get("/api/relay", { schema: SCHEMAS.relayList, attachValidation: true }, async (request, res) => {
      if (!(await authorize(request, res))) return res;
      if (!jobs) return relays.list();
      const there = (await jobs.fromOthers(request)).flatMap((a) => (Array.isArray(a) ? (a as RelayTaskInfo[]) : []));
      return [...relays.list(), ...there];
    });
    scope.get<{ Params: { id: string } }>("/api/relay/:id", { schema: SCHEMAS.relayTask, attachValidation: true }, async (request, res) => {
      if (!(await authorize(request, res))) return res;
      if (jobs && !relays.get(request.params.id) && (await jobs.route(request, res, "relay", [request.params.id])) === "forwarded") return res;
      const info = relays.get(request.params.id);
      if (!info) return reply(res, 404, "no relay task with this id");
      return info;
    });
  });
}
