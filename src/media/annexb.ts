/** The 4-byte start code written before every NAL unit (H.264 Annex B). */
export const START_CODE = Buffer.from([0, 0, 0, 1]);
/** The 3-byte form a reader must also accept. */
export const START_CODE_3 = Buffer.from([0, 0, 1]);

/** Joins NAL units (without start codes) into one Annex B access unit. */
export function toAnnexB(nals: readonly Uint8Array[]): Buffer {
  const parts: Uint8Array[] = [];
  for (const nal of nals) parts.push(START_CODE, nal);
  return Buffer.concat(parts);
}

/**
 * Writer for a raw .h264 elementary stream. Annex B needs no file header or index, so the file
 * is just the access units one after another; the class exists so that every recording format
 * has the same begin/frame/end shape for the caller.
 */
export class AnnexBWriter {
  private frames = 0;

  get frameCount(): number {
    return this.frames;
  }

  fileHeader(): Buffer {
    return Buffer.alloc(0);
  }

  frame(accessUnit: Uint8Array): Buffer {
    this.frames++;
    return Buffer.from(accessUnit);
  }
}

/**
 * Splits an Annex B byte stream into NAL units (start codes removed). Accepts 3- and 4-byte start
 * codes; the trailing zero of a 4-byte code is not part of the previous NAL.
 */
export function splitAnnexB(buf: Uint8Array): Buffer[] {
  const nals: Buffer[] = [];
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let start = -1;
  let i = 0;
  while (i + 2 < b.length) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      if (start >= 0) {
        let end = i;
        while (end > start && b[end - 1] === 0) end--;
        nals.push(b.subarray(start, end));
      }
      i += 3;
      start = i;
    } else {
      i++;
    }
  }
  if (start >= 0 && start < b.length) nals.push(b.subarray(start));
  return nals;
}
