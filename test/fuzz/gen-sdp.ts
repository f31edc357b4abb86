// Hostile SDP offers: real offers from test/fixtures cut, flipped, stretched and rewritten.
import { readdirSync, readFileSync } from "node:fs";
import type { Rng } from "./prng.js";

const fixturesDir = new URL("../fixtures/", import.meta.url);
const read = (rel: string) => readFileSync(new URL(rel, fixturesDir), "utf8");

const offerFiles = readdirSync(new URL("offers/", fixturesDir))
  .filter((f) => f.endsWith(".sdp"))
  .sort();

/** Offers a publisher sends (sendonly / sendrecv). */
export const PUBLISH_OFFERS: readonly string[] = [
  read("chrome-publish.sdp"),
  ...offerFiles.filter((f) => !f.startsWith("whep-")).map((f) => read(`offers/${f}`)),
];
/** Offers a viewer sends (recvonly). */
export const PLAY_OFFERS: readonly string[] = [read("chrome-offer.sdp"), ...offerFiles.filter((f) => f.startsWith("whep-")).map((f) => read(`offers/${f}`))];

/** A well-formed Chrome publish offer (CRLF), for rooms that must hold a publisher. */
export const CHROME_PUBLISH = read("chrome-publish.sdp").replace(/\r?\n/g, "\r\n");
/** A well-formed Chrome viewer offer (CRLF). */
export const CHROME_PLAY = read("chrome-offer.sdp").replace(/\r?\n/g, "\r\n");

const lines = (sdp: string) => sdp.split(/\r?\n/).filter((l, i, a) => l !== "" || i < a.length - 1);

