// FFmpeg's -protocol_whitelist, per job: the job names the protocols each input needs, and
// concat/subfile/pipe/data/fd are refused outright, so a URL a user gave can never make FFmpeg read
// a local file list, a file slice, stdin or inline data. Which URLs reach FFmpeg at all is
// policy.ts's decision; this is the second fence, inside FFmpeg.

/** Protocols no job may whitelist: they read local files, file slices, stdin or inline data. */
export const FORBIDDEN_PROTOCOLS: readonly string[] = ["concat", "concatf", "subfile", "pipe", "data", "fd"];

const PROTOCOL_RE = /^[a-z][a-z0-9_+-]{0,31}$/;

/** Validates a whitelist and returns it joined for FFmpeg; throws on a forbidden or odd name. */
export function protocolList(protocols: readonly string[]): string {
  if (protocols.length === 0) throw new Error("a protocol whitelist needs at least one protocol");
  for (const p of protocols) {
    if (!PROTOCOL_RE.test(p)) throw new Error(`invalid protocol name "${p}" in whitelist`);
    if (FORBIDDEN_PROTOCOLS.includes(p)) throw new Error(`protocol "${p}" may never be whitelisted`);
  }
  return protocols.join(",");
}

/** `-protocol_whitelist <list>` for an output (inputs get theirs from JobSpec.protocols). */
export function whitelistArgs(protocols: readonly string[]): string[] {
  return ["-protocol_whitelist", protocolList(protocols)];
}

/**
 * The job's arguments with `-protocol_whitelist` placed before every `-i`; every whitelist in the
 * result (also ones the job put before an output) is checked against FORBIDDEN_PROTOCOLS.
 */
export function withWhitelist(args: readonly string[], protocols: readonly string[]): string[] {
  const list = protocolList(protocols);
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-protocol_whitelist") {
      const value = args[i + 1];
      if (value === undefined) throw new Error("-protocol_whitelist without a value");
      protocolList(value.split(","));
      // An input's own whitelist is replaced by the job's (one per input, never two).
      if (args[i + 2] === "-i") {
        i++;
        continue;
      }
      out.push(a, value);
      i++;
      continue;
    }
    if (a === "-i") out.push("-protocol_whitelist", list);
    out.push(a);
  }
  return out;
}
