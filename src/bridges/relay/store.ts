// Relay task state across restarts: one JSON file, written atomically (temp file + rename: never a
// half-written file), read once at start-up.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { TaskRecord } from "./types.js";

interface StateFile {
  version: 1;
  tasks: TaskRecord[];
}

/** The records of the state file; none when it is missing, unreadable or of another version. */
export function loadTaskRecords(file: string): TaskRecord[] {
  let state: StateFile;
  try {
    state = JSON.parse(readFileSync(file, "utf8")) as StateFile;
  } catch {
    return [];
  }
  if (state.version !== 1 || !Array.isArray(state.tasks)) return [];
  return state.tasks;
}

/** Writes the records; throws when the file cannot be written. */
export function saveTaskRecords(file: string, tasks: TaskRecord[]): void {
  const state: StateFile = { version: 1, tasks };
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, file);
}