const KINDS = ["audio", "video", "application", "text", "message", "image", "VIDEO", "Audio", "data", "", "x".repeat(300)];
const PROTOS = [
  "UDP/TLS/RTP/SAVPF",
  "UDP/TLS/RTP/SAVP",
  "RTP/AVP",
  "RTP/AVPF",
  "RTP/SAVPF",
  "TCP/TLS/RTP/SAVPF",
  "UDP/DTLS/SCTP",
  "DTLS/SCTP",
  "webrtc-datachannel",
  "udp",
  "RTP",
  "",
  "UDP/TLS/RTP/SAVPF/".repeat(50),
];
const PORTS = ["0", "9", "1", "65535", "65536", "99999", "4294967296", "99999999999999999999999999", "-1", "9/2", "0/0", "x", "", "00009", "9.5"];
const CODECS = [
  "VP8",
  "VP9",
  "H264",
  "h264",
  "AV1",
  "AV1X",
  "opus",
  "OPUS",
  "rtx",
  "red",
  "ulpfec",
  "flexfec-03",
  "PCMU",
  "PCMA",
  "G722",
  "CN",
  "telephone-event",
  "H265",
  "multiopus",
  "",
  "x".repeat(200),
];
const CLOCKS = ["90000", "48000", "8000", "0", "1", "4294967296", "999999999999999999999", "90000.5", "-1", ""];
const FMTPS = [
  "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1",
  "profile-level-id=640c1f;packetization-mode=1",
  "profile-level-id=zzzzzz",
  "profile-level-id=;packetization-mode=",
  "profile-level-id=42e01f42e01f",
  "packetization-mode=2",
  "packetization-mode=-1",
  "apt=96",
  "apt=999",
  "apt=",
  "profile-id=0",
  "profile-id=99999999999",
  "profile=2",
  "minptime=10;useinbandfec=1",
  ";;;;;",
  "=",
  "a=b=c;d",
  "x".repeat(5000),
  "111/111",
  "",
];
const ATTRS = [
  "a=group:BUNDLE 0 1",
  "a=group:BUNDLE nothere",
  "a=group:BUNDLE",
  "a=group:BUNDLE 0 0 0 0",
  "a=group:LS 0 1",
  "a=mid:0",
  "a=mid:1",
  "a=mid:",
  "a=mid:" + "m".repeat(2000),
  "a=mid:\u00e9\u2603",
  "a=ssrc:1111 cname:x",
  "a=ssrc:4294967295 cname:x",
  "a=ssrc:4294967296 cname:x",
  "a=ssrc:0 cname:",
  "a=ssrc:-1 msid:a b",
  "a=ssrc:abc",
  "a=ssrc-group:FID 1111",
  "a=ssrc-group:FID 1 2 3 4 5",
  "a=ssrc-group:SIM 1 2 3",
  "a=ssrc-group:FEC-FR 1111 9999",
  "a=ssrc-group:",
  "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=extmap:15 urn:ietf:params:rtp-hdrext:toffset",
  "a=extmap:256 urn:ietf:params:rtp-hdrext:sdes:mid",
  "a=extmap:4096 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
  "a=extmap:3/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
  "a=extmap:x y",
  "a=extmap:",
  "a=rid:h send",
  "a=rid:l send max-width=-1",
  "a=rid:",
  "a=simulcast:send h;m;l",
  "a=simulcast:recv ~x",
  "a=simulcast:",
  "a=setup:actpass",
  "a=setup:active",
  "a=setup:passive",
  "a=setup:holdconn",
  "a=setup:",
  "a=fingerprint:sha-256 00:11",
  "a=fingerprint:sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33",
  "a=fingerprint:md5 zz",
  "a=fingerprint:",
  "a=fingerprint:sha-512 " + "AB:".repeat(63) + "AB",
  "a=ice-ufrag:",
  "a=ice-ufrag:" + "u".repeat(3000),
  "a=ice-pwd:",
  "a=ice-pwd:short",
  "a=ice-options:trickle ice2 renomination",
  "a=ice-lite",
  "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
  "a=candidate:1 1 udp 2122260223 127.0.0.1 65536 typ host",
  "a=candidate:1 1 udp 99999999999999 ::1 9 typ host",
  "a=candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype active",
  "a=candidate:x",
  "a=candidate:1 1 udp 1 999.999.999.999 9 typ relay raddr 0.0.0.0 rport 0",
  "a=candidate:1 1 udp 1 abcdef.local 9 typ host",
  "a=end-of-candidates",
  "a=sctp-port:5000",
  "a=sctp-port:99999999",
  "a=max-message-size:262144",
  "a=max-message-size:-1",
  "a=msid:stream track",
  "a=msid:",
  "a=msid-semantic: WMS *",
  "a=rtcp-mux",
  "a=rtcp-mux-only",
  "a=rtcp-rsize",
  "a=rtcp:9 IN IP4 0.0.0.0",
  "a=rtcp:99999 IN IP6 ::",
  "a=rtcp-fb:* nack",
  "a=rtcp-fb:* transport-cc",
  "a=rtcp-fb:96",
  "a=rtcp-fb:96 " + "nack ".repeat(100),
  "a=bundle-only",
  "a=inactive",
  "a=recvonly",
  "a=sendonly",
  "a=sendrecv",
  "a=extmap-allow-mixed",
  "a=framerate:99999",
  "a=imageattr:* send [x=1280,y=720] recv *",
  "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xxxx",
  "a=identity:xxxx",
  "a=tls-id:x",
  "a=",
  "a=:",
  "a=::::",
  "b=AS:999999999999",
  "b=TIAS:-1",
  "c=IN IP4 0.0.0.0",
  "c=IN IP6 ::",
  "c=IN IP4 300.1.1.1/127/3",
  "c=",
  "i=x",
  "k=clear:x",
  "z=0 0",
  "r=1 2 3",
  "t=0 0",
  "o=- 0 0 IN IP4 127.0.0.1",
  "s=",
  "v=0",
  "x=unknown",
  "A=upper",
  "=novalue",
  "a",
  "",
  " a=leading-space",
  "a=trailing-space ",
  "\t",
];

type Mutator = (rng: Rng, sdp: string) => string;

const BODY_LIMIT = 1024 * 1024;
const MAX_BODY = BODY_LIMIT + 128 * 1024;

function editLines(sdp: string, f: (ls: string[]) => void): string {
  const ls = lines(sdp);
  // An offer cut down to nothing still has one (empty) line to edit.
  if (ls.length === 0) ls.push("");
  f(ls);
  return ls.join("\r\n") + "\r\n";
}

