// The bridges of one server: one supervisor for every FFmpeg, the HLS directories, room egress
// (HLS, RTMP restreams) and the /start-stream jobs. buildApp() makes one, hands `consumer` to
// Rooms, and calls close() after the rooms have closed.

import type { Logger } from "../logger.js";
import type { Config } from "../config.js";
import type { TrackConsumerFactory } from "../sfu/room.js";
import { HlsDirectories } from "./hls.js";
import { RoomBridges } from "./room-bridges.js";
import { StreamJobs } from "./streams.js";
import { Supervisor, type SupervisorOptions } from "./supervisor.js";

export interface Bridges {
  supervisor: Supervisor;
  hls: HlsDirectories;
  rooms: RoomBridges;
  streams: StreamJobs;
  /** For Rooms' `consumers`. */
  consumer: TrackConsumerFactory;
  /** Stops every job; no FFmpeg is left running when it resolves. */
  close(): Promise<void>;
}

export function createBridges(
  config: Pick<Config, "hlsEnabled" | "hlsDir" | "startStreamProbeMs" | "maxFfmpegJobs">,
  log: Logger,
  supervisorOptions: Partial<SupervisorOptions> = {},
): Bridges {
  const supervisor = new Supervisor({ log, maxJobs: config.maxFfmpegJobs > 0 ? config.maxFfmpegJobs : undefined, ...supervisorOptions });
  const hls = new HlsDirectories(config.hlsDir);
  const rooms = new RoomBridges({ supervisor, hls, hlsEnabled: config.hlsEnabled, log });
  const streams = new StreamJobs({ supervisor, hls, log, probeMs: config.startStreamProbeMs });
  let closing: Promise<void> | undefined;
  return {
    supervisor,
    hls,
    rooms,
    streams,
    consumer: rooms.consumer,
    close: () =>
      (closing ??= (async () => {
        await Promise.all([rooms.close(), streams.close()]);
        await supervisor.closeAll();
      })()),
  };
}
