import { RtpHeader, RtpPacket } from "werift";
import { describe, expect, it } from "vitest";
import { AUDIO_LEVEL, sourceIndexes } from "../../src/sfu/extensions.js";
import { PacketHistory } from "../../src/sfu/history.js";

function packet(sequenceNumber: number, payload: Buffer, extensions: { id: number; payload: Buffer }[] = []): RtpPacket {
  const header = new RtpHeader({ sequenceNumber, timestamp: sequenceNumber * 960, payloadType: 111, ssrc: 7, marker: sequenceNumber % 2 === 0 });
  header.extensions = extensions;
  header.extension = extensions.length > 0;
  return new RtpPacket(header, payload);
}

describe("PacketHistory", () => {
  it("finds what it kept until the ring overwrites it, with payload, timestamp, marker and extensions", () => {
    const history = new PacketHistory("audio");
    history.setSourceExtensions(sourceIndexes([{ id: 4, uri: AUDIO_LEVEL }]));
    for (let seq = 65_000; seq < 65_000 + history.slots + 10; seq++) {
      history.put(packet(seq & 0xffff, Buffer.from([seq & 0xff, 1, 2]), [{ id: 4, payload: Buffer.from([seq & 0x7f]) }]));
    }
    expect(history.find(65_000)).toBe(-1);
    const seq = (65_000 + history.slots + 5) & 0xffff;
    const slot = history.find(seq);
    expect(slot).toBeGreaterThanOrEqual(0);
    const read = history.read(slot)!;
    expect([...read.payload]).toEqual([(65_000 + history.slots + 5) & 0xff, 1, 2]);
    expect(read.timestamp).toBe(seq * 960);
    expect(read.marker).toBe(seq % 2 === 0);
    const at = history.extensionOffset(slot);
    expect([...history.extensionBytes.subarray(at, at + history.extensionLength(slot))]).toEqual([1, 1, (65_000 + history.slots + 5) & 0x7f]);
    history.close();
  });

  it("does not keep a payload larger than a slot, and answers nothing once closed", () => {
    const history = new PacketHistory("audio");
    history.put(packet(1, Buffer.alloc(history.slotBytes + 1)));
    expect(history.find(1)).toBe(-1);
    history.put(packet(2, Buffer.alloc(10)));
    expect(history.find(2)).toBeGreaterThanOrEqual(0);
    history.close();
    history.close();
    expect(history.find(2)).toBe(-1);
    expect(history.read(0)).toBeUndefined();
  });

  it("a history reusing a closed one's storage does not answer for the old track's packets", () => {
    const first = new PacketHistory("video");
    for (let seq = 0; seq < 100; seq++) first.put(packet(seq, Buffer.alloc(100, 1)));
    first.close();
    const second = new PacketHistory("video");
    for (let seq = 0; seq < 100; seq++) expect(second.find(seq)).toBe(-1);
    second.close();
  });
});
