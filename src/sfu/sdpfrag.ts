// RFC 8840 SDP fragments (application/trickle-ice-sdpfrag) as WHIP/WHEP PATCH bodies carry them.

export interface SdpFragment {
  ufrag?: string;
  pwd?: string;
  /** Candidate attribute values (without "a="), with the mid of the section they came in. */
  candidates: { mid?: string; candidate: string }[];
  endOfCandidates: boolean;
}

export class SdpFragError extends Error {}

export function parseSdpFrag(text: string): SdpFragment {
  const frag: SdpFragment = { candidates: [], endOfCandidates: false };
  let mid: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") continue;
    if (!/^[a-z]=/.test(line)) throw new SdpFragError("malformed line");
    if (line.startsWith("a=ice-ufrag:")) frag.ufrag = line.slice(12);
    else if (line.startsWith("a=ice-pwd:")) frag.pwd = line.slice(10);
    else if (line.startsWith("a=mid:")) mid = line.slice(6);
    else if (line.startsWith("m=")) mid = undefined;
    else if (line === "a=end-of-candidates") frag.endOfCandidates = true;
    else if (line.startsWith("a=candidate:")) {
      if (!/^candidate:\S+ \d+ \S+ \d+ \S+ \d+ typ \S+/.test(line.slice(2))) throw new SdpFragError("malformed candidate");
      frag.candidates.push({ mid, candidate: line.slice(2) });
    }
  }
  if ((frag.ufrag === undefined) !== (frag.pwd === undefined)) throw new SdpFragError("ice-ufrag and ice-pwd go together");
  return frag;
}

/** The ICE part of an answer as the sdpfrag body of a 200 to an ICE restart (RFC 9725 §4.4.2). */
export function iceFragmentOf(sdp: string): string {
  const lines = [`a=ice-ufrag:${/^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1] ?? ""}`, `a=ice-pwd:${/^a=ice-pwd:(\S+)/m.exec(sdp)?.[1] ?? ""}`];
  // Under BUNDLE every candidate belongs to the first section's transport.
  const mid = /^a=mid:(\S+)/m.exec(sdp)?.[1];
  if (mid !== undefined) lines.push(`a=mid:${mid}`);
  lines.push(...new Set(sdp.match(/^a=candidate:.*$/gm) ?? []), "a=end-of-candidates");
  return lines.join("\r\n") + "\r\n";
}
