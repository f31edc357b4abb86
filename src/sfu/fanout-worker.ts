// A fan-out worker process (FORWARD_WORKERS): protects and sends the packets of the viewers the
// server gave it, from their own sockets, and answers their NACKs from its copy of each track's
// history. The server keeps ICE, DTLS, RTCP and signalling; this process only writes, through
// the native addon where it loads (one call per packet for all of a track's viewers here), else
// in JavaScript.
import dgram from "node:dgram";
import { isNack, type AddOutput, type FromWorker, type ToWorker } from "./fanout-protocol.js";
import { PacketHistory } from "./history.js";
import { nativeForwarding, socketFd } from "./native.js";
import { NativeOutput, NativeTrack, nativeStats } from "./native-output.js";
import { OutboundStream, type ViewerOutput } from "./outbound.js";
import { SrtpProtector } from "./srtp.js";

/** Where an output's packets go; its fields change when the viewer's nominated pair does. */
interface Target {
  socket: dgram.Socket;
  address: string;
  port: number;
}

interface Output {
  track: number;
  stream: ViewerOutput;
  target: Target;
}

const outputs = new Map<number, Output>();
let sent = 0;
const histories = new Map<number, { history: PacketHistory; users: number; native?: NativeTrack }>();

function report(message: FromWorker): void {
  process.send?.(message);
}

/**
 * A socket handle passed over IPC starts reading in this process too, and the kernel would give
 * some of the viewer's RTCP and STUN to us instead of the server: stop reading at once (before this
 * process polls again). Node has no public call for it; the handle's own recvStop is it.
 */
function stopReading(socket: dgram.Socket): void {
  const state = Object.getOwnPropertySymbols(socket)
    .filter((s) => s.description === "state symbol")
    .map((s) => (socket as unknown as Record<symbol, { handle?: { recvStop?: () => number } }>)[s])[0];
  const stop = state?.handle?.recvStop;
  if (typeof stop !== "function") throw new Error("cannot stop reading a passed socket in this Node version");
  stop.call(state!.handle);
}

function closeSocket(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}

/**
 * Takes a socket passed for output `id`: stops it reading and keeps its errors from ending the
 * process. False, with the socket closed and the server told, when that cannot be done.
 */
function adopt(id: number, socket: dgram.Socket | undefined): socket is dgram.Socket {
  try {
    if (!socket) throw new Error("no socket handle came with the output");
    stopReading(socket);
    socket.on("error", () => undefined);
    return true;
  } catch (err) {
    if (socket) closeSocket(socket);
    report({ type: "failed", id, message: err instanceof Error ? err.message : String(err) });
    return false;
  }
}

function add(m: AddOutput, socket: dgram.Socket | undefined): void {
  if (!adopt(m.id, socket)) return;
  try {
    let entry = histories.get(m.track);
    if (!entry) {
      entry = { history: new PacketHistory(m.kind), users: 0 };
      histories.set(m.track, entry);
    }
    entry.users++;
    const target: Target = { socket, address: m.address, port: m.port };
    const stream = nativeOutput(m, entry, socket) ?? jsOutput(m, entry.history, target);
    outputs.set(m.id, { track: m.track, stream, target });
  } catch (err) {
    closeSocket(socket);
    report({ type: "failed", id: m.id, message: err instanceof Error ? err.message : String(err) });
  }
}

function jsOutput(m: AddOutput, history: PacketHistory, target: Target): OutboundStream {
  const protector = new SrtpProtector(m.keys);
  return new OutboundStream(m.identity, history, m.extensionIds, protector.protect.bind(protector), (data) => {
    sent++;
    target.socket.send(data, target.port, target.address);
  });
}

/** The output through the addon, or undefined where it cannot take it (then JavaScript sends). */
function nativeOutput(m: AddOutput, entry: { history: PacketHistory; native?: NativeTrack }, socket: dgram.Socket): NativeOutput | undefined {
  const addon = nativeForwarding.addon;
  const fd = socketFd(socket);
  if (!addon || fd === undefined) return undefined;
  try {
    entry.native = NativeTrack.of(addon, entry.history);
    return entry.native.output(m.identity, m.keys, m.extensionIds, { fd, address: m.address, port: m.port });
  } catch {
    return undefined;
  }
}

function remove(id: number): void {
  const output = outputs.get(id);
  if (!output) return;
  outputs.delete(id);
  output.stream.close();
  closeSocket(output.target.socket);
  const entry = histories.get(output.track);
  if (entry && --entry.users === 0) {
    entry.history.close();
    histories.delete(output.track);
  }
}

process.on("message", (message: ToWorker, handle: unknown) => {
  switch (message.type) {
    case "add":
      add(message, handle as dgram.Socket | undefined);
      return;
    case "path": {
      const output = outputs.get(message.id);
      const socket = handle as dgram.Socket | undefined;
      if (!output) {
        if (socket) closeSocket(socket);
        return;
      }
      if (!adopt(message.id, socket)) return;
      if (output.stream instanceof NativeOutput) {
        const fd = socketFd(socket);
        try {
          if (fd === undefined) throw new Error("the new socket shows no descriptor");
          output.stream.setTarget({ fd, address: message.address, port: message.port });
        } catch (err) {
          closeSocket(socket);
          report({ type: "failed", id: message.id, message: err instanceof Error ? err.message : String(err) });
          return;
        }
      }
      // Changed in place: the output's send function holds this object.
      const target = output.target;
      closeSocket(target.socket);
      target.socket = socket;
      target.address = message.address;
      target.port = message.port;
      return;
    }
    case "remove":
      remove(message.id);
      return;
    case "counters":
      report({ type: "counters", sent: sent + nativeStats.sent, outputs: outputs.size });
      return;
    case "batch":
      for (const item of message.items) {
        if (isNack(item)) {
          const output = outputs.get(item.id);
          if (output) for (const seq of item.sequenceNumbers) output.stream.resend(seq);
          continue;
        }
        const payload = item.payload;
        const entry = histories.get(item.track);
        entry?.history.putStored(item.sequenceNumber, item.timestamp, item.marker, payload, item.extensions);
        for (const id of item.to) outputs.get(id)?.stream.write(item.sequenceNumber, item.timestamp, item.marker, payload);
        entry?.native?.flush();
      }
      return;
  }
});

// The server going away (even killed) closes the IPC channel: nothing is left to send for.
process.on("disconnect", () => process.exit(0));

// Whether this Node lets a passed socket stop reading, tried on a socket of our own before any
// viewer is given to us: if not, the server sends from its own process instead.
const probe = dgram.createSocket("udp4");
probe.bind(0, "127.0.0.1", () => {
  try {
    stopReading(probe);
    report({ type: "ready", ok: true });
  } catch (err) {
    report({ type: "ready", ok: false, message: err instanceof Error ? err.message : String(err) });
  } finally {
    probe.close();
  }
});
