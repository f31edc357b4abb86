import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import type { Authorizer } from "../auth/auth.js";
import { ROOM_NAME_RE } from "../config.js";
import { sendError } from "./errors.js";
import { tokenOf, unauthorized } from "./guard.js";

/**
 * A recording's file name, nothing else is ever served: a track file
 * `{room}_{kind}{n}_{unixSeconds}.{ivf|h264|ogg}`, or a session merged for playback
 * `{room}_{unixSeconds}.{webm|mp4}` (src/recording/playback.ts).
 */
const TRACK_NAME_RE = /^([A-Za-z0-9_-]{1,64})_(?:video|audio)\d+_(\d{1,12})\.(?:ivf|h264|ogg)$/;
const PLAYBACK_NAME_RE = /^([A-Za-z0-9_-]{1,64})_(\d{1,12})\.(?:webm|mp4)$/;
/** Track files of one session are named within a few seconds of the session's merged file. */
const SESSION_WINDOW_S = 10;

export interface RecordName {
  room: string;
  seconds: number;
  /** A merged, playable session file (.webm/.mp4) rather than one track. */
  playback: boolean;
}

export function parseRecordName(name: string): RecordName | undefined {
  const track = TRACK_NAME_RE.exec(name);
  const m = track ?? PLAYBACK_NAME_RE.exec(name);
  if (!m || !ROOM_NAME_RE.test(m[1])) return undefined;
  return { room: m[1], seconds: Number(m[2]), playback: !track };
}

export function recordRoom(name: string): string | undefined {
  return parseRecordName(name)?.room;
}

export interface RecordEntry {
  name: string;
  size: number;
  modTime: string;
  url: string;
  /** URL of the merged .webm/.mp4 of this file's session, once it exists. */
  playback?: string;
}

const recordUrl = (name: string) => `/records/${encodeURIComponent(name)}`;

/**
 * The merged file of a track file's session: same room, named at or up to a few seconds before
 * the track (the session's earliest track second), the latest such one.
 */
function playbackFor(rec: RecordName, merged: RecordName[], names: Map<RecordName, string>): string | undefined {
  let best: RecordName | undefined;
  for (const m of merged) {
    if (m.room !== rec.room || m.seconds > rec.seconds || rec.seconds - m.seconds > SESSION_WINDOW_S) continue;
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
  const merged = entries.filter((e) => e.parsed.playback).map((e) => e.parsed);
  const mergedNames = new Map(entries.filter((e) => e.parsed.playback).map((e) => [e.parsed, e.name]));
  for (const e of entries) {
    const target = e.parsed.playback ? e.name : playbackFor(e.parsed, merged, mergedNames);
    if (target) e.playback = recordUrl(target);
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name));
  return entries.map(({ mtimeMs: _m, parsed: _p, ...e }) => e);
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
      const st = await lstat(file);
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
