// Recording file names, built and parsed here only: the recorder names its track files, the
// playback merge names a session's file, the records API lists and serves exactly the names this
// module parses (docs/api.md, "Recordings"). Pure: whether a name is taken is the caller's question.
//
//   track file    {room}_{kind}{index}_{unixSeconds}.{ivf|h264|ogg}   e.g. demo_video0_1710000001.ivf
//   session file  {room}_{unixSeconds}.{webm|mp4}                      e.g. demo_1710000001.webm
//
// A session's file takes the earliest second of its track files, so the track files of one
// session are named at or a few seconds after it.

import { ROOM_NAME_RE } from "../config.js";
import type { PlaybackContainer, TrackContainer } from "../media/codecs.js";

export type TrackExtension = TrackContainer["extension"];
export type RecordExtension = TrackExtension | PlaybackContainer;

interface Named {
  /** A room name (ROOM_NAME_RE). */
  room: string;
  /** Start time, whole seconds since the Unix epoch. */
  seconds: number;
}

/** One track of a published session. */
export interface TrackFileName extends Named {
  playback: false;
  kind: "video" | "audio";
  /** The track's index among the publisher's tracks of its kind. */
  index: number;
  extension: TrackExtension;
}

/** A session's tracks merged into one playable file. */
export interface PlaybackFileName extends Named {
  playback: true;
  extension: PlaybackContainer;
}

export type RecordName = TrackFileName | PlaybackFileName;

/** Track files of one session are named within this many seconds of the session's file. */
export const SESSION_WINDOW_S = 10;

const TRACK_NAME_RE = /^([A-Za-z0-9_-]{1,64})_(video|audio)(\d+)_(\d{1,12})\.(ivf|h264|ogg)$/;
const PLAYBACK_NAME_RE = /^([A-Za-z0-9_-]{1,64})_(\d{1,12})\.(webm|mp4)$/;

/**
 * The parts of a recording's file name; undefined for anything else, which covers every name
 * with a separator, a dot segment, a NUL, a hidden or temporary file, or an overlong room.
 */
export function parseRecordName(name: string): RecordName | undefined {
  const t = TRACK_NAME_RE.exec(name);
  if (t) {
    if (!ROOM_NAME_RE.test(t[1])) return undefined;
    return {
      room: t[1],
      playback: false,
      kind: t[2] as "video" | "audio",
      index: Number(t[3]),
      seconds: Number(t[4]),
      extension: t[5] as TrackExtension,
    };
  }
  const p = PLAYBACK_NAME_RE.exec(name);
  if (!p || !ROOM_NAME_RE.test(p[1])) return undefined;
  return { room: p[1], playback: true, seconds: Number(p[2]), extension: p[3] as PlaybackContainer };
}

/** The file name of a recording; throws a RangeError for parts no parse would give back. */
export function formatRecordName(n: RecordName): string {
  if (!ROOM_NAME_RE.test(n.room)) throw new RangeError(`invalid room name for a recording: ${JSON.stringify(n.room)}`);
  if (!Number.isInteger(n.seconds) || n.seconds < 0 || n.seconds > 999_999_999_999) {
    throw new RangeError(`invalid recording start time: ${n.seconds}`);
  }
  if (n.playback) return `${n.room}_${n.seconds}.${n.extension}`;
  if (!Number.isInteger(n.index) || n.index < 0) throw new RangeError(`invalid track index: ${n.index}`);
  return `${n.room}_${n.kind}${n.index}_${n.seconds}.${n.extension}`;
}

/**
 * The name for `n` that is not taken, moving the seconds forward while it is (a room published
 * again within the same second), so no recording is ever overwritten.
 */
export function freeRecordName(n: RecordName, taken: (name: string) => boolean): string {
  for (let seconds = n.seconds; ; seconds++) {
    const name = formatRecordName({ ...n, seconds });
    if (!taken(name)) return name;
  }
}

/** Whether a track file belongs to the session whose merged file is `session`. */
export function inSession(track: TrackFileName, session: PlaybackFileName): boolean {
  return track.room === session.room && session.seconds <= track.seconds && track.seconds - session.seconds <= SESSION_WINDOW_S;
}

/** The Content-Type a recording is served with. */
export const CONTENT_TYPES: Readonly<Record<RecordExtension, string>> = {
  ivf: "video/x-ivf",
  h264: "video/h264",
  ogg: "audio/ogg",
  webm: "video/webm",
  mp4: "video/mp4",
};
