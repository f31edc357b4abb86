// Offer shapes seen in the wild, given raw to the room registry; each answer is checked line by
// line. (ICE never completes for most of them: the offers' candidates are documentation
// addresses.) test/http/api.test.ts and the e2e suites send offers through WHIP and WHEP.
//
// Fixtures (test/fixtures/offers/) and where their shape comes from:
//   obs.sdp                        OBS 30 WHIP output via libdatachannel 0.20: session-level ICE/DTLS, a=group:LS, ice2 option,
//                                  Opus 111 mid 0, H.264 96 mid 1 with x264's profile (640c1f), a=ssrc+msid, inline candidates
//                                  (obsproject/obs-studio#7926, ossrs/srs#3581)
//   chrome.sdp                     Chrome/Edge 13x sendonly transceivers, non-trickle: mDNS (.local) host + srflx candidates,
//                                  full codec list (VP8 first, H.264 4 profiles, AV1, VP9, red/ulpfec), rtx, ssrc-group FID
//   chrome-simulcast.sdp           the same with three send encodings: a=rid:h/m/l send, a=simulcast:send h;m;l, no a=ssrc
//   no-ssrc.sdp                    the Chrome shape without any a=ssrc/a=ssrc-group (streams known by the mid extension only)
//   datachannel.sdp                the Chrome shape plus an m=application webrtc-datachannel section in the BUNDLE
//   audio-only.sdp                 Chrome with a microphone only
//   pcmu-audio.sdp                 the Chrome shape whose audio offers only G.711 + telephone-event (SIP-bridging clients):
//                                  a section with nothing the SFU forwards next to a usable one
//   firefox.sdp                    Firefox 128 (SDPARTA): session-level fingerprint/a=sendrecv, attributes in its own order
//                                  (fmtp before rtpmap), opus 109, VP8 120, VP9 121, H.264 126/97, extmap …/recvonly, mid ext
//   firefox-max-bundle.sdp         the same with bundlePolicy "max-bundle": video is a=bundle-only on port 0 (JSEP §5.2.1)
//   safari.sdp                     Safari 17/18 (WebKit libwebrtc): H.264 first (640c1f, then 42e01f), H.265, VP8 last, rtcp-rsize
//   gstreamer-whipclientsink.sdp   gst-plugins-rs whipclientsink → webrtcbin: mids video0/audio1, upper-case OPUS, a=framerate,
//                                  ice-ufrag/pwd of 32 characters, fingerprint after the mid
//   gstreamer-nobundle.sdp         webrtcbin with bundle-policy=none: no a=group:BUNDLE, own ufrag/pwd per m-line, rtcp-fb nack pli
//   video-only.sdp                 webrtcbin VP8 only (meetecho/simple-whip-server#8)
//   ffmpeg.sdp                     FFmpeg 8 WHIP muxer (libavformat/whip.c generate_sdp_offer): a=setup:passive, no candidates,
//                                  opus 111 + H.264 106 42e01f mode 1, a=ssrc cname:FFmpeg, no rtx
//   aiortc.sdp                     aiortc 1.4: extmap ids numbered per section, so id 2 means ssrc-audio-level in audio and
//                                  abs-send-time in video under one BUNDLE; opus on PT 96
//   whep-firefox.sdp               Firefox recvonly audio+video transceivers (WHEP player)
//   whep-safari.sdp                Safari recvonly audio+video transceivers (WHEP player)
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isDomainError } from "../../src/errors.js";
import { fixtureSdp } from "../helpers/fixtures.js";
import { waitFor } from "../helpers/net.js";
import { requireOrSkip } from "../helpers/requirements.js";
import { publishTo, subscribeTo, testRooms } from "../helpers/sfu.js";
import type { WhepClient } from "../helpers/whep-client.js";
import { waitConnected, WhipClient } from "../helpers/whip-client.js";

const fixture = (name: string): string => fixtureSdp(`offers/${name}`);

// ---- a small, independent reader of offers and answers ----------------------------------------

