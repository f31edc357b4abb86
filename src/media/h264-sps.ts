import { BitReader, BitstreamError } from "./bits.js";

export interface H264Sps {
  profileIdc: number;
  /** constraint_set0..5 flags and the reserved bits, as the byte after profile_idc. */
  constraintFlags: number;
  levelIdc: number;
  spsId: number;
  chromaFormatIdc: number;
  bitDepthLuma: number;
  bitDepthChroma: number;
  frameMbsOnly: boolean;
  /** Decoded picture size after frame cropping. */
  width: number;
  height: number;
}

/** Profiles whose SPS carries chroma_format_idc, bit depths and scaling lists (H.264 §7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Removes emulation-prevention bytes: 00 00 03 → 00 00 (H.264 §7.4.1). */
export function unescapeRbsp(nal: Uint8Array): Uint8Array {
  let zeros = 0;
  let out: number[] | undefined;
  for (let i = 0; i < nal.length; i++) {
    const b = nal[i];
    if (zeros >= 2 && b === 0x03) {
      out ??= Array.from(nal.subarray(0, i));
      zeros = 0;
      continue;
    }
    zeros = b === 0 ? zeros + 1 : 0;
    out?.push(b);
  }
  return out ? Uint8Array.from(out) : nal;
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/**
 * Parses a sequence parameter set NAL unit (with its 1-byte NAL header) far enough to know the
 * picture size. Undefined when it is not an SPS or is truncated.
 */
export function parseH264Sps(nal: Uint8Array): H264Sps | undefined {
  if (nal.length < 4 || (nal[0] & 0x1f) !== 7) return undefined;
  try {
    const r = new BitReader(unescapeRbsp(nal.subarray(1)));
    const profileIdc = r.u(8);
    const constraintFlags = r.u(8);
    const levelIdc = r.u(8);
    const spsId = r.ue();
    let chromaFormatIdc = 1;
    let separateColourPlane = false;
    let bitDepthLuma = 8;
    let bitDepthChroma = 8;
    if (HIGH_PROFILES.has(profileIdc)) {
      chromaFormatIdc = r.ue();
      if (chromaFormatIdc === 3) separateColourPlane = r.flag();
      bitDepthLuma = r.ue() + 8;
      bitDepthChroma = r.ue() + 8;
      r.u(1); // qpprime_y_zero_transform_bypass_flag
      if (r.flag()) {
        // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 (or 6 for 4:4:4) 8x8 lists.
        const lists = chromaFormatIdc !== 3 ? 8 : 12;
        for (let i = 0; i < lists; i++) {
          if (r.flag()) skipScalingList(r, i < 6 ? 16 : 64);
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) {
      r.ue(); // log2_max_pic_order_cnt_lsb_minus4
    } else if (pocType === 1) {
      r.u(1); // delta_pic_order_always_zero_flag
      r.se(); // offset_for_non_ref_pic
      r.se(); // offset_for_top_to_bottom_field
      const n = r.ue();
      for (let i = 0; i < n; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.u(1); // gaps_in_frame_num_value_allowed_flag
    const widthMbs = r.ue() + 1;
    const heightMapUnits = r.ue() + 1;
    const frameMbsOnly = r.flag();
    if (!frameMbsOnly) r.u(1); // mb_adaptive_frame_field_flag
    r.u(1); // direct_8x8_inference_flag
    let cropLeft = 0;
    let cropRight = 0;
    let cropTop = 0;
    let cropBottom = 0;
    if (r.flag()) {
      cropLeft = r.ue();
      cropRight = r.ue();
      cropTop = r.ue();
      cropBottom = r.ue();
    }
    // Crop offsets count in chroma samples (H.264 eq. 7-19 .. 7-22).
    const chromaArrayType = separateColourPlane ? 0 : chromaFormatIdc;
    const fieldFactor = frameMbsOnly ? 1 : 2;
    const cropUnitX = chromaArrayType === 0 ? 1 : chromaArrayType === 3 ? 1 : 2;
    const cropUnitY = (chromaArrayType === 1 ? 2 : 1) * fieldFactor;
    return {
      profileIdc,
      constraintFlags,
      levelIdc,
      spsId,
      chromaFormatIdc,
      bitDepthLuma,
      bitDepthChroma,
      frameMbsOnly,
      width: widthMbs * 16 - cropUnitX * (cropLeft + cropRight),
      height: heightMapUnits * 16 * fieldFactor - cropUnitY * (cropTop + cropBottom),
    };
  } catch (e) {
    if (e instanceof BitstreamError) return undefined;
    throw e;
  }
}