function mLine(rng: Rng): string {
  const formats: string[] = [];
  const n = rng.weighted<number>([
    [6, rng.int(1, 6)],
    [2, 0],
    [1, rng.int(50, 400)],
  ]);
  for (let i = 0; i < n; i++) {
    formats.push(
      rng.weighted<string>([
        [8, String(rng.int(0, 127))],
        [2, String(rng.int(128, 100000))],
        [1, rng.string(rng.int(1, 6), "abcxyz-_.")],
        [1, "4294967296"],
      ]),
    );
  }
  const sep = rng.chance(0.9) ? " " : rng.pick(["  ", "\t", " \t "]);
  return `m=${rng.pick(KINDS)}${sep}${rng.pick(PORTS)}${sep}${rng.pick(PROTOS)}${formats.length ? sep + formats.join(" ") : ""}`;
}

function rtpmap(rng: Rng): string {
  const pt = rng.weighted<string>([
    [8, String(rng.int(0, 127))],
    [2, String(rng.int(128, 9999))],
    [1, "x"],
    [1, ""],
  ]);
  const ch = rng.chance(0.3) ? `/${rng.pick(["1", "2", "0", "255", "99999999999", "x"])}` : "";
  return `a=rtpmap:${pt} ${rng.pick(CODECS)}/${rng.pick(CLOCKS)}${ch}`;
}

