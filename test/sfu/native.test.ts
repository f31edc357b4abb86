// The native forwarding addon (native/src/forward.cc) through its JavaScript seam: byte-identical
// to werift's SRTP encrypt and to SrtpProtector for both profiles, with and without header
// extensions, RTX, across sequence wraps (seeded property tests over random headers); sends over
// real UDP sockets with sendmmsg; and every argument from JavaScript checked, fuzzed, without a
// crash. `npm run test:native` runs this file against an AddressSanitizer build of the addon.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { RtpHeader, RtpPacket, SrtpSession } from "werift";
import { afterEach, describe, expect, it } from "vitest";
import { writeExtensionBlock, EXTENSION_BLOCK_BYTES } from "../../src/sfu/extensions.js";
import { PacketHistory } from "../../src/sfu/history.js";
import { nativeForwarding, socketFd, type NativeGroup } from "../../src/sfu/native.js";
import { NativeTrack, nativeStats } from "../../src/sfu/native-output.js";
import { PROFILE_AEAD_AES_128_GCM, PROFILE_AES_CM_128_HMAC_SHA1_80, SrtpProtector, type SrtpSessionKeys } from "../../src/sfu/srtp.js";
import { srtpSessionKeys } from "../../src/sfu/werift-adapter.js";

const addon = nativeForwarding.addon;
// Where the addon is not built the JavaScript path runs and this file has nothing to test; CI
// builds it, and WHIPSFU_REQUIRE_NATIVE=1 makes its absence a failure.
if (!addon && process.env.WHIPSFU_REQUIRE_NATIVE === "1") throw new Error(`native addon required: ${nativeForwarding.reason}`);

/** A small seeded generator, so a failing case can be replayed (SEED=...). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.SEED ?? Date.now() % 1_000_000);

function sessions(profile: number): { sender: SrtpSession; receiver: SrtpSession } {
  const saltLength = profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14;
  const a = { key: randomBytes(16), salt: randomBytes(saltLength) };
  const b = { key: randomBytes(16), salt: randomBytes(saltLength) };
  const sender = new SrtpSession({ profile, keys: { localMasterKey: a.key, localMasterSalt: a.salt, remoteMasterKey: b.key, remoteMasterSalt: b.salt } });
  const receiver = new SrtpSession({ profile, keys: { localMasterKey: b.key, localMasterSalt: b.salt, remoteMasterKey: a.key, remoteMasterSalt: a.salt } });
  return { sender, receiver };
}

const groups: NativeGroup[] = [];
const sockets: dgram.Socket[] = [];
function group(): NativeGroup {
  const g = new addon!.Group();
  groups.push(g);
  return g;
}
async function socket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  sockets.push(s);
  return s;
}
afterEach(() => {
  for (const g of groups.splice(0)) g.close();
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // closed by the test
    }
  }
});

function add(
  g: NativeGroup,
  keys: SrtpSessionKeys,
  o: { fd?: number; port?: number; ssrc: number; pt: number; rtx?: { ssrc: number; pt: number; seq: number }; ids?: Uint8Array },
): number {
  return g.add(
    o.fd ?? -1,
    "127.0.0.1",
    o.port ?? 9,
    o.ssrc,
    o.pt,
    o.rtx ? o.rtx.ssrc : -1,
    o.rtx?.pt ?? 0,
    o.rtx?.seq ?? 0,
    o.ids ?? new Uint8Array(5),
    keys.profile,
    keys.srtpSessionKey,
    keys.srtpSessionSalt,
    keys.srtpSessionAuthTag ?? null,
  );
}

/** Random forwarded extension elements in stored form, with the elements a viewer with `ids` gets. */
function randomStored(next: () => number, ids: Uint8Array): { stored: Buffer; elements: { id: number; payload: Buffer }[] } {
  const parts: Buffer[] = [];
  const elements: { id: number; payload: Buffer }[] = [];
  let n = 0;
  const count = Math.floor(next() * 4);
  for (let i = 0; i < count; i++) {
    const len = 1 + Math.floor(next() * 16);
    if (n + 2 + len > 48) break;
    const index = 1 + Math.floor(next() * 4);
    const data = randomBytes(len);
    parts.push(Buffer.from([index, len]), data);
    n += 2 + len;
    if (ids[index]) elements.push({ id: ids[index]!, payload: data });
  }
  return { stored: Buffer.concat(parts), elements };
}

