import { describe, expect, it } from "vitest";
import {
  ABS_CAPTURE_TIME,
  agreedExtensions,
  AUDIO_LEVEL,
  EXTENSION_BLOCK_BYTES,
  FORWARDED_EXTENSIONS,
  PLAYOUT_DELAY,
  sourceIndexes,
  STORED_EXTENSION_BYTES,
  storeExtensions,
  targetIds,
  VIDEO_CONTENT_TYPE,
  writeExtensionBlock,
} from "../../src/sfu/extensions.js";

const TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/** Parses a one-byte-header block back into [id, hex payload] pairs (padding skipped). */
function parse(block: Uint8Array, length: number): [number, string][] {
  expect([block[0], block[1]]).toEqual([0xbe, 0xde]);
  expect(((block[2]! << 8) | block[3]!) * 4 + 4).toBe(length);
  const out: [number, string][] = [];
  for (let p = 4; p < length; ) {
    if (block[p] === 0) {
      p++;
      continue;
    }
    const id = block[p]! >> 4;
    const len = (block[p]! & 0x0f) + 1;
    out.push([id, Buffer.from(block.subarray(p + 1, p + 1 + len)).toString("hex")]);
    p += 1 + len;
  }
  return out;
}

describe("header-extension forwarding", () => {
  it("keeps only what the client's own section offered, id and URI both", () => {
    const werift = [
      { id: 1, uri: AUDIO_LEVEL },
      { id: 2, uri: ABS_CAPTURE_TIME },
      { id: 4, uri: TWCC },
    ];
    const lines = ["m=audio 9 UDP/TLS/RTP/SAVPF 111", `a=extmap:1 ${AUDIO_LEVEL}`, `a=extmap:4/sendrecv ${TWCC}`, `a=extmap:9 ${ABS_CAPTURE_TIME}`];
    expect(agreedExtensions(werift, lines)).toEqual([
      { id: 1, uri: AUDIO_LEVEL },
      { id: 4, uri: TWCC },
    ]);
    // werift answers its defaults to an offer without extmap: none of them is agreed.
    expect(agreedExtensions(werift, ["m=audio 9 UDP/TLS/RTP/SAVPF 111"])).toEqual([]);
  });

  it("stores a publisher's forwarded elements and writes them under each viewer's ids, padded to words", () => {
    const source = sourceIndexes([
      { id: 3, uri: AUDIO_LEVEL },
      { id: 5, uri: TWCC },
      { id: 11, uri: ABS_CAPTURE_TIME },
    ]);
    const capture = Buffer.from("0102030405060708", "hex");
    const stored = Buffer.alloc(STORED_EXTENSION_BYTES + 10);
    const n = storeExtensions(
      [
        { id: 3, payload: Buffer.from([0x9a]) },
        { id: 5, payload: Buffer.from([0x00, 0x07]) },
        { id: 11, payload: capture },
      ],
      source,
      stored,
      10,
    );
    expect(n).toBe(2 + 1 + 2 + 8);

    const viewer = targetIds([
      { id: 1, uri: AUDIO_LEVEL },
      { id: 14, uri: ABS_CAPTURE_TIME },
    ]);
    const block = Buffer.alloc(EXTENSION_BLOCK_BYTES);
    const length = writeExtensionBlock(stored, 10, n, viewer, block);
    expect(length % 4).toBe(0);
    expect(parse(block, length)).toEqual([
      [1, "9a"],
      [14, "0102030405060708"],
    ]);

    // A viewer that agreed to audio level only gets just that.
    const audioOnly = targetIds([{ id: 2, uri: AUDIO_LEVEL }]);
    expect(parse(block, writeExtensionBlock(stored, 10, n, audioOnly, block))).toEqual([[2, "9a"]]);
    // A viewer that agreed to none gets no block at all (no X bit).
    expect(writeExtensionBlock(stored, 10, n, targetIds([{ id: 3, uri: TWCC }]), block)).toBe(0);
  });

  it("leaves out what the one-byte form or the store cannot hold, and ids a viewer would need two bytes for", () => {
    const source = sourceIndexes(FORWARDED_EXTENSIONS.map((uri, i) => ({ id: i + 1, uri })));
    const out = Buffer.alloc(STORED_EXTENSION_BYTES);
    expect(storeExtensions([{ id: 1, payload: Buffer.alloc(0) }], source, out, 0)).toBe(0);
    expect(storeExtensions([{ id: 1, payload: Buffer.alloc(17) }], source, out, 0)).toBe(0);
    // Four 16-byte elements do not all fit in 48 bytes: what fits is kept, whole.
    const big = [1, 2, 3, 4].map((id) => ({ id, payload: Buffer.alloc(16, id) }));
    expect(storeExtensions(big, source, out, 0)).toBe(36);
    expect(
      targetIds([
        { id: 15, uri: PLAYOUT_DELAY },
        { id: 200, uri: VIDEO_CONTENT_TYPE },
      ]),
    ).toEqual(new Uint8Array(FORWARDED_EXTENSIONS.length + 1));
  });
});
