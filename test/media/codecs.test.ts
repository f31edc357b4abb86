import { describe, expect, it } from "vitest";
import { canonicalName, mimeTypeOf, playbackContainerOf, TRACK_CONTAINERS } from "../../src/media/codecs.js";

describe("canonicalName", () => {
  it("maps SDP encoding names and MIME types, in any case, to one spelling", () => {
    expect(canonicalName("VP8")).toBe("VP8");
    expect(canonicalName("vp9")).toBe("VP9");
    expect(canonicalName("h264")).toBe("H264");
    expect(canonicalName("video/VP8")).toBe("VP8");
    expect(canonicalName("Video/h264")).toBe("H264");
    expect(canonicalName("AV1")).toBe("AV1");
    expect(canonicalName("AV1X")).toBe("AV1");
    expect(canonicalName("OPUS")).toBe("opus");
    expect(canonicalName("audio/opus")).toBe("opus");
  });

  it("knows nothing else", () => {
    for (const other of ["H265", "video/H265", "rtx", "red", "ulpfec", "PCMU", "", "VP8/90000", "text/VP8"]) {
      expect(canonicalName(other), other).toBeUndefined();
    }
  });
});

describe("what follows from a codec name", () => {
  it("the MIME type werift negotiates", () => {
    expect(mimeTypeOf("video", "h264")).toBe("video/H264");
    expect(mimeTypeOf("video", "AV1X")).toBe("video/AV1");
    expect(mimeTypeOf("audio", "OPUS")).toBe("audio/opus");
    expect(mimeTypeOf("video", "red")).toBe("video/RED");
  });

  it("the track file and the merged playback container", () => {
    expect(TRACK_CONTAINERS.VP8).toEqual({ extension: "ivf", fourcc: "VP80" });
    expect(TRACK_CONTAINERS.VP9).toEqual({ extension: "ivf", fourcc: "VP90" });
    expect(TRACK_CONTAINERS.AV1).toEqual({ extension: "ivf", fourcc: "AV01" });
    expect(TRACK_CONTAINERS.H264.extension).toBe("h264");
    expect(TRACK_CONTAINERS.opus.extension).toBe("ogg");
    expect(playbackContainerOf("H264")).toBe("mp4");
    expect(playbackContainerOf("VP8")).toBe("webm");
    expect(playbackContainerOf(undefined)).toBe("webm");
  });
});