const MUTATORS: readonly (readonly [number, Mutator])[] = [
  // Truncation, at any byte or at a line boundary.
  [6, (rng, sdp) => sdp.slice(0, rng.int(0, sdp.length))],
  [3, (rng, sdp) => editLines(sdp, (ls) => ls.splice(rng.int(1, Math.max(1, ls.length)), ls.length))],
  // Byte flips (as characters; the body is sent as UTF-8).
  [
    6,
    (rng, sdp) => {
      const chars = [...sdp];
      const n = rng.int(1, 12);
      for (let i = 0; i < n && chars.length > 0; i++) {
        const at = rng.int(0, chars.length - 1);
        chars[at] = rng.weighted<string>([
          [4, String.fromCharCode(rng.int(0, 255))],
          [2, rng.pick(["\r", "\n", "\0", " ", "=", ":", "/", "\u00ff", "\ufffd", "\ud800"])],
          [1, rng.unicode(1)],
        ]);
      }
      return chars.join("");
    },
  ],
  // A huge line somewhere (mostly well under the 1 MiB body limit, sometimes around it).
  [
    3,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const size = rng.weighted<number>([
          [10, rng.int(1000, 20_000)],
          [3, rng.int(20_000, 200_000)],
          [1, rng.int(900_000, 1_100_000)],
        ]);
        const filler = rng
          .pick(["y", "9", " ", "a=x", ":", "/"])
          .repeat(Math.ceil(size / 3))
          .slice(0, size);
        const prefix = rng.pick([
          "a=x:",
          "a=ice-ufrag:",
          "a=mid:",
          "a=fmtp:96 ",
          "a=rtpmap:96 VP8/",
          "a=ssrc:1 cname:",
          "m=video 9 RTP/AVP ",
          "a=candidate:",
          "a=extmap:1 ",
          "",
        ]);
        ls.splice(rng.int(0, ls.length), 0, prefix + filler);
      }),
  ],
  // Binary: a random blob, or one spliced in.
  [2, (rng) => rng.bytes(rng.size(4096)).toString("latin1")],
  [
    2,
    (rng, sdp) => {
      const at = rng.int(0, sdp.length);
      return sdp.slice(0, at) + rng.bytes(rng.size(512)).toString("latin1") + sdp.slice(at);
    },
  ],
  // Wrong or absurd m= lines: replace one, add some, or many.
  [
    5,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const ms = ls.map((l, i) => (l.startsWith("m=") ? i : -1)).filter((i) => i >= 0);
        if (ms.length > 0) ls[rng.pick(ms)] = mLine(rng);
        else ls.push(mLine(rng));
      }),
  ],
  [
    2,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const n = rng.weighted<number>([
          [5, rng.int(1, 4)],
          [1, rng.int(20, 300)],
        ]);
        for (let i = 0; i < n; i++) ls.splice(rng.int(1, ls.length), 0, mLine(rng));
      }),
  ],
  // Payload types and codecs.
  [
    5,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const maps = ls.map((l, i) => (l.startsWith("a=rtpmap:") ? i : -1)).filter((i) => i >= 0);
        if (maps.length > 0 && rng.chance(0.7)) ls[rng.pick(maps)] = rtpmap(rng);
        else ls.splice(rng.int(1, ls.length), 0, rtpmap(rng));
      }),
  ],
  [
    3,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const fmtps = ls.map((l, i) => (l.startsWith("a=fmtp:") ? i : -1)).filter((i) => i >= 0);
        const line = `a=fmtp:${rng.pick(["96", "97", "106", "111", "127", "128", "999", "x", ""])} ${rng.pick(FMTPS)}`;
        if (fmtps.length > 0 && rng.chance(0.6)) ls[rng.pick(fmtps)] = line;
        else ls.splice(rng.int(1, ls.length), 0, line);
      }),
  ],
  // Payload types of the m= line swapped for others.
  [
    3,
    (rng, sdp) =>
      sdp.replace(/^(m=\S+ \S+ \S+)((?: \S+)*)/m, (_all, head: string) => {
        const n = rng.int(0, 8);
        const pts: string[] = [];
        for (let i = 0; i < n; i++)
          pts.push(
            String(
              rng.weighted<number>([
                [8, rng.int(0, 127)],
                [1, rng.int(128, 70000)],
              ]),
            ),
          );
        return head + (pts.length ? " " + pts.join(" ") : "");
      }),
  ],
  // Duplicated attributes, sections.
  [
    4,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const i = rng.int(0, ls.length - 1);
        const line = ls[i] ?? "";
        const n = Math.min(
          rng.weighted<number>([
            [6, rng.int(1, 5)],
            [2, rng.int(10, 200)],
            [1, rng.int(1000, 20000)],
          ]),
          Math.ceil(MAX_BODY / (line.length + 2)),
        );
        ls.splice(i, 0, ...Array<string>(n).fill(line));
      }),
  ],
  [
    2,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const starts = ls.map((l, i) => (l.startsWith("m=") ? i : -1)).filter((i) => i >= 0);
        if (starts.length === 0) return;
        const k = rng.int(0, starts.length - 1);
        const section = ls.slice(starts[k], starts[k + 1] ?? ls.length);
        const copies = Math.min(
          rng.weighted<number>([
            [5, 1],
            [2, rng.int(2, 6)],
            [1, rng.int(20, 100)],
          ]),
          Math.ceil(MAX_BODY / (section.join("").length + 2)),
        );
        for (let c = 0; c < copies; c++) ls.push(...section);
      }),
  ],
  // Known attributes with hostile values.
  [
    6,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const n = rng.int(1, 6);
        for (let i = 0; i < n; i++) ls.splice(rng.int(1, ls.length), 0, rng.pick(ATTRS));
      }),
  ],
  // Removed lines (ICE credentials, fingerprint, mid, BUNDLE ...).
  [
    4,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const kinds = [
          "a=ice-ufrag",
          "a=ice-pwd",
          "a=fingerprint",
          "a=setup",
          "a=mid",
          "a=group",
          "a=rtcp-mux",
          "a=rtpmap",
          "a=ssrc",
          "c=",
          "o=",
          "s=",
          "t=",
          "v=",
        ];
        const k = rng.pick(kinds);
        const all = rng.chance(0.5);
        for (let i = ls.length - 1; i >= 0; i--) if (ls[i]!.startsWith(k) && (all || rng.chance(0.5))) ls.splice(i, 1);
      }),
  ],
  [
    2,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const n = rng.int(1, Math.max(1, Math.floor(ls.length / 3)));
        for (let i = 0; i < n && ls.length > 0; i++) ls.splice(rng.int(0, ls.length - 1), 1);
      }),
  ],
  // Line endings: CRLF, LF, lone CR, CRCRLF, mixed; BOM; whitespace.
  [
    5,
    (rng, sdp) => {
      const ls = lines(sdp);
      const style = rng.pick(["crlf", "lf", "cr", "crcrlf", "mixed", "none"]);
      if (style === "none") return ls.join("");
      let out = "";
      for (const l of ls) {
        const eol =
          style === "crlf"
            ? "\r\n"
            : style === "lf"
              ? "\n"
              : style === "cr"
                ? "\r"
                : style === "crcrlf"
                  ? "\r\r\n"
                  : rng.pick(["\r\n", "\n", "\r", "\n\r", "\r\n\r\n", "\n\n"]);
        out += l + eol;
      }
      return rng.chance(0.3) ? out.replace(/(\r?\n|\r)+$/, "") : out;
    },
  ],
  [1, (_rng, sdp) => "\ufeff" + sdp],
  [
    1,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const i = rng.int(0, ls.length - 1);
        ls[i] = rng.pick([" ", "\t", ""]) + ls[i] + rng.pick([" ", "\t", "\r", "\0"]);
      }),
  ],
  // Lines shuffled, sections swapped.
  [1, (rng, sdp) => editLines(sdp, (ls) => void rng.shuffle(ls))],
  [
    1,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const a = rng.int(0, ls.length - 1);
        const b = rng.int(0, ls.length - 1);
        [ls[a], ls[b]] = [ls[b]!, ls[a]!];
      }),
  ],
  // Unicode and NUL inside values.
  [
    2,
    (rng, sdp) =>
      editLines(sdp, (ls) => {
        const i = rng.int(0, ls.length - 1);
        const at = rng.int(0, ls[i]!.length);
        ls[i] = ls[i]!.slice(0, at) + rng.unicode(rng.int(1, 20)) + ls[i]!.slice(at);
      }),
  ],
  // Session-level nonsense.
  [1, (rng, sdp) => sdp.replace(/^v=0/, rng.pick(["v=1", "v=", "V=0", "v=0 ", "v=00", "", "x=0"]))],
];

