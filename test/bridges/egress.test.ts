// The pure parts of the bridges: the SDP FFmpeg reads, sender reports and their clock, URL rules,
// HLS names and paths, and the FFmpeg arguments of each output.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildEgressSdp, type SdpTrack } from "../../src/bridges/egress-sdp.js";
import { senderReport, SenderClock } from "../../src/bridges/sender-clock.js";
import { boundUdpPorts, freePortPair } from "../../src/bridges/udp-ports.js";
import { audioCodecArgs, hlsOutputArgs, HlsDirectories, rtmpOutputArgs, videoCodecArgs } from "../../src/bridges/hls.js";
import { withWhitelist } from "../../src/bridges/protocols.js";
import { maskRtmpUrl, parseRtmpUrl, urlRedactor } from "../../src/bridges/urls.js";
import { bindUdp, closeUdp, udpPort } from "../helpers/net.js";

const tmp = mkdtempSync(path.join(tmpdir(), "egress-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("buildEgressSdp", () => {
  const h264: SdpTrack = {
    kind: "video",
    codecName: "H264",
    payloadType: 102,
    clockRate: 90000,
    fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM48gA==",
    port: 40000,
  };
  const opus: SdpTrack = { kind: "audio", codecName: "opus", payloadType: 111, clockRate: 48000, channels: 2, fmtp: "minptime=10;useinbandfec=1", port: 40002 };

  it("writes the publisher's payload types, clock rates and fmtp on loopback", () => {
    const sdp = buildEgressSdp("demo", [h264, opus]);
    expect(sdp.split("\r\n")).toEqual([
      "v=0",
      "o=- 0 0 IN IP4 127.0.0.1",
      "s=demo",
      "c=IN IP4 127.0.0.1",
      "t=0 0",
      "m=video 40000 RTP/AVP 102",
      "a=rtpmap:102 H264/90000",
      `a=fmtp:102 ${h264.fmtp}`,
      "a=recvonly",
      "m=audio 40002 RTP/AVP 111",
      "a=rtpmap:111 opus/48000/2",
      "a=fmtp:111 minptime=10;useinbandfec=1",
      "a=recvonly",
      "",
    ]);
  });

  it("Opus is always /48000/2 (mono stays /1), VP8 has no fmtp line, VP9 keeps its profile", () => {
    const sdp = buildEgressSdp("r", [
      { kind: "video", codecName: "VP8", payloadType: 96, clockRate: 90000, fmtp: "", port: 5000 },
      { kind: "audio", codecName: "opus", payloadType: 109, clockRate: 48000, fmtp: "", port: 5002 },
    ]);
    expect(sdp).toContain("a=rtpmap:96 VP8/90000\r\n");
    expect(sdp).not.toContain("a=fmtp:96");
    expect(sdp).toContain("a=rtpmap:109 opus/48000/2\r\n");
    expect(buildEgressSdp("r", [{ ...opus, channels: 1 }])).toContain("opus/48000/1");
    expect(buildEgressSdp("r", [{ kind: "video", codecName: "VP9", payloadType: 98, clockRate: 90000, fmtp: "profile-id=0", port: 6000 }])).toContain(
      "a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n",
    );
  });

  it("refuses what FFmpeg 5 cannot depacketize and bad numbers; keeps every line single", () => {
    expect(() => buildEgressSdp("r", [{ ...h264, codecName: "AV1" }])).toThrow(/cannot bridge AV1/);
    expect(() => buildEgressSdp("r", [{ ...h264, payloadType: 200 }])).toThrow(/payload type/);
    expect(() => buildEgressSdp("r", [{ ...h264, port: 0 }])).toThrow(/port/);
    const sdp = buildEgressSdp("r\r\nm=evil", [{ ...h264, fmtp: "a=1\r\nm=application 9 x" }]);
    expect(sdp.split("\r\n").filter((l) => l.startsWith("m="))).toHaveLength(1);
  });
});