interface Section {
  kind: string;
  port: number;
  formats: string[];
  mid?: string;
  direction?: string;
  setup?: string;
  fingerprint?: string;
  ufrag?: string;
  candidates: string[];
  rtpmap: Map<number, string>;
  fmtp: Map<number, string>;
  lines: string[];
}

interface Sdp {
  session: string[];
  media: Section[];
}

function read(sdp: string): Sdp {
  const out: Sdp = { session: [], media: [] };
  let cur: Section | undefined;
  for (const line of sdp.split(/\r?\n/)) {
    if (line === "") continue;
    const m = /^m=(\S+) (\d+) (\S+) (.*)$/.exec(line);
    if (m) {
      cur = { kind: m[1], port: Number(m[2]), formats: m[4].split(" "), candidates: [], rtpmap: new Map(), fmtp: new Map(), lines: [] };
      out.media.push(cur);
      continue;
    }
    if (!cur) {
      out.session.push(line);
      continue;
    }
    cur.lines.push(line);
    const a = /^a=([^:]+)(?::(.*))?$/.exec(line);
    if (!a) continue;
    const [, name, value = ""] = a;
    if (name === "mid") cur.mid = value;
    else if (["sendrecv", "sendonly", "recvonly", "inactive"].includes(name)) cur.direction = name;
    else if (name === "setup") cur.setup = value;
    else if (name === "fingerprint") cur.fingerprint = value;
    else if (name === "ice-ufrag") cur.ufrag = value;
    else if (name === "candidate") cur.candidates.push(value);
    else if (name === "rtpmap") cur.rtpmap.set(Number(value.split(" ")[0]), value.slice(value.indexOf(" ") + 1));
    else if (name === "fmtp") cur.fmtp.set(Number(value.split(" ")[0]), value.slice(value.indexOf(" ") + 1));
  }
  return out;
}

const sessionAttr = (sdp: Sdp, name: string): string | undefined => sdp.session.find((l) => l.startsWith(`a=${name}:`))?.slice(name.length + 3);

/** fmtp parameters as a sorted "k=v" list, so the order werift writes them in does not matter. */
const params = (fmtp: string | undefined): string[] =>
  (fmtp ?? "")
    .split(";")
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p !== "")
    .sort();

/** What one offered section must become in the answer. */
type Expect = { mid: string; pt: number; codec: string } | { mid: string; rejected: true } | { mid: string; application: true };

