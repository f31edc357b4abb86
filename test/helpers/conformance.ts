// Every answer a test server gives is checked against the OpenAPI document (/api/openapi.json):
// its status must be documented for its route and method, and a JSON body must match the
// documented schema. What does not conform is collected, and the test file fails at its end with
// the list, so every suite that starts a server checks the document.
//
// test/helpers/server.ts installs it: `buildApp(core, { instrument: checkConformance })`.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { afterAll } from "vitest";
import { ERROR_SCHEMA } from "../../src/http/schemas.js";

interface Answer {
  description?: string;
  content?: Record<string, { schema?: object }>;
}
interface Operation {
  responses?: Record<string, Answer>;
}
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

/** What the router of a request matched, and what was answered. */
export interface Exchange {
  method: string;
  /** fastify's route URL (`/api/rooms/:room/hls`), undefined when no route matched. */
  routeUrl: string | undefined;
  status: number;
  contentType: string | undefined;
  /** The serialized body, when it is text (files are streamed and not checked). */
  body: string | undefined;
}

/** Answers given without a route (no such path, a broken URL): the API's error shape. */
const NO_ROUTE_STATUSES = new Set([400, 404, 413, 415, 429, 500]);
/** The docs page's own routes (@fastify/swagger-ui) are not in the document. */
const DOCS_PAGE = /^\/docs(\/|$)/;

/** fastify's `/a/:b/*` as the document's `/a/{b}/{*}`. */
export function openApiPath(routeUrl: string): string {
  const url = routeUrl === "*" ? "/*" : routeUrl;
  return url.replace(/:(\w+)/g, "{$1}").replace(/\*/g, "{*}");
}

const ajv = new Ajv2020({ strict: false, allErrors: false });
const compiled = new WeakMap<object, ValidateFunction>();
function validatorOf(schema: object): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

const NOT_JSON = Symbol("not JSON");
function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return NOT_JSON;
  }
}

const essence = (type: string | undefined): string | undefined => type?.split(";")[0]?.trim().toLowerCase();

/** Why an answer does not conform to the document, or undefined when it does. */
export function nonConformance(doc: OpenApiDocument, x: Exchange): string | undefined {
  const what = `${x.method} ${x.routeUrl ?? "(no route)"} → ${x.status}`;
  const type = essence(x.contentType);
  if (x.routeUrl === undefined) {
    if (!NO_ROUTE_STATUSES.has(x.status)) return `${what}: not a status of an unrouted request`;
    if (type === "application/json" && x.body && !validatorOf(ERROR_SCHEMA)(safeParse(x.body)))
      return `${what}: not the API's error shape: ${x.body.slice(0, 200)}`;
    return undefined;
  }
  if (DOCS_PAGE.test(x.routeUrl)) return undefined;
  const path = doc.paths[openApiPath(x.routeUrl)];
  const op = path?.[x.method.toLowerCase()] ?? (x.method === "HEAD" ? path?.get : undefined);
  if (op === undefined) return `${what}: the route is not in the document`;
  const responses = op.responses ?? {};
  const answer = responses[String(x.status)] ?? responses[`${String(x.status)[0]}XX`] ?? responses.default;
  if (answer === undefined) return `${what}: status not documented (documented: ${Object.keys(responses).join(", ")})`;
  if (type !== "application/json" || x.body === undefined || x.body === "" || x.method === "HEAD") return undefined;
  const schema = answer.content?.["application/json"]?.schema;
  if (schema === undefined) return `${what}: a JSON body where the document has ${Object.keys(answer.content ?? {}).join(", ") || "no body"}`;
  const value = safeParse(x.body);
  if (value === NOT_JSON) return `${what}: the body is not JSON`;
  const validate = validatorOf(schema);
  if (validate(value)) return undefined;
  return `${what}: the body does not match the documented schema (${ajv.errorsText(validate.errors)}): ${x.body.slice(0, 200)}`;
}

const violations = new Map<string, number>();

function record(problem: string): void {
  violations.set(problem, (violations.get(problem) ?? 0) + 1);
}

/** The violations seen so far in this test file, and forgets them. */
export function takeViolations(): string[] {
  const list = [...violations].map(([p, n]) => (n > 1 ? `${p} (${n} times)` : p));
  violations.clear();
  return list;
}

function exchangeOf(request: FastifyRequest, reply: FastifyReply, payload: unknown): Exchange {
  const type = reply.getHeader("content-type");
  return {
    method: request.method,
    routeUrl: request.routeOptions.url,
    status: reply.statusCode,
    contentType: typeof type === "string" ? type : undefined,
    body: typeof payload === "string" ? payload : Buffer.isBuffer(payload) ? payload.toString("utf8") : undefined,
  };
}

// Registered as the test file is collected (this module is imported by it), so it runs after the
// file's own afterAll hooks have closed their servers.
afterAll(() => {
  const found = takeViolations();
  if (found.length > 0) {
    throw new Error(`answers that do not match the OpenAPI document (src/http/schemas.ts):\n  ${found.join("\n  ")}`);
  }
});

/** The `instrument` of buildApp: checks every answer of this app against its own document. */
export function checkConformance(app: FastifyInstance): void {
  let doc: OpenApiDocument | undefined;
  app.addHook("onSend", async (request, reply, payload) => {
    doc ??= app.swagger() as unknown as OpenApiDocument;
    const problem = nonConformance(doc, exchangeOf(request, reply, payload));
    if (problem !== undefined) record(problem);
    return payload;
  });
}
