// The shapes the relay files share: the manager's options, the records a task keeps (and the
// state file stores), and what GET /api/relay shows.

import type { Logger } from "../../logger.js";
import type { Rooms } from "../../sfu/rooms.js";
import type { Supervisor } from "../supervisor.js";
import type { PlayPosition } from "./plan.js";
import type { RelayTarget, RelayTaskSpec } from "./request.js";

export interface RelayOptions {
  supervisor: Supervisor;
  rooms: Rooms;
  log: Logger;
  mediaDir: string;
  allowedHosts: readonly string[];
  /** Where task state is kept across restarts. */
  stateFile: string;
  /** Where task state goes instead of the state file (a cluster keeps it in Redis). */
  persist?: (records: TaskRecord[]) => void;
  /** How long a stopped task's position can be resumed (48 h by default). */
  resumeMs: number;
  callbackTimeoutMs: number;
  callbackTries: number;
  /** Between callback tries. */
  callbackRetryMs: number;
}

export type TargetState = "scheduled" | "running" | "stopped" | "finished" | "failed";

/** One target of a task as the state file keeps it. */
export interface TargetRecord {
  target: RelayTarget;
  state: TargetState;
  position: PlayPosition;
  /** Until when a stopped target may be resumed (ms since the epoch). */
  resumeUntil?: number;
  lastError?: string;
}

/** One task as the state file keeps it. */
export interface TaskRecord {
  spec: RelayTaskSpec;
  callbackUrl?: string;
  createdAt: string;
  targets: TargetRecord[];
}

export interface RelayTargetInfo {
  url: string;
  state: TargetState;
  /** 1-based file of src being played, pass over the list (1-based), seconds into the entry. */
  file?: number;
  pass: number;
  offsetSeconds: number;
  resumableUntil?: string;
  lastError?: string;
  job?: string;
}

export interface RelayTaskInfo {
  id: string;
  state: TargetState;
  createdAt: string;
  src: string[];
  loop: number | null;
  start?: string;
  end?: string;
  targets: RelayTargetInfo[];
}
