import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import { CONTENT_TYPES, inSession, parseRecordName, type PlaybackFileName, type RecordName, type TrackFileName } from "../recording/names.js";
import { sendError } from "./errors.js";
import { isClusterPeer, tokenOf, unauthorized } from "./guard.js";
import { SCHEMAS } from "./schemas.js";

export interface RecordEntry {
  name: string;
  size: number;
  modTime: string;
  url: string;
  /** URL of the merged .webm/.mp4 of this file's session, once it exists. */
  playback?: string;
}

const recordUrl = (name: string) => `/records/${encodeURIComponent(name)}`;

/** The merged file of a track file's session: the latest of those it belongs to. */
function playbackFor(rec: TrackFileName, merged: PlaybackFileName[], names: Map<RecordName, string>): string | undefined {
  let best: PlaybackFileName | undefined;
  for (const m of merged) {
    if (!inSession(rec, m)) continue;
    if (!best || m.seconds > best.seconds) best = m;
  }
  return best && names.get(best);
}

export async function listRecords(dir: string): Promise<RecordEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const entries: (RecordEntry & { mtimeMs: number; parsed: RecordName })[] = [];
  for (const name of names) {
    const parsed = parseRecordName(name);
    if (!parsed) continue;
    try {
      // lstat: a symlink planted in RECORD_DIR is neither listed nor served (as /hls refuses them).
      const st = await lstat(path.join(dir, name));
      if (!st.isFile()) continue;
      entries.push({
        name,
        size: st.size,
        modTime: st.mtime.toISOString().replace(/\.\d{3}Z$/, "Z"),
        url: recordUrl(name),
        mtimeMs: st.mtimeMs,
        parsed,
      });
    } catch {
      // Deleted between readdir and stat.
    }
  }
  const merged = entries.map((e) => e.parsed).filter((p): p is PlaybackFileName => p.playback);
  const mergedNames = new Map<RecordName, string>(entries.filter((e) => e.parsed.playback).map((e) => [e.parsed, e.name]));
  for (const e of entries) {
    const target = e.parsed.playback ? e.name : playbackFor(e.parsed, merged, mergedNames);
    if (target) e.playback = recordUrl(target);
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name));
  return entries.map(({ mtimeMs: _m, parsed: _p, ...e }) => e);
}

/** Other nodes' recordings (src/http/cluster.ts): listed with this node's, served from any node. */
export interface RemoteRecords {
  /** The other nodes' lists, each filtered by that node for the request's credentials. */
  list(request: FastifyRequest): Promise<RecordEntry[]>;
  /** Relays the file from the node that has it; false when none has. */
  serve(request: FastifyRequest, reply: FastifyReply, name: string): Promise<boolean>;
}

export function registerRecordRoutes(app: FastifyInstance, deps: { auth: Authorizer; recordDir: string; remote?: RemoteRecords }): void {
  const { auth } = deps;
  const root = path.resolve(deps.recordDir);
  // A node asking for this node's list gets only this node's files.
  const remote = (request: FastifyRequest) => (deps.remote && !isClusterPeer(request) ? deps.remote : undefined);

  app.get("/api/records", { schema: SCHEMAS.records }, async (request, reply) => {
    const token = tokenOf(request);
    let listed: RecordEntry[];
    if (auth.enabled && !auth.allowsRead(token, undefined)) {
      // A room-scoped credential sees only its rooms' files.
      if (token === undefined) return unauthorized(reply);
      listed = (await listRecords(root)).filter((r) => {
        const room = parseRecordName(r.name)?.room;
        return room !== undefined && auth.allowsRead(token, room);
      });
    } else {
      listed = await listRecords(root);
    }
    const others = remote(request);
    if (!others) return listed;
    const names = new Set(listed.map((r) => r.name));
    const all = [...listed, ...(await others.list(request)).filter((r) => !names.has(r.name))];
    return all.sort((a, b) => b.modTime.localeCompare(a.modTime) || a.name.localeCompare(b.name));
  });

  app.get<{ Params: { name: string } }>("/records/:name", { schema: SCHEMAS.recordFile, attachValidation: true }, async (request, reply) => {
    const { name } = request.params;
    // Only plain names of recordings: no separators, no dot segments, no NUL, nothing outside root.
    const parsed = parseRecordName(name);
    if (parsed === undefined) return sendError(reply, 400, "invalid record name");
    if (auth.enabled && !auth.allowsRead(tokenOf(request, true), parsed.room)) return unauthorized(reply);
    const file = path.join(root, name);
    if (path.dirname(file) !== root) return sendError(reply, 400, "invalid record name");
    try {
      const st = await lstat(file);
      if (!st.isFile()) return sendError(reply, 404, "record not found");
    } catch {
      if (await remote(request)?.serve(request, reply, name)) return reply;
      return sendError(reply, 404, "record not found");
    }
    reply.header("Content-Type", CONTENT_TYPES[parsed.extension]);
    return reply.sendFile(name, root, { dotfiles: "deny", cacheControl: false, acceptRanges: true });
  });
  // Anything deeper under /records/ is never a recording (and must not fall through to the pages).
  app.get("/records/*", { schema: SCHEMAS.recordDeeper }, async (_request, reply) => sendError(reply, 400, "invalid record name"));
}
