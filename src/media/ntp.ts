// NTP timestamps (RFC 5905 §6) of wall-clock instants, as RTCP sender reports carry them
// (RFC 3550 §6.4.1): 32-bit seconds since 1900 and a 32-bit binary fraction of a second.

/** Seconds between the NTP epoch (1900-01-01) and the Unix epoch (1970-01-01). */
export const NTP_UNIX_OFFSET_S = 2208988800;

/** The seconds half of the NTP time of `unixMs` (ms since the Unix epoch). */
export function ntpSeconds(unixMs: number): number {
  return Math.floor(unixMs / 1000) + NTP_UNIX_OFFSET_S;
}

/** The fraction half of the NTP time of `unixMs`, in units of 2^-32 s. */
export function ntpFraction(unixMs: number): number {
  return Math.floor(((unixMs % 1000) / 1000) * 0x100000000);
}

/** The 64-bit NTP time of `unixMs`: seconds in the high 32 bits, the fraction in the low ones. */
export function ntpTimestamp(unixMs: number): bigint {
  return (BigInt(ntpSeconds(unixMs)) << 32n) | BigInt(ntpFraction(unixMs));
}
