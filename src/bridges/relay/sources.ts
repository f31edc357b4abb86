// What a relay task plays, resolved before it is accepted: each src under the one URL and file
// policy (policy.ts; files and http(s) VOD, never live or HLS sources), the watermark image, and
// ffprobe's view of each file (duration, creation_time, audio) cut into plan entries.

import { fail, isDomainError } from "../../errors.js";
import { resolveIngestSource, type IngestSource, type SourcePolicy } from "../ingest-source.js";
import { checkUrl, fileType, IMAGE_FILE_TYPES, resolveMediaFile } from "../policy.js";
import { probeMedia } from "../probe.js";
import { planEntries, type PlanEntry, type ResolvedFile } from "./plan.js";
import type { Gravity, RelayTaskSpec } from "./request.js";

const PROBE_TIMEOUT_MS = 10_000;

export interface RelaySources {
  entries: PlanEntry[];
  /** -protocol_whitelist of the run's inputs (the list's files and the watermark). */
  protocols: string[];
  watermark: { input: string; gravity: Gravity } | undefined;
  /** Why the sources cannot be played now (one could not be read); the targets fail when they start. */
  unreadable: string | undefined;
  /** Every file has audio (true while unknown). */
  hasAudio: boolean;
}

/** ffprobe's duration and creation_time of a source, under the source's whitelist. */
async function probeSource(src: IngestSource): Promise<ResolvedFile & { readable: boolean; audio: boolean }> {
  const p = await probeMedia(src.input, src.protocols, PROBE_TIMEOUT_MS);
  return { input: src.input, duration: p?.duration, creationMs: p?.creationMs, readable: p !== undefined, audio: p?.audio !== undefined };
}

/** A watermark image: http(s) .png/.jpg on an allowed host, or a .png/.jpg file under MEDIA_DIR. */
export async function resolveWatermarkImage(raw: string, policy: SourcePolicy): Promise<IngestSource> {
  if (!IMAGE_FILE_TYPES.includes(fileType(raw))) throw fail("invalid_input", "wmimage must be a .png or .jpg image");
  if (/^https?:\/\//i.test(raw)) {
    const verdict = checkUrl(raw, "image", policy.allowedHosts);
    if (!verdict.ok && verdict.problem === "host_not_allowed")
      throw fail("invalid_input", `wmimage: host "${verdict.host ?? ""}" is not in INGEST_ALLOWED_HOSTS`);
    if (!verdict.ok) throw fail("invalid_input", "wmimage: invalid URL");
    return { kind: "http", input: raw, display: raw, protocols: ["http", "https", "tcp", "tls"], live: false };
  }
  const file = await resolveMediaFile(raw, policy.mediaDir, IMAGE_FILE_TYPES);
  if (!file.ok) {
    const lexical = file.problem === "colon" || file.problem === "dot_segment";
    throw fail("invalid_input", lexical ? "wmimage: file paths must be under MEDIA_DIR" : "wmimage: no such image under MEDIA_DIR");
  }
  return { kind: "file", input: `file:${file.real}`, display: file.display, protocols: ["file"], live: false };
}

/** Resolves every source under the URL policy ("invalid_input" on a bad one) and probes them into entries. */
export async function resolveRelaySources(spec: RelayTaskSpec, policy: SourcePolicy): Promise<RelaySources> {
  const sources: IngestSource[] = [];
  for (const [i, s] of spec.src.entries()) {
    let src: IngestSource;
    try {
      src = await resolveIngestSource(s.url, policy);
    } catch (err) {
      if (isDomainError(err)) throw fail(err.kind, `src[${i}]: ${err.message}`);
      throw err;
    }
    if (src.kind === "rtmp" || src.kind === "hls")
      throw fail("invalid_input", `src[${i}]: a relay plays files (.mp4, .flv, … under MEDIA_DIR, or http(s) .mp4/.flv), not live or HLS sources`);
    sources.push(src);
  }
  const protocols = new Set(["file"]);
  for (const s of sources) for (const p of s.protocols) protocols.add(p);
  let watermark: RelaySources["watermark"];
  if (spec.watermark) {
    const img = await resolveWatermarkImage(spec.watermark.image, policy);
    for (const p of img.protocols) protocols.add(p);
    watermark = { input: img.input, gravity: spec.watermark.gravity };
  }
  const files = await Promise.all(sources.map(probeSource));
  // A source that cannot be read now (host down, file not there yet) is no fault of the request:
  // the task is accepted and its targets fail with a code 1 callback when they start.
  const bad = files.findIndex((f) => !f.readable);
  if (bad >= 0) {
    const unreadable = `src[${bad}] ${spec.src[bad]?.url ?? ""} cannot be read`;
    return { entries: [], protocols: [...protocols], watermark, unreadable, hasAudio: true };
  }
  const entries = planEntries(
    files,
    spec.src.map((s) => ({ windows: s.windows, absWindows: s.absWindows })),
  );
  return { entries, protocols: [...protocols], watermark, unreadable: undefined, hasAudio: files.every((f) => f.audio) };
}
