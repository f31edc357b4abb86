// HTTP for the fuzz suite: paths go out exactly as written (fetch would resolve dot segments and
// re-encode), over a keep-alive agent so tens of thousands of cases do not burn a socket each.
// What node:http refuses to send (control characters in a path or header, code points above
// U+00FF) goes out over a plain TCP socket instead, byte for byte.
import http from "node:http";
import net from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Sent over a plain socket because node:http would not send it. */
  raw: boolean;
}

export interface RawRequest {
  method: string;
  /** Sent as is (UTF-8 bytes when it has code points above U+007F and goes raw). */
  path: string;
  /** Name/value pairs, repeats allowed, sent in order. */
  headers?: [string, string][];
  body?: Buffer | string;
  timeoutMs?: number;
}

export class HttpTarget {
  readonly host = "127.0.0.1";
  readonly port: number;
  private readonly agent: http.Agent;

  constructor(baseUrl: string) {
    this.port = Number(new URL(baseUrl).port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 16 });
  }

  close(): void {
    this.agent.destroy();
  }

  async send(req: RawRequest): Promise<RawResponse> {
    // Over Node's header limit the server answers 431 and closes while the client still writes,
    // and its 431 carries a body even for HEAD (it could not read the method): both read raw.
    const headerBytes = req.path.length + (req.headers ?? []).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
    if (req.method === "HEAD" || headerBytes > 8 * 1024) return this.sendRaw(req);
    let clientRequest: http.ClientRequest;
    try {
      // Headers as a flat list keep repeats and order; node then adds nothing itself (no Host).
      const headers: string[] = ["Host", `${this.host}:${this.port}`];
      for (const [k, v] of req.headers ?? []) headers.push(k, v);
      headers.push("Content-Length", String(req.body === undefined ? 0 : Buffer.byteLength(req.body)));
      clientRequest = http.request({
        host: this.host,
        port: this.port,
        method: req.method,
        path: req.path,
        agent: this.agent,
        headers,
        // The server's own limits decide, not the client's.
        insecureHTTPParser: true,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ERR_UNESCAPED_CHARACTERS" || code === "ERR_INVALID_CHAR" || code === "ERR_INVALID_HTTP_TOKEN" || code === "ERR_HTTP_INVALID_HEADER_VALUE") {
        return this.sendRaw(req);
      }
      throw err;
    }
    return new Promise<RawResponse>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        clientRequest.destroy();
        reject(new Error(`timeout after ${req.timeoutMs ?? 15_000} ms`));
      }, req.timeoutMs ?? 15_000);
      clientRequest.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), raw: false });
        });
        res.on("error", (err) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(err);
        });
      });
      clientRequest.on("error", (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // A kept-alive socket the server had closed (it closes after refusing a request at the
        // parser level without saying Connection: close): the request never reached it, send it
        // again on a connection of its own.
        const code = (err as NodeJS.ErrnoException).code;
        if (clientRequest.reusedSocket && (code === "ECONNRESET" || code === "EPIPE")) resolve(this.sendRaw(req));
        else reject(err);
      });
      // A server answering 413 before reading the body may close while we still write: the
      // response (if any) wins, a write error alone is reported by the "error" handler above.
      if (req.body !== undefined) clientRequest.end(req.body);
      else clientRequest.end();
    });
  }

  /** The request written byte for byte on its own connection (Connection: close); the whole reply read. */
  sendRaw(req: RawRequest): Promise<RawResponse> {
    const body = req.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, "utf8");
    let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n`;
    for (const [k, v] of req.headers ?? []) head += `${k}: ${v}\r\n`;
    if (body.length > 0 || req.method === "POST" || req.method === "PATCH") head += `Content-Length: ${body.length}\r\n`;
    head += "Connection: close\r\n\r\n";
    const bytes = Buffer.concat([Buffer.from(head, "utf8"), body]);
    return new Promise<RawResponse>((resolve, reject) => {
      const socket = net.connect(this.port, this.host);
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const data = Buffer.concat(chunks);
        if (data.length === 0) {
          reject(err ?? new Error("connection closed without a response"));
          return;
        }
        try {
          resolve(parseResponse(data));
        } catch (e) {
          reject(e as Error);
        }
      };
      const timer = setTimeout(() => finish(new Error(`timeout after ${req.timeoutMs ?? 15_000} ms`)), req.timeoutMs ?? 15_000);
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.on("end", () => finish());
      socket.on("close", () => finish());
      socket.on("error", (err) => finish(err));
      socket.write(bytes);
    });
  }
}

function parseResponse(data: Buffer): RawResponse {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`incomplete response: ${JSON.stringify(data.subarray(0, 200).toString("latin1"))}`);
  const lines = data.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string | string[] | undefined> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    const prev = headers[k];
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  let body = data.subarray(end + 4);
  if (
    String(headers["transfer-encoding"] ?? "")
      .toLowerCase()
      .includes("chunked")
  )
    body = dechunk(body);
  return { status: Number(m[1]), headers, body, raw: true };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    const eol = data.indexOf("\r\n", pos);
    if (eol < 0) break;
    const size = parseInt(data.subarray(pos, eol).toString("latin1"), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(data.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}
