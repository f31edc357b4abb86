// Every FFmpeg child of every supervisor in this process, SIGKILLed if Node exits without closing
// (a crash, a test runner ending): no FFmpeg outlives the server.

import type { ChildProcess } from "node:child_process";

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

export function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of liveChildren) {
        try {
          c.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  }
}

export function forgetChild(child: ChildProcess): void {
  liveChildren.delete(child);
}
