// A relay task's callbacks (docs/bridges.md, "Relay tasks"): the body of one callback, and its
// delivery: POSTed to transcallbackurl, delivered when the receiver answers HTTP 200 with a
// non-empty body, else tried again a few times; a callback that never arrives is logged.

import type { RelaySource } from "./request.js";
import type { RelayOptions } from "./types.js";

export interface CallbackFields {
  msg: string;
  /** "0" fine, "1" failed. */
  code: string;
  /** "1" start, "2" stop. */
  cmd: string;
  id: string;
  src: readonly RelaySource[];
  forwardUrl: string;
}

/** The JSON body: `srcurl` is itself a JSON string of the task's src list. */
export function callbackBody(f: CallbackFields): string {
  return JSON.stringify({
    msg: f.msg,
    code: f.code,
    srcurl: JSON.stringify(f.src.map((s) => ({ url: s.url }))),
    cmd: f.cmd,
    id: f.id,
    forwardurl: f.forwardUrl,
  });
}

/** POSTs a callback body: delivered on HTTP 200 with a non-empty body, else tried again. */
export async function deliverCallback(
  url: string,
  body: string,
  id: string,
  opts: Pick<RelayOptions, "callbackTries" | "callbackTimeoutMs" | "callbackRetryMs" | "log">,
): Promise<void> {
  const { callbackTries, callbackTimeoutMs, callbackRetryMs, log } = opts;
  let last = "";
  for (let i = 0; i < callbackTries; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, callbackRetryMs).unref());
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        signal: AbortSignal.timeout(callbackTimeoutMs),
        redirect: "manual",
      });
      const text = await res.text();
      if (res.status === 200 && text.trim() !== "") return;
      last = `HTTP ${res.status}${text.trim() === "" ? " with an empty body" : ""}`;
    } catch (err) {
      last = (err as Error).message;
    }
  }
  log.warn({ relay: id, tries: callbackTries, reason: last }, "relay callback not delivered");
}
