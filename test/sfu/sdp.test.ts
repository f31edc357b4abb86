import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  codecMatches,
  describeCodec,
  h264Profile,
  narrowOffer,
  parseSdp,
  rewriteAnswerCandidates,
  SdpError,
  usableMedia,
  type SdpCodec,
} from "../../src/sfu/sdp.js";

const chrome = readFileSync(new URL("../fixtures/chrome-offer.sdp", import.meta.url), "utf8").replace(/\n/g, "\r\n");
const offer = (name: string) => readFileSync(new URL(`../fixtures/offers/${name}`, import.meta.url), "utf8").replace(/\r?\n/g, "\r\n");

const h264 = (fmtp: string): SdpCodec => ({ payloadType: 96, name: "H264", clockRate: 90000, fmtp, rtcpFeedback: [] });

describe("parseSdp", () => {
  it("reads sections, directions, mids and codecs of a Chrome offer", () => {
    const sdp = parseSdp(chrome);
    expect(sdp.media.map((m) => [m.kind, m.mid, m.direction])).toEqual([
      ["audio", "0", "recvonly"],
      ["video", "1", "recvonly"],
    ]);
    const video = sdp.media[1];
    expect(video.codecs.find((c) => c.payloadType === 106)).toMatchObject({
      name: "H264",
      clockRate: 90000,
      fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    });
    expect(video.codecs.find((c) => c.payloadType === 96)?.rtcpFeedback).toContainEqual({ type: "nack", parameter: "pli" });
    expect(sdp.media[0].codecs[0]).toMatchObject({ name: "opus", channels: 2 });
  });

  it.each([
    ["empty", ""],
    ["no v= line", "o=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 RTP/AVP 0\r\n"],
    ["no m= line", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"],
    ["garbage line", "v=0\r\nhello\r\nm=audio 9 RTP/AVP 0\r\n"],
    ["bad m= line", "v=0\r\nm=audio nine RTP/AVP 0\r\n"],
    ["NUL byte", "v=0\r\nm=audio 9 RTP/AVP 0\0\r\n"],
    ["payload type over 127", "v=0\r\nm=audio 9 RTP/AVP 200\r\na=rtpmap:200 opus/48000/2\r\n"],
  ])("rejects %s", (_name, text) => {
    expect(() => parseSdp(text)).toThrow(SdpError);
  });

  it("orders codecs as the m= line does, not as the attribute lines come (Firefox writes fmtp first)", () => {
    const video = parseSdp(offer("firefox.sdp")).media[1];
    expect(video.codecs.map((c) => c.payloadType)).toEqual([120, 124, 121, 125, 126, 127, 97, 98, 123, 122, 119]);
    expect(video.codecs[0]).toMatchObject({ name: "VP8", fmtp: "max-fs=12288;max-fr=60" });
  });

  it("a bundle-only section on port 0 is usable, a plain port-0 section is not", () => {
    const sdp = parseSdp(offer("firefox-max-bundle.sdp"));
    expect(sdp.media.map((m) => [m.mid, m.port, m.bundleOnly])).toEqual([
      ["0", 52711, false],
      ["1", 0, true],
    ]);
    expect(usableMedia(sdp).map((m) => m.mid)).toEqual(["0", "1"]);
    const rejected = parseSdp(offer("firefox-max-bundle.sdp").replace("a=bundle-only\r\n", ""));
    expect(usableMedia(rejected).map((m) => m.mid)).toEqual(["0"]);
  });

  it("ignores rejected sections and data channels", () => {
    const sdp = parseSdp(
      "v=0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
    );
    expect(usableMedia(sdp).map((m) => m.kind)).toEqual(["video"]);
  });
});

describe("H.264 profile matching", () => {
  it.each([
    ["42e01f", "constrained-baseline"],
    ["42c01f", "constrained-baseline"],
    ["42001f", "baseline"],
    ["4d001f", "main"],
    ["640c1f", "constrained-high"],
    ["640032", "high"],
    ["64001f", "high"],
  ])("%s is %s", (plid, profile) => {
    expect(h264Profile(`profile-level-id=${plid}`)).toBe(profile);
  });

  it("matches profile and packetization mode, not level", () => {
    expect(codecMatches(h264("profile-level-id=42e01f;packetization-mode=1"), h264("profile-level-id=42e034;packetization-mode=1"))).toBe(true);
    expect(codecMatches(h264("profile-level-id=42e01f;packetization-mode=1"), h264("profile-level-id=42e01f"))).toBe(false);
    expect(codecMatches(h264("profile-level-id=640032;packetization-mode=1"), h264("profile-level-id=42e01f;packetization-mode=1"))).toBe(false);
  });

  it("names the codec in errors", () => {
    expect(describeCodec(h264("profile-level-id=640c1f;packetization-mode=1"))).toBe("H264 (profile-level-id=640c1f, packetization-mode=1)");
  });
});

describe("narrowOffer", () => {
  it("keeps only the chosen payload type of a section, with its attributes", () => {
    const sdp = parseSdp(chrome);
    const video = sdp.media[1];
    const narrowed = narrowOffer(sdp, new Map([[video, [106]]]));
    const again = parseSdp(narrowed);
    expect(again.media[1].formats).toEqual(["106"]);
    expect(again.media[1].codecs.map((c) => c.payloadType)).toEqual([106]);
    expect(again.media[0].formats).toEqual(sdp.media[0].formats);
    expect(narrowed).not.toMatch(/a=rtpmap:96 /);
    expect(narrowed).toMatch(/a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f/);
  });
});

describe("narrowOffer on offer shapes from the wild", () => {
  it("keeps the send rids of a simulcast section, reduced to id and direction", () => {
    const sdp = parseSdp(offer("chrome-simulcast.sdp"));
    expect(sdp.media[1].rids).toEqual(["h", "m", "l"]);
    const narrowed = narrowOffer(sdp, new Map([[sdp.media[1], [96]]]));
    expect(narrowed).toMatch(/\r\na=rid:h send\r\na=rid:m send\r\na=rid:l send\r\na=simulcast:send h;m;l\r\n/);
    expect(parseSdp(narrowed).media[1]).toMatchObject({ rids: ["h", "m", "l"], formats: ["96"] });
  });

  it("strips rid restrictions werift would read as the direction, and recv rids", () => {
    const text = offer("chrome-simulcast.sdp").replace("a=rid:h send", "a=rid:h send pt=96;max-width=1280").replace("a=rid:l send", "a=rid:l recv");
    const sdp = parseSdp(text);
    expect(sdp.media[1].rids).toEqual(["h", "m"]);
    const narrowed = narrowOffer(sdp, new Map([[sdp.media[1], [96]]]));
    expect(narrowed).toMatch(/\r\na=rid:h send\r\na=rid:m send\r\na=simulcast/);
    expect(narrowed).not.toMatch(/max-width|a=rid:l/);
  });

  it("turns a bundle-only section into an ordinary bundled one on port 9", () => {
    const sdp = parseSdp(offer("firefox-max-bundle.sdp"));
    const narrowed = narrowOffer(
      sdp,
      new Map([
        [sdp.media[0], [109]],
        [sdp.media[1], [120]],
      ]),
    );
    expect(narrowed).toMatch(/\r\nm=video 9 UDP\/TLS\/RTP\/SAVPF 120\r\n/);
    expect(narrowed).not.toMatch(/a=bundle-only/);
    expect(narrowed).toMatch(/\r\nm=audio 52711 UDP\/TLS\/RTP\/SAVPF 109\r\n/);
  });

  it("leaves sections it does not narrow as they were", () => {
    const sdp = parseSdp(offer("firefox-max-bundle.sdp"));
    const narrowed = narrowOffer(sdp, new Map([[sdp.media[0], [109]]]));
    expect(narrowed).toMatch(/\r\nm=video 0 UDP\/TLS\/RTP\/SAVPF 120 124 /);
    expect(narrowed).toMatch(/a=bundle-only/);
  });
});

describe("rewriteAnswerCandidates", () => {
  const answer = [
    "v=0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "a=candidate:1 1 udp 2130706431 192.0.2.2 50000 typ host",
    "a=candidate:2 1 udp 2130706430 127.0.0.1 50001 typ host",
    "a=end-of-candidates",
    "",
  ].join("\r\n");

  it("keeps only the allowed hosts", () => {
    const out = rewriteAnswerCandidates(answer, ["127.0.0.1"], []);
    expect(out).toContain("127.0.0.1 50001");
    expect(out).not.toContain("192.0.2.2");
    expect(out).toContain("a=end-of-candidates");
  });

  it("adds a public-address copy of each host candidate", () => {
    const out = rewriteAnswerCandidates(answer, [], ["203.0.113.7"]);
    expect(out).toContain("a=candidate:11 1 udp 2130706430 203.0.113.7 50000 typ host");
    expect(out).toContain("203.0.113.7 50001 typ host");
  });
});
