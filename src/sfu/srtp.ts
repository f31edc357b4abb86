// SRTP protect (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714 AEAD_AES_128_GCM) of the packets the
// fast path sends, with the session keys werift derived from DTLS. werift's own encrypt serializes
// a header object, builds the IV through a BigInt, creates the key from bytes and concatenates
// three Buffers per packet; here the header is written straight into the output, keys are
// KeyObjects made once, and the output is one Buffer. It is not reused across packets: dgram sends
// on the next tick (its address lookup is deferred even for an IP), so a buffer handed to it must
// stay untouched until then, and a GOP replay or a NACK burst sends many in one tick.
import { createCipheriv, createHmac, createSecretKey, type KeyObject } from "node:crypto";
import { isNewer } from "../media/sequence.js";

export const PROFILE_AES_CM_128_HMAC_SHA1_80 = 0x0001;
export const PROFILE_AEAD_AES_128_GCM = 0x0007;

/** The SRTP profile and session keys of one direction, as werift derives them from DTLS (werift-adapter.ts). */
export interface SrtpSessionKeys {
  profile: number;
  srtpSessionKey: Buffer;
  srtpSessionSalt: Buffer;
  /** HMAC-SHA1 key (AES-CM profile only). */
  srtpSessionAuthTag?: Buffer;
}

/** An RTP header without CSRCs, as the fast path sends it (extensions come as a ready block). */
export interface PlainHeader {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
}

interface StreamState {
  ssrc: number;
  roc: number;
  highest: number;
}

const HEADER = 12;

export class SrtpProtector {
  private readonly key: KeyObject;
  private readonly authKey: KeyObject | undefined;
  private readonly salt: Buffer;
  private readonly gcm: boolean;
  private readonly iv: Buffer;
  private readonly roc = Buffer.alloc(4);
  /** Per SSRC (a sender has its media SSRC and maybe an RTX one): rollover counter and highest sequence. */
  private readonly streams: StreamState[] = [];
  readonly tagLength: number;

  constructor(keys: SrtpSessionKeys) {
    if (keys.profile !== PROFILE_AES_CM_128_HMAC_SHA1_80 && keys.profile !== PROFILE_AEAD_AES_128_GCM) {
      throw new Error(`SRTP profile ${keys.profile} is not supported`);
    }
    this.gcm = keys.profile === PROFILE_AEAD_AES_128_GCM;
    if (!this.gcm && !keys.srtpSessionAuthTag) throw new Error("AES-CM profile without an authentication key");
    this.key = createSecretKey(keys.srtpSessionKey);
    this.authKey = keys.srtpSessionAuthTag ? createSecretKey(keys.srtpSessionAuthTag) : undefined;
    this.salt = Buffer.from(keys.srtpSessionSalt);
    this.iv = Buffer.alloc(this.gcm ? 12 : 16);
    this.tagLength = this.gcm ? 16 : 10;
  }

  /**
   * The rollover counter for this packet (RFC 3711 §3.3.1 as a sender sees it): it steps up when
   * the sequence wraps; a resent packet from before the wrap still gets the old one.
   */
  private rocFor(ssrc: number, seq: number): number {
    let s: StreamState | undefined;
    for (let i = 0; i < this.streams.length; i++) if (this.streams[i]!.ssrc === ssrc) s = this.streams[i];
    if (!s) {
      s = { ssrc, roc: 0, highest: seq };
      this.streams.push(s);
      return 0;
    }
    if (isNewer(seq, s.highest)) {
      if (seq < s.highest) s.roc = (s.roc + 1) >>> 0;
      s.highest = seq;
      return s.roc;
    }
    return seq > s.highest && s.roc > 0 ? s.roc - 1 : s.roc;
  }

  /**
   * The SRTP packet for this header and payload; `extension[0..extensionLength]`, when given, is a
   * complete header-extension block (profile, length, elements) and sets the X bit.
   */
  protect(h: PlainHeader, payload: Uint8Array, extension?: Uint8Array, extensionLength = 0): Buffer {
    const header = HEADER + (extension ? extensionLength : 0);
    const out = Buffer.allocUnsafe(header + payload.length + this.tagLength);
    out[0] = header > HEADER ? 0x90 : 0x80;
    out[1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
    out.writeUInt16BE(h.sequenceNumber & 0xffff, 2);
    out.writeUInt32BE(h.timestamp >>> 0, 4);
    out.writeUInt32BE(h.ssrc >>> 0, 8);
    if (header > HEADER) out.set(extension!.subarray(0, extensionLength), HEADER);
    const roc = this.rocFor(h.ssrc, h.sequenceNumber);
    const iv = this.iv;
    const salt = this.salt;
    if (this.gcm) {
      // RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
      iv.fill(0, 0, 2);
      iv.writeUInt32BE(h.ssrc >>> 0, 2);
      iv.writeUInt32BE(roc, 6);
      iv.writeUInt16BE(h.sequenceNumber & 0xffff, 10);
      for (let i = 0; i < 12; i++) iv[i] ^= salt[i]!;
      const cipher = createCipheriv("aes-128-gcm", this.key, iv);
      cipher.setAAD(out.subarray(0, header));
      cipher.update(payload).copy(out, header);
      cipher.final();
      cipher.getAuthTag().copy(out, header + payload.length);
      return out;
    }
    // RFC 3711 §4.1.1: IV = (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16), index = ROC · 2^16 + SEQ.
    iv.fill(0);
    iv.writeUInt32BE(h.ssrc >>> 0, 4);
    iv.writeUInt32BE(roc, 8);
    iv.writeUInt16BE(h.sequenceNumber & 0xffff, 12);
    for (let i = 0; i < 14; i++) iv[i] ^= salt[i]!;
    const cipher = createCipheriv("aes-128-ctr", this.key, iv);
    cipher.update(payload).copy(out, header);
    this.roc.writeUInt32BE(roc, 0);
    const tag = createHmac("sha1", this.authKey!)
      .update(out.subarray(0, header + payload.length))
      .update(this.roc)
      .digest();
    tag.copy(out, header + payload.length, 0, 10);
    return out;
  }
}
