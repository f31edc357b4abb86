// RTP header extensions carried from a publisher to its viewers (RFC 8285). Each side numbers
// extensions as its own SDP negotiated them, so a forwarded element is stored under a small
// index of its URI (see FORWARDED_EXTENSIONS) and written again under each viewer's id.
//
// Forwarded are the extensions that describe the media itself and stay true after a hop:
// audio level (viewers show who speaks), capture time (A/V sync to the source), the publisher's
// playout delay and the content type (screen share). Transport-level ones (transport-cc,
// abs-send-time, mid, rid) describe the publisher's hop and are not carried. Video orientation
// (CVO) is deliberately not negotiated with publishers: with it, a phone stops rotating its frames,
// and recordings, HLS and RTMP, which have no such flag, would come out sideways.

export const AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
export const ABS_CAPTURE_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
export const PLAYOUT_DELAY = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
export const VIDEO_CONTENT_TYPE = "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type";

/** Position + 1 is an extension's index in stored packets; 0 means "not forwarded". */
export const FORWARDED_EXTENSIONS: readonly string[] = [AUDIO_LEVEL, ABS_CAPTURE_TIME, PLAYOUT_DELAY, VIDEO_CONTENT_TYPE];

/** Which forwarded extensions each kind of section negotiates. */
export const FORWARDED_BY_KIND: Readonly<Record<"audio" | "video", readonly string[]>> = {
  audio: [AUDIO_LEVEL, ABS_CAPTURE_TIME],
  video: [ABS_CAPTURE_TIME, PLAYOUT_DELAY, VIDEO_CONTENT_TYPE],
};

/** Largest element the one-byte header form can carry (RFC 8285 §4.2). */
const ONE_BYTE_MAX = 16;
/** Bytes kept per packet for forwarded elements (index, length, data each): all four fit. */
export const STORED_EXTENSION_BYTES = 48;

export interface NegotiatedExtension {
  id: number;
  uri: string;
}

/**
 * The extensions a peer and the server agreed on: werift's list for the transceiver, kept only
 * where the client's own section offered that id for that URI (werift answers its defaults when
 * an offer has none, and a client must never receive ids it did not offer).
 */
export function agreedExtensions(weriftList: readonly NegotiatedExtension[], offerSectionLines: readonly string[]): NegotiatedExtension[] {
  const offered = new Set<string>();
  for (const line of offerSectionLines) {
    const m = /^a=extmap:(\d+)(?:\/\S+)? (\S+)/.exec(line);
    if (m) offered.add(`${Number(m[1])} ${m[2]}`);
  }
  return weriftList.filter((e) => offered.has(`${e.id} ${e.uri}`));
}

/** Publisher side: extension id (0-255) → index in FORWARDED_EXTENSIONS + 1, 0 for the rest. */
export function sourceIndexes(agreed: readonly NegotiatedExtension[]): Uint8Array {
  const table = new Uint8Array(256);
  for (const e of agreed) {
    const index = FORWARDED_EXTENSIONS.indexOf(e.uri);
    if (index >= 0 && e.id > 0 && e.id < 256) table[e.id] = index + 1;
  }
  return table;
}

/**
 * Viewer side: index → the viewer's id, 0 where it did not agree to the extension. Ids above 14
 * need the two-byte form, which a viewer may not accept without extmap-allow-mixed: not written.
 */
export function targetIds(agreed: readonly NegotiatedExtension[]): Uint8Array {
  const table = new Uint8Array(FORWARDED_EXTENSIONS.length + 1);
  for (const e of agreed) {
    const index = FORWARDED_EXTENSIONS.indexOf(e.uri);
    if (index >= 0 && e.id >= 1 && e.id <= 14) table[index + 1] = e.id;
  }
  return table;
}

/**
 * Stores a packet's forwarded elements as (index, length, data) triples at `out[at..]`, at most
 * STORED_EXTENSION_BYTES; returns the bytes written. Elements the one-byte form cannot carry
 * (empty or over 16 bytes) are left out.
 */
export function storeExtensions(elements: readonly { id: number; payload: Uint8Array }[], indexes: Uint8Array, out: Uint8Array, at: number): number {
  let n = 0;
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i]!;
    const index = indexes[e.id & 0xff]!;
    const len = e.payload.length;
    if (index === 0 || len === 0 || len > ONE_BYTE_MAX || n + 2 + len > STORED_EXTENSION_BYTES) continue;
    out[at + n] = index;
    out[at + n + 1] = len;
    out.set(e.payload, at + n + 2);
    n += 2 + len;
  }
  return n;
}

/**
 * Writes stored elements as a one-byte-header extension block (0xBEDE, length in words, elements,
 * zero padding) under the viewer's ids at `out[0..]`; returns the block's length, 0 when no
 * element is for this viewer (the packet then goes without the X bit).
 */
export function writeExtensionBlock(stored: Uint8Array, at: number, length: number, ids: Uint8Array, out: Uint8Array): number {
  let n = 4;
  for (let p = at, end = at + length; p < end; ) {
    const index = stored[p]!;
    const len = stored[p + 1]!;
    const id = index < ids.length ? ids[index]! : 0;
    if (id !== 0) {
      out[n++] = (id << 4) | (len - 1);
      for (let i = 0; i < len; i++) out[n++] = stored[p + 2 + i]!;
    }
    p += 2 + len;
  }
  if (n === 4) return 0;
  while ((n & 3) !== 0) out[n++] = 0;
  out[0] = 0xbe;
  out[1] = 0xde;
  const words = (n - 4) >> 2;
  out[2] = words >> 8;
  out[3] = words & 0xff;
  return n;
}

/** Largest block writeExtensionBlock makes: header, elements with one id byte each instead of two, padding. */
export const EXTENSION_BLOCK_BYTES = 4 + STORED_EXTENSION_BYTES + 3;
