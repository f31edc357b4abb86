// An edge's copy of a room owned by another node: one WHEP session of this node's own to the
// upstream node (authorised by CLUSTER_SECRET), whose tracks feed local fan-outs with their own
// GOP cache. Local viewers' keyframe requests go upstream, throttled by each track's requester.
import type { MediaStreamTrack, RTCRtpTransceiver } from "werift";
import { canonicalName } from "../media/codecs.js";
import { TrackFanout } from "../sfu/forward.js";
import { KeyframeRequester } from "../sfu/keyframes.js";
import { createPeer, toWeriftCodec, type IceSettings } from "../sfu/peer.js";
import type { PublishedTrack } from "../sfu/publisher.js";
import { rewriteAnswerCandidates, type MediaKind, type SdpCodec } from "../sfu/sdp.js";
import { PeerSession, type EndReason, type Liveness } from "../sfu/session.js";
import type { RoomSource } from "../sfu/types.js";
import { dropDefaultStunServer } from "../sfu/werift-adapter.js";

/** A track of the owner's room, as its lease's meta describes it. */
export interface TrackSpec {
  kind: MediaKind;
  codec: SdpCodec;
}

/** The header a node-to-node request carries CLUSTER_SECRET in. */
export const SECRET_HEADER = "x-cluster-secret";
/** The node a node-to-node request comes from. */
export const NODE_HEADER = "x-cluster-node";

/** About 4 s of 2.5 Mbps video: a joiner on the edge starts at once from the cached GOP. */
const EDGE_GOP_CACHE_PACKETS = 1024;
/** How long the upstream's answer may take (a busy origin, a slow link): not a fixed 2 s. */
const UPSTREAM_TIMEOUT_MS = 10_000;

export interface EdgeSourceOptions {
  /** Base URL of the node pulled from. */
  upstream: string;
  room: string;
  tracks: TrackSpec[];
  secret: string;
  nodeId: string;
  ice: IceSettings;
  liveness: Liveness;
}

export class EdgeSource extends PeerSession implements RoomSource {
  readonly tracks: PublishedTrack[];
  /** The upstream's session resource, deleted when the pull ends. */
  private location: string | undefined;
  private readonly receivers = new Map<MediaKind, { transceiver: RTCRtpTransceiver; track?: MediaStreamTrack }>();

  private constructor(
    handle: ReturnType<typeof createPeer>,
    private readonly opts: EdgeSourceOptions,
  ) {
    super(handle, opts.liveness);
    const counts = { audio: 0, video: 0 };
    this.tracks = opts.tracks.map((t) => {
      const name = canonicalName(t.codec.name);
      if (!name) throw new Error(`cannot forward ${t.codec.name}`);
      const keyframes = new KeyframeRequester(() => this.sendKeyframeRequest(t.kind));
      return {
        kind: t.kind,
        codecName: name,
        codec: t.codec,
        index: counts[t.kind]++,
        fanout: new TrackFanout(t.kind, name, () => keyframes.request(), t.kind === "video" ? EDGE_GOP_CACHE_PACKETS : 0),
        keyframes,
      };
    });
  }

  /** Opens the pull: offer, POST to the upstream, answer applied. Media flows once ICE is up. */
  static async open(opts: EdgeSourceOptions): Promise<EdgeSource> {
    const byKind = (kind: MediaKind) => opts.tracks.filter((t) => t.kind === kind).map((t) => toWeriftCodec(kind, t.codec));
    const handle = createPeer(opts.ice, { video: byKind("video"), audio: byKind("audio") });
    const source = new EdgeSource(handle, opts);
    const pc = handle.pc;
    try {
      for (const t of source.tracks) {
        if (source.receivers.has(t.kind)) continue;
        source.receivers.set(t.kind, { transceiver: pc.addTransceiver(t.kind, { direction: "recvonly" }) });
      }
      pc.onTrack.subscribe((track) => source.attachTrack(track));
      const offer = await pc.createOffer();
      dropDefaultStunServer(pc);
      await pc.setLocalDescription(offer);
      if (pc.iceGatheringState !== "complete") {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5000);
          pc.iceGatheringStateChange.subscribe((state) => {
            if (state !== "complete") return;
            clearTimeout(timer);
            resolve();
          });
        });
      }
      const sdp = rewriteAnswerCandidates(pc.localDescription?.sdp ?? "", opts.ice.iceHosts, opts.ice.icePublicIps);
      const url = `${opts.upstream}/api/whep/play/${encodeURIComponent(opts.room)}`;
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/sdp", [SECRET_HEADER]: opts.secret, [NODE_HEADER]: opts.nodeId },
        body: sdp,
        signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
      });
      const answer = await res.text();
      if (res.status !== 201) throw new Error(`upstream answered ${res.status}: ${answer.slice(0, 200)}`);
      const location = res.headers.get("location");
      if (location) source.location = new URL(location, opts.upstream).toString();
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      return source;
    } catch (err) {
      await source.close("error");
      throw err;
    }
  }

  private attachTrack(track: MediaStreamTrack): void {
    const published = this.tracks.find((t) => t.kind === track.kind);
    const receiver = this.receivers.get(track.kind as MediaKind);
    if (!published || !receiver || receiver.track) return;
    receiver.track = track;
    const fanout = published.fanout;
    track.onReceiveRtp.subscribe((packet) => fanout.forward(packet));
  }

  private sendKeyframeRequest(kind: MediaKind): void {
    const r = this.receivers.get(kind);
    const ssrc = r?.track?.ssrc;
    if (ssrc === undefined) return; // before the first packet: the upstream starts us on a keyframe anyway
    r!.transceiver.receiver.sendRtcpPLI(ssrc).catch(() => undefined);
  }

  get packets(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.packets, 0);
  }

  get bytes(): number {
    return this.tracks.reduce((n, t) => n + t.fanout.bytes, 0);
  }

  private readonly connectedListeners: (() => void)[] = [];

  /** Resolves once ICE and DTLS are up; rejects when the pull ends first or `timeoutMs` passes. */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("pull ended before it connected"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pull not connected after ${timeoutMs} ms`)), timeoutMs);
      this.connectedListeners.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.onEnd(() => {
        clearTimeout(timer);
        reject(new Error("pull ended before it connected"));
      });
    });
  }

  protected onConnected(): void {
    for (const l of this.connectedListeners.splice(0)) l();
  }

  protected release(_reason: EndReason): void {
    for (const t of this.tracks) {
      t.keyframes.close();
      t.fanout.close();
    }
    // The upstream frees its session at once rather than after its silence timeout.
    if (this.location) {
      fetch(this.location, {
        method: "DELETE",
        headers: { [SECRET_HEADER]: this.opts.secret, [NODE_HEADER]: this.opts.nodeId },
        signal: AbortSignal.timeout(3000),
      }).catch(() => undefined);
    }
  }
}
