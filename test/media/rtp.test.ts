import { describe, expect, it } from "vitest";
import { parseRtp, TimestampUnwrapper } from "../../src/media/rtp.js";

describe("parseRtp", () => {
  it("reads the fixed header", () => {
    const p = parseRtp(Buffer.from("80e1fffe0001e24012345678aabbcc", "hex"));
    expect(p).toEqual({
      payloadType: 97,
      marker: true,
      sequenceNumber: 0xfffe,
      timestamp: 0x0001e240,
      ssrc: 0x12345678,
      payload: Buffer.from([0xaa, 0xbb, 0xcc]),
    });
  });

  it("skips two CSRCs and a one-word header extension, strips 3 bytes of padding", () => {
    const hex =
      "b2" +
      "60" +
      "0007" +
      "00000064" +
      "00000001" + // V=2 P=1 X=1 CC=2, PT 96
      "00000002" +
      "00000003" + // CSRCs
      "bede0001" +
      "10ff0000" + // extension: profile, length 1 word, data
      "0102" +
      "000003"; // payload, padding
    const p = parseRtp(Buffer.from(hex, "hex"));
    expect(p?.payload).toEqual(Buffer.from([1, 2]));
    expect(p?.marker).toBe(false);
    expect(p?.sequenceNumber).toBe(7);
  });

  it("rejects non-RTP and truncated data", () => {
    expect(parseRtp(Buffer.alloc(11))).toBeUndefined();
    expect(parseRtp(Buffer.from("400000000000000000000000", "hex"))).toBeUndefined(); // version 1
    expect(parseRtp(Buffer.from("8f0000000000000000000000", "hex"))).toBeUndefined(); // 15 CSRCs missing
    expect(parseRtp(Buffer.from("a0000000000000000000000005", "hex"))).toBeUndefined(); // padding > size
  });
});

describe("TimestampUnwrapper", () => {
  it("continues across the 2^32 wrap and follows small steps back", () => {
    const u = new TimestampUnwrapper();
    expect(u.unwrap(0xffffe890)).toBe(0xffffe890);
    expect(u.unwrap(0xfffff448)).toBe(0xfffff448);
    expect(u.unwrap(0x00000000)).toBe(2 ** 32);
    expect(u.unwrap(0x00000bb8)).toBe(2 ** 32 + 3000);
    expect(u.unwrap(0x00000000)).toBe(2 ** 32);
    expect(u.unwrap(0xfffff448)).toBe(0xfffff448);
  });

  it("keeps counting over several wraps", () => {
    const u = new TimestampUnwrapper();
    let last = 0;
    for (let k = 0; k <= 10; k++) last = u.unwrap((k * 0x70000000) >>> 0);
    expect(last).toBe(10 * 0x70000000);
  });
});
