// The WHEP event messages in the draft's shapes, and the Link that announces them.
import { describe, expect, it } from "vitest";
import { eventsLink, formatEvent } from "../../src/http/events.js";

describe("WHEP server-sent events", () => {
  it("writes each event as id, event and one line of JSON data", () => {
    expect(formatEvent(1, { type: "active" })).toBe("id: 1\nevent: active\ndata: {}\n\n");
    expect(formatEvent(2, { type: "inactive" })).toBe("id: 2\nevent: inactive\ndata: {}\n\n");
    expect(formatEvent(3, { type: "viewercount", viewercount: 3 })).toBe('id: 3\nevent: viewercount\ndata: {"viewercount":3}\n\n');
    expect(formatEvent(4, { type: "reconnect", session: "abc" })).toBe("id: 4\nevent: reconnect\ndata: {}\n\n");
  });

  it("keys layers by the viewer's m-line, an inactive layer at bitrate 0", () => {
    const text = formatEvent(
      5,
      {
        type: "layers",
        layers: [
          { rid: "h", ssrc: 1, bitrate: 2_000_000, active: false, forwarded: false },
          { rid: "l", ssrc: 2, bitrate: 300_000, active: true, forwarded: true },
        ],
      },
      1,
    );
    const data = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as Record<string, unknown>;
    expect(data).toEqual({
      "1": [
        { rid: "h", bitrate: 0, active: false, forwarded: false },
        { rid: "l", bitrate: 300_000, active: true, forwarded: true },
      ],
    });
  });

  it("announces the session's entry point with the events it sends", () => {
    expect(eventsLink("s1")).toBe(
      '</api/whep/session/s1/sse>; rel="urn:ietf:params:whep:ext:core:server-sent-events"; events="active,inactive,layers,reconnect,viewercount"',
    );
  });
});