function checkAnswer(offerText: string, answerText: string, role: "whip" | "whep", expected: Expect[]): Sdp {
  const offer = read(offerText);
  const answer = read(answerText);
  expect(answerText).toMatch(/^v=0\r\n/);
  // Every offered m-line is answered, in the same order, with the same mid.
  expect(answer.media.map((s) => s.mid)).toEqual(offer.media.map((s) => s.mid));
  expect(answer.media.map((s) => s.mid)).toEqual(expected.map((e) => e.mid));

  const offerSetup = (s: Section) => s.setup ?? sessionAttr(offer, "setup");
  const accepted: Section[] = [];
  expected.forEach((e, i) => {
    const o = offer.media[i];
    const a = answer.media[i];
    expect(a.kind, `kind of section ${e.mid}`).toBe(o.kind);
    if ("rejected" in e) {
      expect(a.port, `section ${e.mid} rejected`).toBe(0);
      return;
    }
    expect(a.port, `section ${e.mid} accepted`).not.toBe(0);
    accepted.push(a);
    if ("application" in e) {
      expect(a.formats).toEqual(["webrtc-datachannel"]);
      return;
    }
    // The chosen codec, in the offer's numbering, with the offer's fmtp; also the RTX the offer
    // pairs with it (apt), for a WHEP viewer (NACKed packets go out as RTX) and for a publisher
    // that names its RTX SSRC (FID group) and sends no simulcast; nothing else.
    const rtxNegotiable = role === "whep" || (o.lines.some((l) => /^a=ssrc-group:FID \d+ \d+$/.test(l)) && !o.lines.some((l) => l.startsWith("a=rid:")));
    const rtx =
      rtxNegotiable && o.kind === "video"
        ? [...o.fmtp.entries()].find(([pt, f]) => params(f).includes(`apt=${e.pt}`) && o.rtpmap.get(pt)?.toLowerCase().startsWith("rtx/"))?.[0]
        : undefined;
    expect(a.formats, `payload types of section ${e.mid}`).toEqual(rtx === undefined ? [String(e.pt)] : [String(e.pt), String(rtx)]);
    if (rtx !== undefined) {
      expect(params(a.fmtp.get(rtx))).toEqual([`apt=${e.pt}`]);
      expect(
        a.lines.some((l) => /^a=ssrc-group:FID \d+ \d+$/.test(l)),
        `FID group in section ${e.mid}`,
      ).toBe(true);
    }
    expect(a.rtpmap.get(e.pt)?.toLowerCase()).toBe(o.rtpmap.get(e.pt)?.toLowerCase());
    expect(a.rtpmap.get(e.pt)?.split("/")[0].toLowerCase()).toBe(e.codec.toLowerCase());
    expect(params(a.fmtp.get(e.pt)), `fmtp of ${e.pt} in section ${e.mid}`).toEqual(params(o.fmtp.get(e.pt)));
    expect([...a.rtpmap.keys()]).toEqual(rtx === undefined ? [e.pt] : [e.pt, rtx]);
    expect(a.direction, `direction of section ${e.mid}`).toBe(role === "whip" ? "recvonly" : "sendonly");
    // Simulcast (RFC 8853) is received where offered: each send rid answered recv, with the rid
    // extension that tells the layers apart; elsewhere the client sends one stream per section.
    const sendRids = o.lines.flatMap((l) => /^a=rid:(\S+) send/.exec(l)?.slice(1) ?? []);
    if (role === "whip" && sendRids.length > 0) {
      expect(a.lines.filter((l) => l.startsWith("a=rid:"))).toEqual(sendRids.map((r) => `a=rid:${r} recv`));
      expect(a.lines).toContain(`a=simulcast:recv ${sendRids.join(";")}`);
      expect(a.lines.some((l) => /^a=extmap:\d+ urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id$/.test(l))).toBe(true);
    } else {
      expect(a.lines.filter((l) => /^a=(rid|simulcast):/.test(l))).toEqual([]);
    }
  });
  expect(accepted.length).toBeGreaterThan(0);

  for (const [i, a] of answer.media.entries()) {
    if (a.port === 0) continue;
    // DTLS role resolved (never actpass), the opposite of a passive offerer; a fingerprint; ICE credentials.
    const setup = a.setup ?? sessionAttr(answer, "setup");
    expect(["active", "passive"], `a=setup in section ${a.mid}`).toContain(setup);
    if (offerSetup(offer.media[i]) === "passive") expect(setup).toBe("active");
    if (offerSetup(offer.media[i]) === "active") expect(setup).toBe("passive");
    expect(a.fingerprint ?? sessionAttr(answer, "fingerprint")).toMatch(/^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/i);
    expect(a.ufrag ?? sessionAttr(answer, "ice-ufrag")).toBeTruthy();
  }

  const offerBundle = sessionAttr(offer, "group")?.startsWith("BUNDLE") ? sessionAttr(offer, "group") : undefined;
  const answerBundle = answer.session.find((l) => l.startsWith("a=group:BUNDLE"));
  const hostCandidate = (c: string) => / 127\.0\.0\.1 \d+ typ host/.test(c);
  if (offerBundle) {
    // One transport for the group: the accepted media sections (answer order), candidates inline.
    expect(answerBundle).toBe(`a=group:BUNDLE ${accepted.map((s) => s.mid).join(" ")}`);
    expect(accepted[0].candidates.some(hostCandidate), "loopback host candidate in the answer").toBe(true);
    expect(new Set(accepted.map((s) => s.ufrag ?? sessionAttr(answer, "ice-ufrag"))).size).toBe(1);
  } else {
    // No BUNDLE offered: one transport per m-line, each with its own candidates and credentials.
    expect(answerBundle).toBeUndefined();
    for (const s of accepted) expect(s.candidates.some(hostCandidate), `candidates of section ${s.mid}`).toBe(true);
    expect(new Set(accepted.map((s) => s.ufrag)).size).toBe(accepted.length);
  }
  expect(answerText).not.toMatch(/a=candidate:\S+ \d+ \S+ \d+ (?!127\.0\.0\.1 )\S+ \d+ typ host/);
  if (answerBundle) {
    // RFC 8843 §9.1: under one BUNDLE an extmap id means one URI; werift parses every packet of the
    // transport with one id→URI map, so a clash would misparse one section's extensions.
    const uriOf = new Map<string, string>();
    for (const s of accepted) {
      for (const l of s.lines) {
        const m = /^a=extmap:(\d+)(?:\/\S+)? (\S+)/.exec(l);
        if (!m) continue;
        expect(uriOf.get(m[1]) ?? m[2], `extmap id ${m[1]} in section ${s.mid}`).toBe(m[2]);
        uriOf.set(m[1], m[2]);
      }
    }
  }
  return answer;
}