describe.runIf(addon)("native forwarding addon", () => {
  for (const [name, profile] of [
    ["AES_CM_128_HMAC_SHA1_80", PROFILE_AES_CM_128_HMAC_SHA1_80],
    ["AEAD_AES_128_GCM", PROFILE_AEAD_AES_128_GCM],
  ] as const) {
    describe(name, () => {
      it(`writes werift's bytes for random headers, extensions and RTX across sequence wraps (seed ${SEED})`, () => {
        const next = rng(SEED);
        for (let round = 0; round < 6; round++) {
          const { sender, receiver } = sessions(profile);
          const keys = srtpSessionKeys(sender);
          const g = group();
          const ssrc = Math.floor(next() * 2 ** 32);
          const pt = Math.floor(next() * 128);
          const ids = new Uint8Array(5);
          for (let i = 1; i < 5; i++) ids[i] = next() < 0.25 ? 0 : 1 + Math.floor(next() * 14);
          const rtx = { ssrc: Math.floor(next() * 2 ** 32), pt: Math.floor(next() * 128), seq: Math.floor(next() * 0x10000) };
          const slot = add(g, keys, { ssrc, pt, rtx, ids });
          let seq = 0x10000 - Math.floor(next() * 400);
          let rtxSeq = rtx.seq;
          let ts = Math.floor(next() * 2 ** 32);
          // Through three 16-bit wraps (the rollover counter goes 0, 1, 2, 3): steps of 1..3 near
          // each wrap, where werift's counter moves only for steps under 100, and jumps between.
          let wraps = 0;
          for (let i = 0; wraps < 3; i++) {
            const room = 0xffff - 250 - seq;
            const step = room > 0 ? 1 + Math.floor(next() * Math.min(20_000, room)) : 1 + Math.floor(next() * 3);
            if (seq + step > 0xffff) wraps++;
            seq = (seq + step) & 0xffff;
            ts = (ts + Math.floor(next() * 6000)) >>> 0;
            const marker = next() < 0.2;
            const payload = randomBytes(Math.floor(next() * 1300));
            const { stored, elements } = randomStored(next, ids);
            const header = new RtpHeader({
              payloadType: pt,
              marker,
              sequenceNumber: seq,
              timestamp: ts,
              ssrc,
              extension: elements.length > 0,
              extensions: elements,
            });
            const expected = sender.encrypt(payload, header);
            const ours = g.protect(slot, payload, seq, ts, marker, stored.length ? stored : null, 0, stored.length, false);
            if (!ours.equals(expected)) throw new Error(`round ${round} packet ${i} seq ${seq}: differs from werift`);
            if (i % 37 === 0) {
              // A NACKed packet as RTX: OSN + payload on the RTX stream.
              const osn = Buffer.alloc(2);
              osn.writeUInt16BE(seq);
              const rtxHeader = new RtpHeader({
                payloadType: rtx.pt,
                marker,
                sequenceNumber: rtxSeq,
                timestamp: ts,
                ssrc: rtx.ssrc,
                extension: elements.length > 0,
                extensions: elements,
              });
              const rtxExpected = sender.encrypt(Buffer.concat([osn, payload]), rtxHeader);
              const rtxOurs = g.protect(slot, payload, seq, ts, marker, stored.length ? stored : null, 0, stored.length, true);
              if (!rtxOurs.equals(rtxExpected)) throw new Error(`round ${round} RTX of seq ${seq}: differs from werift`);
              rtxSeq = (rtxSeq + 1) & 0xffff;
              const plain = RtpPacket.deSerialize(receiver.decrypt(rtxOurs));
              expect(plain.header.ssrc).toBe(rtx.ssrc);
              expect(plain.payload.subarray(2).equals(payload)).toBe(true);
            }
          }
        }
      });

      it(`keeps SrtpProtector's rollover counter for resends from before a wrap (random walk, seed ${SEED})`, () => {
        const next = rng(SEED + 1);
        const { sender } = sessions(profile);
        const keys = srtpSessionKeys(sender);
        const js = new SrtpProtector(keys);
        const g = group();
        const ids = Uint8Array.from([0, 3, 5, 9, 14]);
        const slot = add(g, keys, { ssrc: 0xdeadbeef, pt: 96, ids });
        const block = Buffer.alloc(EXTENSION_BLOCK_BYTES);
        let seq = 65_000;
        for (let i = 0; i < 20_000; i++) {
          // Mostly forward, sometimes back a little (a resend), sometimes a jump.
          const r = next();
          seq = (seq + (r < 0.8 ? 1 : r < 0.95 ? -Math.floor(next() * 200) : Math.floor(next() * 20_000)) + 0x10000) & 0xffff;
          const payload = randomBytes(Math.floor(next() * 200));
          const { stored } = randomStored(next, ids);
          const length = writeExtensionBlock(stored, 0, stored.length, ids, block);
          const header = { payloadType: 96, marker: false, sequenceNumber: seq, timestamp: i, ssrc: 0xdeadbeef };
          const expected = js.protect(header, payload, block, length);
          const ours = g.protect(slot, payload, seq, i, false, stored.length ? stored : null, 0, stored.length, false);
          if (!ours.equals(expected)) throw new Error(`packet ${i} seq ${seq}: differs from SrtpProtector`);
        }
      });
    });
  }

  it("sends each viewer its own packet with sendmmsg, decrypted by werift as the receiving side", async () => {
    const receiver = await socket();
    const port = receiver.address().port;
    const got: Buffer[] = [];
    receiver.on("message", (m) => got.push(m));
    const shared = await socket();
    const own = await socket();
    const g = group();
    const viewers = [0, 1, 2, 3].map((i) => {
      const s = sessions(i % 2 ? PROFILE_AEAD_AES_128_GCM : PROFILE_AES_CM_128_HMAC_SHA1_80);
      // Three viewers share one socket (one sendmmsg), one has its own.
      const fd = socketFd(i < 3 ? shared : own)!;
      return { ...s, ssrc: 1000 + i, slot: add(g, srtpSessionKeys(s.sender), { fd, port, ssrc: 1000 + i, pt: 96 + i }) };
    });
    const slots = Int32Array.from(viewers.map((v) => v.slot));
    const payloads = [randomBytes(1200), randomBytes(10), randomBytes(700)];
    for (let i = 0; i < payloads.length; i++) expect(g.send(slots, slots.length, payloads[i]!, 100 + i, 9000 * i, i === 2, null, 0, 0)).toBe(4);
    for (let t = 0; t < 100 && got.length < 12; t++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toHaveLength(12);
    for (const v of viewers) {
      const mine = got.filter((m) => m.readUInt32BE(8) === v.ssrc).map((m) => RtpPacket.deSerialize(v.receiver.decrypt(m)));
      expect(mine.map((p) => p.header.sequenceNumber)).toEqual([100, 101, 102]);
      expect(mine.map((p) => p.payload.toString("hex"))).toEqual(payloads.map((p) => p.toString("hex")));
      expect(mine.map((p) => p.header.payloadType)).toEqual([0, 1, 2].map(() => 96 + v.ssrc - 1000));
    }
    expect(g.stats()).toMatchObject({ outputs: 4, sent: 12, dropped: 0 });
  });

  it("keeps sending after JavaScript closes the socket (its own duplicate), and stops at remove", async () => {
    const receiver = await socket();
    let got = 0;
    receiver.on("message", () => got++);
    const s = await socket();
    const { sender } = sessions(PROFILE_AEAD_AES_128_GCM);
    const g = group();
    const slot = add(g, srtpSessionKeys(sender), { fd: socketFd(s)!, port: receiver.address().port, ssrc: 1, pt: 96 });
    s.close();
    expect(socketFd(s)).toBeUndefined();
    expect(g.send(Int32Array.of(slot), 1, randomBytes(100), 1, 1, false, null, 0, 0)).toBe(1);
    g.remove(slot);
    expect(() => g.send(Int32Array.of(slot), 1, randomBytes(100), 2, 2, false, null, 0, 0)).toThrow(RangeError);
    for (let t = 0; t < 50 && got < 1; t++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toBe(1);
  });

  it("NativeTrack gathers a packet's viewers, flushes once, and resends from the track's history as RTX", async () => {
    const receiver = await socket();
    const port = receiver.address().port;
    const got: Buffer[] = [];
    receiver.on("message", (m) => got.push(m));
    const s = await socket();
    const history = new PacketHistory("video");
    const track = NativeTrack.of(addon!, history);
    const a = sessions(PROFILE_AES_CM_128_HMAC_SHA1_80);
    const b = sessions(PROFILE_AEAD_AES_128_GCM);
    const target = { fd: socketFd(s)!, address: "127.0.0.1", port };
    const va = track.output({ payloadType: 96, ssrc: 11, rtxPayloadType: 97, rtxSsrc: 12 }, srtpSessionKeys(a.sender), new Uint8Array(5), target);
    const vb = track.output({ payloadType: 100, ssrc: 21 }, srtpSessionKeys(b.sender), new Uint8Array(5), target);
    const sent0 = nativeStats.sent;
    const payload = randomBytes(500);
    history.putStored(7, 700, true, payload, null);
    va.write(7, 700, true, payload);
    vb.write(7, 700, true, payload);
    track.flush();
    expect(nativeStats.sent - sent0).toBe(2);
    expect(va.resend(7)).toBe(true);
    expect(vb.resend(7)).toBe(true);
    expect(va.resend(8)).toBe(false);
    for (let t = 0; t < 100 && got.length < 4; t++) await new Promise((r) => setTimeout(r, 10));
    const plainA = got.filter((m) => [11, 12].includes(m.readUInt32BE(8))).map((m) => RtpPacket.deSerialize(a.receiver.decrypt(m)));
    const plainB = got.filter((m) => m.readUInt32BE(8) === 21).map((m) => RtpPacket.deSerialize(b.receiver.decrypt(m)));
    expect(plainA.map((p) => [p.header.ssrc, p.header.payloadType])).toEqual([
      [11, 96],
      [12, 97],
    ]);
    expect(plainA[1]!.payload.readUInt16BE(0)).toBe(7);
    expect(plainA[1]!.payload.subarray(2).equals(payload)).toBe(true);
    expect(plainB.map((p) => [p.header.ssrc, p.header.sequenceNumber, p.payload.equals(payload)])).toEqual([
      [21, 7, true],
      [21, 7, true],
    ]);
    va.close();
    vb.close();
    va.close();
    expect(() => track.group.stats()).toThrow(/closed/);
    history.close();
  });

  it("checks every argument: wrong types, lengths and ranges, closed sockets, removed outputs, a closed group", async () => {
    const { sender } = sessions(PROFILE_AES_CM_128_HMAC_SHA1_80);
    const keys = srtpSessionKeys(sender);
    const g = group();
    const slot = add(g, keys, { ssrc: 1, pt: 96 });
    const good = [-1, "127.0.0.1", 9, 1, 96, -1, 0, 0, new Uint8Array(5), 1, keys.srtpSessionKey, keys.srtpSessionSalt, keys.srtpSessionAuthTag] as const;
    const bad: [number, unknown][] = [
      [0, 1], // stdout: not a socket
      [0, 1e9],
      [0, -2],
      [0, "3"],
      [1, "nope"],
      [1, 42],
      [1, "::1"],
      [2, 70000],
      [2, -1],
      [2, 1.5],
      [3, 2 ** 32],
      [3, -5],
      [3, NaN],
      [4, 128],
      [5, -2],
      [5, 2 ** 32],
      [6, 300],
      [7, 65536],
      [8, new Uint8Array(17)],
      [8, [1, 2]],
      [8, new Uint16Array(5)],
      [9, 2],
      [9, 0x10000],
      [10, Buffer.alloc(15)],
      [10, "key"],
      [11, Buffer.alloc(12)],
      [12, null],
      [12, Buffer.alloc(19)],
    ];
    for (const [i, value] of bad) {
      const args = [...good] as unknown[];
      args[i] = value;
      expect(() => (g.add as (...a: unknown[]) => number)(...args), `argument ${i} = ${String(value)}`).toThrow();
    }
    // A socket JavaScript has closed: its descriptor is gone.
    const s = await socket();
    const fd = socketFd(s)!;
    s.close();
    const closedArgs = [...good] as unknown[];
    closedArgs[0] = fd;
    expect(() => (g.add as (...a: unknown[]) => number)(...closedArgs)).toThrow(/closed|not a socket/);
    // A TCP socket is not taken.
    const net = await import("node:net");
    const server = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const tcpFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    closedArgs[0] = tcpFd;
    expect(() => (g.add as (...a: unknown[]) => number)(...closedArgs)).toThrow(/not a UDP socket/);
    server.close();

    const p = Buffer.alloc(100);
    const send = g.send as (...a: unknown[]) => number;
    for (const args of [
      [new Int32Array(1), 2, p, 1, 1, false, null, 0, 0], // count beyond slots
      [Int32Array.of(slot + 5), 1, p, 1, 1, false, null, 0, 0], // never added
      [Int32Array.of(-1), 1, p, 1, 1, false, null, 0, 0],
      [[slot], 1, p, 1, 1, false, null, 0, 0],
      [Int32Array.of(slot), 1, "payload", 1, 1, false, null, 0, 0],
      [Int32Array.of(slot), 1, Buffer.alloc(70_000), 1, 1, false, null, 0, 0],
      [Int32Array.of(slot), 1, p, 65536, 1, false, null, 0, 0],
      [Int32Array.of(slot), 1, p, 1, -1, false, null, 0, 0],
      [Int32Array.of(slot), 1, p, 1, 1, 1, null, 0, 0],
      [Int32Array.of(slot), 1, p, 1, 1, false, Buffer.alloc(10), 5, 10], // outside the bytes
      [Int32Array.of(slot), 1, p, 1, 1, false, Buffer.alloc(100), 0, 49], // longer than stored form
      [Int32Array.of(slot), 1, p, 1, 1, false, null, 0, 4], // length without bytes
    ]) {
      expect(() => send.call(g, ...args), JSON.stringify(args.map((a) => (a instanceof Uint8Array ? a.length : a)))).toThrow();
    }
    // Malformed stored extensions are cut short, never read past.
    expect(g.protect(slot, p, 1, 1, false, Buffer.from([1, 200, 3]), 0, 3, false).length).toBe(12 + 100 + 10);
    expect(() => (g.setPath as (...a: unknown[]) => void)(slot, 1, "127.0.0.1", 9)).toThrow();
    expect(() => g.resend(slot + 1, p, 1, 1, false, null, 0, 0)).toThrow(RangeError);
    // Called on another object, or without new.
    expect(() => (g.stats as () => unknown).call({})).toThrow();
    expect(() => (addon!.Group as unknown as () => unknown)()).toThrow();
    g.close();
    g.close();
    expect(() => g.send(Int32Array.of(slot), 1, p, 1, 1, false, null, 0, 0)).toThrow(/closed/);
    expect(() => add(g, keys, { ssrc: 1, pt: 96 })).toThrow(/closed/);
  });

  it(`never crashes on random arguments (fuzz, seed ${SEED})`, async () => {
    const next = rng(SEED + 2);
    const s = await socket();
    const values = (): unknown => {
      const pick = Math.floor(next() * 16);
      switch (pick) {
        case 0:
          return undefined;
        case 1:
          return null;
        case 2:
          return Math.floor(next() * 10);
        case 3:
          return -Math.floor(next() * 10);
        case 4:
          return next() * 1e12;
        case 5:
          return NaN;
        case 6:
          return Infinity;
        case 7:
          return "127.0.0.1";
        case 8:
          return randomBytes(Math.floor(next() * 40));
        case 9:
          return new Int32Array(Math.floor(next() * 4));
        case 10:
          return next() < 0.5;
        case 11:
          return {};
        case 12:
          return socketFd(s);
        case 13:
          return new Float64Array(3);
        case 14:
          return 2 ** 32 + 1;
        default:
          return Math.floor(next() * 70000);
      }
    };
    const { sender } = sessions(PROFILE_AEAD_AES_128_GCM);
    const keys = srtpSessionKeys(sender);
    const methods = ["add", "setPath", "remove", "send", "resend", "protect", "stats"] as const;
    let threw = 0;
    for (let round = 0; round < 40; round++) {
      const g = group();
      add(g, keys, { fd: socketFd(s), port: 9, ssrc: 5, pt: 96 });
      for (let i = 0; i < 500; i++) {
        const method = methods[Math.floor(next() * methods.length)]!;
        const args = Array.from({ length: Math.floor(next() * 14) }, values);
        try {
          (g[method] as (...a: unknown[]) => unknown).apply(g, args);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          threw++;
        }
      }
      g.close();
    }
    expect(threw).toBeGreaterThan(0);
  });
});

it.runIf(!addon)("says why the native path is unavailable", () => {
  expect(nativeForwarding.reason).not.toBe("");
});
