import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import { ROOM_NAME_RE } from "../config.js";
import { sendError } from "./errors.js";
import { tokenOf, unauthorized } from "./guard.js";

/** A recording's file name: `{room}_{kind}{n}_{unixSeconds}.{ext}`; nothing else is ever served. */
const RECORD_NAME_RE = /^([A-Za-z0-9_-]{1,64})_(?:video|audio)\d+_\d+\.(?:ivf|h264|ogg|webm|mp4)$/;

export function recordRoom(name: string): string | undefined {
  const m = RECORD_NAME_RE.exec(name);
  return m && ROOM_NAME_RE.test(m[1]) ? m[1] : undefined;
}

export interface RecordEntry {
  name: string;
  size: number;
  modTime: string;
  url: string;
}

export async function listRecords(dir: string): Promise<RecordEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const entries: (RecordEntry & { mtimeMs: number })[] = [];
  for (const name of names) {
    if (!RECORD_NAME_RE.test(name)) continue;
    try {
      const st = await stat(path.join(dir, name));
      if (!st.isFile()) continue;
      entries.push({
        name,
        size: st.size,
        modTime: st.mtime.toISOString().replace(/\.\d{3}Z$/, "Z"),
        url: `/records/${encodeURIComponent(name)}`,
        mtimeMs: st.mtimeMs,
      });
    } catch {
      // Deleted between readdir and stat.
    }
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name));
  return entries.map(({ mtimeMs: _m, ...e }) => e);
}

const CONTENT_TYPES: Record<string, string> = {
  ".ivf": "video/x-ivf",
  ".h264": "video/h264",
  ".ogg": "audio/ogg",
  ".webm": "video/webm",
  ".mp4": "video/mp4",
};

export function registerRecordRoutes(app: FastifyInstance, deps: { auth: Authorizer; recordDir: string }): void {
  const { auth } = deps;
  const root = path.resolve(deps.recordDir);

  app.get("/api/records", async (request, reply) => {
    const token = tokenOf(request);
    if (auth.enabled && !auth.allowsRead(token, undefined)) {
      // A room-scoped credential sees only its rooms' files.
      if (token === undefined) return unauthorized(reply);
      const mine = (await listRecords(root)).filter((r) => {
        const room = recordRoom(r.name);
        return room !== undefined && auth.allowsRead(token, room);
      });
      return mine;
    }
    return listRecords(root);
  });

  app.get<{ Params: { name: string } }>("/records/:name", async (request, reply) => {
    const { name } = request.params;
    // Only plain names of recordings: no separators, no dot segments, no NUL, nothing outside root.
    const room = recordRoom(name);
    if (room === undefined) return sendError(reply, 400, "invalid record name");
    if (auth.enabled && !auth.allowsRead(tokenOf(request, true), room)) return unauthorized(reply);
    const file = path.join(root, name);
    if (path.dirname(file) !== root) return sendError(reply, 400, "invalid record name");
    try {
      const st = await stat(file);
      if (!st.isFile()) return sendError(reply, 404, "record not found");
    } catch {
      return sendError(reply, 404, "record not found");
    }
    reply.header("Content-Type", CONTENT_TYPES[path.extname(name)] ?? "application/octet-stream");
    return reply.sendFile(name, root, { dotfiles: "deny", cacheControl: false, acceptRanges: true });
  });
  // Anything deeper under /records/ is never a recording (and must not fall through to the pages).
  app.get("/records/*", async (_request, reply) => sendError(reply, 400, "invalid record name"));
}