// ---- WHIP ---------------------------------------------------------------------------------

interface WhipCase {
  name: string;
  file: string;
  edit?: (sdp: string) => string;
  sections: Expect[];
}

const av = (audioMid: string, audioPt: number, videoMid: string, videoPt: number, video: string): Expect[] => [
  { mid: audioMid, pt: audioPt, codec: "opus" },
  { mid: videoMid, pt: videoPt, codec: video },
];

const WHIP_CASES: WhipCase[] = [
  { name: "OBS 30 (H.264 high 640c1f)", file: "obs.sdp", sections: av("0", 111, "1", 96, "H264") },
  {
    name: "OBS 30 (H.264 baseline 42e01f)",
    file: "obs.sdp",
    edit: (s) => s.replace("profile-level-id=640c1f", "profile-level-id=42e01f"),
    sections: av("0", 111, "1", 96, "H264"),
  },
  {
    name: "OBS 30 without a=ssrc",
    file: "obs.sdp",
    edit: (s) => s.replace(/a=ssrc:[^\r]*\r\n/g, ""),
    sections: av("0", 111, "1", 96, "H264"),
  },
  { name: "Chrome/Edge", file: "chrome.sdp", sections: av("0", 111, "1", 96, "VP8") },
  { name: "Chrome simulcast h;m;l", file: "chrome-simulcast.sdp", sections: av("0", 111, "1", 96, "VP8") },
  { name: "no a=ssrc", file: "no-ssrc.sdp", sections: av("0", 111, "1", 96, "VP8") },
  {
    name: "with a data channel",
    file: "datachannel.sdp",
    sections: [...av("0", 111, "1", 96, "VP8"), { mid: "2", application: true }],
  },
  { name: "audio only", file: "audio-only.sdp", sections: [{ mid: "0", pt: 111, codec: "opus" }] },
  {
    name: "G.711-only audio next to video",
    file: "pcmu-audio.sdp",
    sections: [
      { mid: "0", rejected: true },
      { mid: "1", pt: 96, codec: "VP8" },
    ],
  },
  { name: "Firefox", file: "firefox.sdp", sections: av("0", 109, "1", 120, "VP8") },
  { name: "Firefox max-bundle (bundle-only)", file: "firefox-max-bundle.sdp", sections: av("0", 109, "1", 120, "VP8") },
  { name: "Safari (H.264 first)", file: "safari.sdp", sections: av("0", 111, "1", 96, "H264") },
  {
    name: "GStreamer whipclientsink",
    file: "gstreamer-whipclientsink.sdp",
    sections: [
      { mid: "video0", pt: 96, codec: "VP8" },
      { mid: "audio1", pt: 98, codec: "opus" },
    ],
  },
  {
    name: "GStreamer webrtcbin without BUNDLE",
    file: "gstreamer-nobundle.sdp",
    sections: [
      { mid: "video0", pt: 96, codec: "H264" },
      { mid: "audio1", pt: 97, codec: "opus" },
    ],
  },
  { name: "GStreamer video only", file: "video-only.sdp", sections: [{ mid: "video0", pt: 96, codec: "VP8" }] },
  {
    name: "sendrecv instead of sendonly",
    file: "video-only.sdp",
    edit: (s) => s.replace("a=sendonly", "a=sendrecv"),
    sections: [{ mid: "video0", pt: 96, codec: "VP8" }],
  },
  { name: "FFmpeg 8 WHIP muxer (setup:passive)", file: "ffmpeg.sdp", sections: av("0", 111, "1", 106, "H264") },
  { name: "aiortc 1.4 (extmap id reused across sections)", file: "aiortc.sdp", sections: av("0", 96, "1", 97, "VP8") },
  {
    // The same clash on two URIs werift negotiates (transport-cc in audio, abs-send-time in video).
    name: "extmap id reused for two URIs the server answers",
    file: "aiortc.sdp",
    edit: (s) =>
      s.replace(
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
      ),
    sections: av("0", 96, "1", 97, "VP8"),
  },
];

