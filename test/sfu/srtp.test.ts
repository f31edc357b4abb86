import { randomBytes } from "node:crypto";
import { RtpHeader, RtpPacket, SrtpSession } from "werift";
import { describe, expect, it } from "vitest";
import { PROFILE_AEAD_AES_128_GCM, PROFILE_AES_CM_128_HMAC_SHA1_80, SrtpProtector } from "../../src/sfu/srtp.js";
import { srtpSessionKeys } from "../../src/sfu/werift-adapter.js";

function sessions(profile: number): { sender: SrtpSession; receiver: SrtpSession } {
  const keyLength = 16;
  const saltLength = profile === PROFILE_AEAD_AES_128_GCM ? 12 : 14;
  const a = { key: randomBytes(keyLength), salt: randomBytes(saltLength) };
  const b = { key: randomBytes(keyLength), salt: randomBytes(saltLength) };
  const sender = new SrtpSession({ profile, keys: { localMasterKey: a.key, localMasterSalt: a.salt, remoteMasterKey: b.key, remoteMasterSalt: b.salt } });
  const receiver = new SrtpSession({ profile, keys: { localMasterKey: b.key, localMasterSalt: b.salt, remoteMasterKey: a.key, remoteMasterSalt: a.salt } });
  return { sender, receiver };
}

for (const [name, profile] of [
  ["AES_CM_128_HMAC_SHA1_80", PROFILE_AES_CM_128_HMAC_SHA1_80],
  ["AEAD_AES_128_GCM", PROFILE_AEAD_AES_128_GCM],
] as const) {
  describe(`SrtpProtector, ${name}`, () => {
    it("writes the same bytes as werift's encrypt, across the 16-bit wrap and for two SSRCs", () => {
      const { sender } = sessions(profile);
      // Both read the same session keys; each keeps its own rollover state.
      const ours = new SrtpProtector(srtpSessionKeys(sender));
      const reference = sender;
      let seq = 65_500;
      for (let i = 0; i < 300; i++) {
        for (const ssrc of [0x11223344, 0xfedcba98]) {
          const payload = randomBytes(Math.floor(Math.random() * 1400));
          const header = { payloadType: 96, marker: i % 5 === 0, sequenceNumber: seq, timestamp: 3000 * i + 0xfffff000, ssrc };
          const expected = reference.encrypt(payload, new RtpHeader({ ...header, timestamp: header.timestamp >>> 0 }));
          expect(ours.protect(header, payload).equals(expected), `packet ${i}, seq ${seq}`).toBe(true);
        }
        seq = (seq + 1) & 0xffff;
      }
    });

    it("carries a header-extension block byte-identically to werift and werift reads the elements back", () => {
      const { sender, receiver } = sessions(profile);
      const ours = new SrtpProtector(srtpSessionKeys(sender));
      for (let i = 0; i < 20; i++) {
        const extensions = [
          { id: 1, payload: Buffer.from([0x80 | i]) },
          { id: 7, payload: randomBytes(1 + (i % 16)) },
        ];
        const header = { payloadType: 96, marker: false, sequenceNumber: 1000 + i, timestamp: 90_000 + i, ssrc: 0x0badcafe };
        const weriftHeader = new RtpHeader({ ...header, extension: true, extensions });
        const block = weriftHeader.serialize(weriftHeader.serializeSize).subarray(12);
        const payload = randomBytes(300);
        const srtp = ours.protect(header, payload, block, block.length);
        expect(srtp.equals(sender.encrypt(payload, weriftHeader)), `packet ${i}`).toBe(true);
        const plain = RtpPacket.deSerialize(receiver.decrypt(srtp));
        expect(plain.header.extensions.map((e) => [e.id, Buffer.from(e.payload).toString("hex")])).toEqual(
          extensions.map((e) => [e.id, e.payload.toString("hex")]),
        );
        expect(plain.payload.equals(payload)).toBe(true);
      }
    });

    it("is decrypted by werift as the receiving side, including a packet resent from before the wrap", () => {
      const { sender, receiver } = sessions(profile);
      const ours = new SrtpProtector(srtpSessionKeys(sender));
      const sent = new Map<number, Buffer>();
      for (const seq of [65534, 65535, 0, 1, 2, 65535, 3]) {
        const payload = randomBytes(200);
        if (!sent.has(seq)) sent.set(seq, payload);
        const srtp = ours.protect({ payloadType: 111, marker: false, sequenceNumber: seq, timestamp: 1000, ssrc: 42 }, sent.get(seq)!);
        const plain = RtpPacket.deSerialize(receiver.decrypt(srtp));
        expect(plain.header.sequenceNumber).toBe(seq);
        expect(plain.payload.equals(sent.get(seq)!)).toBe(true);
      }
    });
  });
}

it("refuses a profile it does not implement", () => {
  expect(() => new SrtpProtector({ profile: 0x0002, srtpSessionKey: randomBytes(16), srtpSessionSalt: randomBytes(14) })).toThrow(/not supported/);
});