/** Whether the mutated body is sent as UTF-8 text or latin1 bytes (binary stays binary). */
export interface HostileSdp {
  body: Buffer;
  mutations: number;
}

/** A real offer from `corpus`, mutated 0-5 times (0 = sent intact, to reach the answer path). */
export function hostileOffer(rng: Rng, corpus: readonly string[]): HostileSdp {
  let sdp = rng.pick(corpus);
  if (rng.chance(0.5)) sdp = sdp.replace(/\r?\n/g, "\r\n");
  const n = rng.weighted<number>([
    [1, 0],
    [5, 1],
    [3, 2],
    [2, rng.int(3, 5)],
  ]);
  let binary = false;
  for (let i = 0; i < n; i++) {
    const mutate = rng.weighted(MUTATORS);
    sdp = mutate(rng, sdp);
    // Bytes 0x80-0xFF from byte flips or blobs go out as bytes, not as their UTF-8 encoding.
    if (!binary && /[\u0080-\u00ff]/.test(sdp) && rng.chance(0.5)) binary = true;
  }
  // Past the 1 MiB limit size tests nothing more; a stretched line repeated thousands of times
  // would otherwise make bodies of tens of MB that stall the fuzzer itself.
  if (sdp.length > MAX_BODY) sdp = sdp.slice(0, BODY_LIMIT + rng.int(1, MAX_BODY - BODY_LIMIT));
  const body = binary && !/[^\u0000-\u00ff]/.test(sdp) ? Buffer.from(sdp, "latin1") : Buffer.from(sdp, "utf8");
  return { body, mutations: n };
}

/** Content types for SDP routes: mostly the right one in its spellings, sometimes not. */
export function sdpContentType(rng: Rng): string | undefined {
  return rng.weighted<string | undefined>([
    [80, "application/sdp"],
    [4, "APPLICATION/SDP"],
    [4, "application/sdp; charset=utf-8"],
    [2, " application/sdp ;x=y"],
    [2, "application/sdp;" + "x".repeat(rng.int(1, 4000))],
    [
      2,
      rng.pick([
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/sdpx",
        "application/trickle-ice-sdpfrag",
        "",
        "*/*",
        "application/",
        "\u00ff/\u00ff",
      ]),
    ],
    [2, undefined],
  ]);
}