describe("WHIP offers from real clients", () => {
  const { rooms } = testRooms();
  afterEach(async () => {
    await Promise.all(rooms.all().map((r) => rooms.closeRoom(r.name, "delete")));
  });
  afterAll(() => rooms.close());

  it.each(WHIP_CASES.map((c, i) => ({ ...c, room: `offer-${i}` })))("$name ($file)", async ({ file, edit, sections, room }) => {
    const offer = (edit ?? ((s: string) => s))(fixture(file));
    const { answer } = await rooms.publish(room, offer);
    checkAnswer(offer, answer, "whip", sections);

    // The room is there with one track per accepted media section.
    const tracks = sections.filter((s) => "pt" in s).length;
    expect(rooms.list().find((r) => r.name === room)).toMatchObject({ name: room, tracks });
  });

  it("H.264 profile is kept exactly as offered, level included", async () => {
    const { answer } = await rooms.publish("profile", fixture("safari.sdp"));
    expect(answer).toMatch(/\r\na=fmtp:96 [^\r]*profile-level-id=640c1f/);
    expect(answer).not.toMatch(/profile-level-id=42e01f/);
  });

  it("a truncated or mangled real offer is invalid SDP, never another failure", async () => {
    const chrome = fixture("chrome.sdp");
    const bodies = [
      chrome.replace("m=video 58213 UDP/TLS/RTP/SAVPF 96", "m=video port UDP/TLS/RTP/SAVPF 96"),
      chrome.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:296 VP8/90000"),
      chrome.replace(/^v=0\r\n/, ""),
      chrome.slice(0, chrome.indexOf("m=audio")),
    ];
    for (const body of bodies) {
      const err = await rooms.publish("mangled", body).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isDomainError(err, "invalid_input") && err.message, body.slice(0, 80)).toBe("invalid SDP");
    }
    expect(rooms.get("mangled")).toBeUndefined();
  });
});

// ---- WHEP ---------------------------------------------------------------------------------

