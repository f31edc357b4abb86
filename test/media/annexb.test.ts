import { describe, expect, it } from "vitest";
import { AnnexBWriter, splitAnnexB, START_CODE, START_CODE_3, toAnnexB } from "../../src/media/annexb.js";

describe("Annex B helpers", () => {
  it("joins NAL units with 4-byte start codes", () => {
    expect(START_CODE).toEqual(Buffer.from([0, 0, 0, 1]));
    expect(START_CODE_3).toEqual(Buffer.from([0, 0, 1]));
    expect(toAnnexB([Uint8Array.of(0x67, 1), Uint8Array.of(0x68)]).toString("hex")).toBe("000000016701" + "0000000168");
    expect(toAnnexB([])).toEqual(Buffer.alloc(0));
  });

  it("splits 3- and 4-byte start codes, dropping trailing zeros and leading junk", () => {
    const buf = Buffer.from("ff" + "00000001" + "6742" + "000001" + "68ce00" + "0000000001" + "65880000" + "000001" + "41", "hex");
    expect(splitAnnexB(buf).map((n) => n.toString("hex"))).toEqual(["6742", "68ce", "6588", "41"]);
    expect(splitAnnexB(Buffer.from("6742", "hex"))).toEqual([]);
    expect(splitAnnexB(Buffer.from("00000001", "hex"))).toEqual([]);
  });

  it("round-trips through toAnnexB", () => {
    const nals = [Buffer.from("6764001f", "hex"), Buffer.from("68ebe3cb", "hex"), Buffer.from("6588840010", "hex")];
    expect(splitAnnexB(toAnnexB(nals))).toEqual(nals);
  });

  it("the writer is the concatenation of access units", () => {
    const w = new AnnexBWriter();
    expect(w.fileHeader()).toHaveLength(0);
    const au = toAnnexB([Buffer.from("6588", "hex")]);
    expect(w.frame(au)).toEqual(au);
    expect(w.frameCount).toBe(1);
  });
});
