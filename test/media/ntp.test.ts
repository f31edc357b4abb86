import { describe, expect, it } from "vitest";
import { NTP_UNIX_OFFSET_S, ntpFraction, ntpSeconds, ntpTimestamp } from "../../src/media/ntp.js";

describe("NTP time of a wall-clock instant", () => {
  it("counts seconds from 1900", () => {
    expect(ntpSeconds(0)).toBe(NTP_UNIX_OFFSET_S);
    expect(ntpSeconds(1_700_000_000_999)).toBe(1_700_000_000 + 2208988800);
    expect(ntpFraction(0)).toBe(0);
    expect(ntpFraction(500)).toBe(0x80000000);
    expect(ntpFraction(250)).toBe(0x40000000);
  });

  it("the 64-bit form is the two halves side by side", () => {
    const ms = 1_710_000_000_123;
    const t = ntpTimestamp(ms);
    expect(Number(t >> 32n)).toBe(ntpSeconds(ms));
    expect(Number(t & 0xffffffffn)).toBe(ntpFraction(ms));
  });

  it("round-trips to the millisecond and never goes backwards", () => {
    let previous = -1n;
    for (let ms = 1_710_000_000_000; ms < 1_710_000_003_000; ms += 7) {
      const t = ntpTimestamp(ms);
      expect(t > previous).toBe(true);
      previous = t;
      const back = (Number(t >> 32n) - NTP_UNIX_OFFSET_S) * 1000 + (Number(t & 0xffffffffn) / 0x100000000) * 1000;
      expect(Math.abs(back - ms)).toBeLessThan(0.001);
      expect(ntpFraction(ms)).toBeLessThan(0x100000000);
    }
  });
});