describe.each([
  { codec: "VP8" as const, firefox: 120, safari: 106 },
  { codec: "H264" as const, firefox: 126, safari: 98 },
])("WHEP offers from real players, publisher sending $codec", ({ codec, firefox, safari }) => {
  const { rooms } = testRooms();
  let publisher: WhipClient;
  const room = `whep-${codec}`;
  const sessions: string[] = [];
  beforeAll(async () => {
    publisher = (await publishTo(rooms, room, { video: { codec }, audio: true })).client;
  });
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((id) => rooms.endSession("whep", id)));
  });
  afterAll(async () => {
    await publisher?.close();
    await rooms.close();
  });

  /** Firefox with bundlePolicy "max-bundle": the video section is bundle-only on port 0. */
  const maxBundle = (sdp: string): string => {
    const at = sdp.indexOf("m=video 9 ");
    return sdp.slice(0, at) + sdp.slice(at).replace("m=video 9 ", "m=video 0 ").replace("a=recvonly\r\n", "a=bundle-only\r\na=recvonly\r\n");
  };

  it.each([
    { player: "Firefox", file: "whep-firefox.sdp", audioPt: 109, videoPt: firefox, edit: (s: string) => s },
    { player: "Firefox (max-bundle)", file: "whep-firefox.sdp", audioPt: 109, videoPt: firefox, edit: maxBundle },
    { player: "Safari", file: "whep-safari.sdp", audioPt: 111, videoPt: safari, edit: (s: string) => s },
  ])("$player gets the publisher's codec in its own numbering", async ({ player, file, audioPt, videoPt, edit }) => {
    const offer = edit(fixture(file));
    expect(offer.includes("a=bundle-only")).toBe(player.includes("max-bundle"));
    const { session, answer: text } = await rooms.subscribe(room, offer);
    sessions.push(session.id);
    const answer = checkAnswer(offer, text, "whep", av("0", audioPt, "1", videoPt, codec));
    if (codec === "H264") {
      // The publisher's profile (constrained baseline, mode 1), not the player's first H.264 entry.
      expect(params(answer.media[1].fmtp.get(videoPt))).toContain("packetization-mode=1");
      expect(answer.media[1].fmtp.get(videoPt)).toMatch(/profile-level-id=42e01f/);
    }
  });
});

// ---- media from offers without a=ssrc ------------------------------------------------------

const ffmpeg = requireOrSkip("ffmpeg");

describe.skipIf(!ffmpeg.ok)(ffmpeg.title("media from a publisher whose offer declares no SSRC"), () => {
  const { rooms } = testRooms();
  afterAll(() => rooms.close());

  // werift itself routes only by declared SSRC or rid: without the publisher's SSRC learning these
  // rooms stay silent although signalling succeeds.
  it.each([
    { how: "by its mid header extension", strip: /^a=ssrc(-group)?:/ },
    { how: "by payload type (no mid extension either)", strip: /^a=(ssrc(-group)?|extmap):/ },
  ])("is forwarded, the stream found $how", async ({ strip }) => {
    const room = `nossrc-${strip.source.length}`;
    const pub = await WhipClient.create({ video: { codec: "VP8" }, audio: true });
    let viewer: WhepClient | undefined;
    try {
      const offer = (await pub.createOffer())
        .split("\r\n")
        .filter((l) => !strip.test(l))
        .join("\r\n");
      expect(offer).not.toMatch(/a=ssrc/);
      const { answer } = await rooms.publish(room, offer);
      await pub.pc.setRemoteDescription({ type: "answer", sdp: answer });
      await waitConnected(pub.pc);
      pub.startSource({ width: 320, height: 240, bitrateKbps: 300, gop: 15 });
      // Media reaches the room before the viewer joins, so the server knows the SSRC to PLI.
      await waitFor(() => (rooms.get(room)?.publisher?.packets ?? 0) > 0, { timeoutMs: 10_000, what: `RTP in room ${room}` });

      viewer = (await subscribeTo(rooms, room, { video: ["VP8"], audio: true })).client;
      await viewer.waitForKeyframes(1, 15_000);
      await viewer.waitForFrames(20, 15_000);
      await viewer.waitForPackets(20, "audio", 15_000);
      expect(viewer.video.firstFrameWasKeyframe).toBe(true);
      expect({ width: viewer.video.width, height: viewer.video.height }).toEqual({ width: 320, height: 240 });
      // The viewer's join asked this publisher for a keyframe: its SSRC is known to the server.
      await pub.waitForKeyframeRequests(1, 5000);
    } finally {
      await viewer?.close();
      await pub.close();
    }
  });
});