describe("sender reports", () => {
  it("are 28-byte RTCP SRs with NTP time of the wall clock", () => {
    const wall = Date.UTC(2024, 0, 1, 0, 0, 0, 500);
    const b = senderReport(0x11223344, wall, 0xfffffff0, 10, 1000);
    expect(b.length).toBe(28);
    expect(b[0]).toBe(0x80);
    expect(b[1]).toBe(200);
    expect(b.readUInt16BE(2)).toBe(6);
    expect(b.readUInt32BE(4)).toBe(0x11223344);
    expect(b.readUInt32BE(8)).toBe(Math.floor(wall / 1000) + 2208988800);
    expect(b.readUInt32BE(12)).toBe(0x80000000); // .5 s
    expect(b.readUInt32BE(16)).toBe(0xfffffff0);
    expect(b.readUInt32BE(20)).toBe(10);
    expect(b.readUInt32BE(24)).toBe(1000);
  });

  it("follow the RTP clock from one anchor, whatever the arrival jitter or delay, across wrap-around", () => {
    const c = new SenderClock(90000);
    const t0 = 1_000_000;
    expect(c.wallOf(0xffff0000, t0)).toBe(t0);
    // 1 s of RTP later, arriving 180 ms late: still exactly 1 s after the anchor.
    expect(c.wallOf((0xffff0000 + 90000) >>> 0, t0 + 1180)).toBe(t0 + 1000);
    // Wrapped past 2^32.
    expect(c.wallOf((0xffff0000 + 180000) >>> 0, t0 + 1990)).toBe(t0 + 2000);
    // A 4 s stall then a burst: the late packets keep their media time.
    expect(c.wallOf((0xffff0000 + 270000) >>> 0, t0 + 7000)).toBe(t0 + 3000);
    expect(c.wallOf((0xffff0000 + 273000) >>> 0, t0 + 7001)).toBe(t0 + 3000 + 3000 / 90);
    expect(c.jumps).toBe(0);
    // An encoder restart (the timestamp itself jumps) re-anchors.
    expect(c.wallOf(0x40000000, t0 + 7100)).toBe(t0 + 7100);
    expect(c.wallOf(0x40000000 + 45000, t0 + 7600)).toBe(t0 + 7600);
    expect(c.jumps).toBe(1);
  });
});

describe("loopback ports", () => {
  it("freePortPair gives P with P and P+1 free; /proc/net/udp shows a bound port", async () => {
    const p = await freePortPair();
    const a = await bindUdp(p);
    const b = await bindUdp(p + 1);
    try {
      const bound = boundUdpPorts();
      if (bound) expect(bound.has(udpPort(a)) && bound.has(udpPort(b))).toBe(true);
    } finally {
      await closeUdp(a);
      await closeUdp(b);
    }
  });
});

describe("rtmp URLs", () => {
  it("accepts rtmp:// and rtmps:// with a host and a path", () => {
    for (const u of [
      "rtmp://a.example/live/key",
      "rtmps://live-api-s.facebook.com:443/rtmp/FB-123",
      "RTMP://127.0.0.1:1935/app",
      "rtmp://user:pw@h/app/k?x=1",
    ]) {
      expect(parseRtmpUrl(u)).toBe(u);
    }
  });

  it("refuses everything else", () => {
    for (const u of [
      undefined,
      42,
      "",
      "http://example.com/x.m3u8",
      "file:///etc/passwd",
      "file:/etc/passwd",
      "concat:a.ts|b.ts",
      "subfile:,start,0,end,0,:/etc/passwd",
      "rtmp://",
      "rtmp:///live/x",
      "rtmp://host",
      "rtmp://host/",
      "rtmp://host/app/key live=1",
      "rtmp://host/app/key\nx",
      "-i",
      "rtmpt://host/app/key",
      "rtmp://h/" + "a".repeat(3000),
    ]) {
      expect(parseRtmpUrl(u), String(u)).toBeUndefined();
    }
  });

  it("masks stream keys and credentials", () => {
    expect(maskRtmpUrl("rtmp://a.example/live/secret")).toBe("rtmp://a.example/live/****");
    expect(maskRtmpUrl("rtmps://u:p@h:443/app/sub/secret?token=1")).toBe("rtmps://****@h:443/app/sub/****");
    expect(maskRtmpUrl("rtmp://h/app")).toBe("rtmp://h/app");
    const redact = urlRedactor("rtmp://h/live/verysecret");
    expect(redact("rtmp://h/live/verysecret: Connection refused")).toBe("rtmp://h/live/****: Connection refused");
    expect(redact("playpath verysecret")).toBe("playpath ****");
  });
});

describe("HlsDirectories", () => {
  const root = path.join(tmp, "hls");
  const hls = new HlsDirectories(root);

  it("serves only {room}/stream.m3u8 and {room}/seg_<n>.ts inside HLS_DIR", () => {
    expect(hls.fileFor("demo", "stream.m3u8")).toBe(path.join(root, "demo", "stream.m3u8"));
    expect(hls.fileFor("demo", "seg_1795469651773.ts")).toBe(path.join(root, "demo", "seg_1795469651773.ts"));
    for (const [name, file] of [
      ["..", "stream.m3u8"],
      [".", "stream.m3u8"],
      ["demo", ".."],
      ["demo", "../stream.m3u8"],
      ["demo", "..%2fstream.m3u8"],
      ["demo", "/etc/passwd"],
      ["/etc", "passwd"],
      ["demo/..", "stream.m3u8"],
      ["demo", "stream.m3u8\0.ts"],
      ["demo", "seg_1.ts.tmp"],
      ["demo", "stream.m3u8.tmp"],
      ["demo", "other.m3u8"],
      ["demo", "seg_x.ts"],
      ["demo", ".write-test-1"],
      ["a".repeat(65), "stream.m3u8"],
    ]) {
      expect(hls.fileFor(name, file), `${name}/${file}`).toBeUndefined();
    }
  });

  it("one kind of writer per name, the latest claim of a kind wins; prepare empties old output; remove deletes it", async () => {
    const first = hls.claim("cam1", "stream");
    expect(() => hls.claim("cam1", "room")).toThrow(expect.objectContaining({ kind: "conflict", message: 'HLS name "cam1" is in use by a stream' }));
    const second = hls.claim("cam1", "stream"); // a restart takes the name over
    expect(hls.holds("cam1", first)).toBe(false);
    hls.release("cam1", first); // the old claim's release does nothing now
    expect(hls.owner("cam1")).toBe("stream");
    const dir = await hls.prepare("cam1");
    writeFileSync(path.join(dir, "stream.m3u8"), "#EXTM3U\n");
    await hls.releaseAndRemove("cam1", first); // nor does its cleanup
    expect(existsSync(path.join(dir, "stream.m3u8"))).toBe(true);
    writeFileSync(path.join(dir, "seg_1.ts"), "x");
    writeFileSync(path.join(dir, "seg_2.ts.tmp"), "x");
    writeFileSync(path.join(dir, "keep.txt"), "not ours");
    await hls.prepare("cam1");
    expect(readdirSync(dir)).toEqual(["keep.txt"]);
    await hls.remove("cam1");
    expect(existsSync(dir)).toBe(true); // not empty: kept
    rmSync(path.join(dir, "keep.txt"));
    writeFileSync(path.join(dir, "stream.m3u8"), "#EXTM3U\n");
    await hls.releaseAndRemove("cam1", second);
    expect(existsSync(dir)).toBe(false);
    expect(hls.owner("cam1")).toBeUndefined();
    expect(() => hls.dirOf("../x")).toThrow(/invalid HLS name/);
  });

  it("prepare fails with the reason when the directory cannot be made", async () => {
    const file = path.join(tmp, "a-file");
    writeFileSync(file, "");
    const bad = new HlsDirectories(file);
    await expect(bad.prepare("x")).rejects.toMatchObject({ code: "ENOTDIR" });
    mkdirSync(path.join(tmp, "ok"), { recursive: true });
  });
});

describe("FFmpeg output arguments", () => {
  it("HLS: MPEG-TS segments of the target length, sliding window, old ones deleted, numbered by start time, file-only", () => {
    const before = Date.now();
    const args = hlsOutputArgs({ dir: "/srv/hls/demo", segmentSeconds: 1, listSize: 6 });
    const opt = (name: string) => args[args.indexOf(name) + 1];
    expect(opt("-f")).toBe("hls");
    expect(opt("-hls_time")).toBe("1");
    expect(opt("-hls_list_size")).toBe("6");
    expect(opt("-hls_flags")).toContain("delete_segments");
    expect(opt("-hls_segment_type")).toBe("mpegts");
    expect(Number(opt("-start_number"))).toBeGreaterThanOrEqual(before);
    expect(opt("-hls_segment_filename")).toBe("/srv/hls/demo/seg_%d.ts");
    expect(opt("-protocol_whitelist")).toBe("file");
    expect(args[args.length - 1]).toBe("/srv/hls/demo/stream.m3u8");
    expect(hlsOutputArgs({ dir: "/a%b/x", segmentSeconds: 2, listSize: 3 })).toContain("/a%%b/x/seg_%d.ts");
  });

  it("RTMP: FLV to the URL over rtmp/rtmps/tcp/tls only", () => {
    const args = rtmpOutputArgs("rtmp://h/app/k");
    expect(args).toEqual(["-f", "flv", "-flvflags", "no_duration_filesize", "-protocol_whitelist", "rtmp,rtmps,tcp,tls", "rtmp://h/app/k"]);
    expect(() => withWhitelist(["-i", "x", ...args], ["file", "udp", "rtp"])).not.toThrow();
  });

  it("H.264 is copied; VP8/VP9 go to libx264 veryfast zerolatency with forced keyframes; Opus to AAC", () => {
    expect(videoCodecArgs("H264", 2)).toEqual(["-c:v", "copy"]);
    for (const codec of ["VP8", "VP9"] as const) {
      const v = videoCodecArgs(codec, 1);
      const opt = (name: string) => v[v.indexOf(name) + 1];
      expect(opt("-c:v")).toBe("libx264");
      expect(opt("-preset")).toBe("veryfast");
      expect(opt("-tune")).toBe("zerolatency");
      expect(opt("-pix_fmt")).toBe("yuv420p");
      expect(opt("-force_key_frames")).toBe("expr:gte(t,n_forced*1)");
    }
    const a = audioCodecArgs(44100);
    expect(a.slice(a.indexOf("-c:a"), a.indexOf("-c:a") + 2)).toEqual(["-c:a", "aac"]);
    expect(a[a.indexOf("-ar") + 1]).toBe("44100");
  });
});
