// PIL's Image.resize(size, Image.BICUBIC) for 8-bit images, bit-exact (Pillow's ImagingResample as of
// Pillow 9.x/10.x, checked against Debian's Pillow 9.4 by test/image.test.ts).
//
// The algorithm (re-implemented here from its description, not copied):
// - Separable: a horizontal pass, then a vertical pass. The horizontal pass writes an 8-bit image (rounded,
//   clipped), which the vertical pass reads. A pass whose axis keeps its size (and whose box is the whole
//   axis) is skipped; when both are skipped the image is copied.
// - Per output index i on an axis of `inSize` samples resized to `outSize` (box [in0, in1)):
//     scale = (in1 - in0) / outSize; filterscale = max(scale, 1)   (downscaling widens the kernel: antialias)
//     support = 2 * filterscale (bicubic's support is 2)
//     center = in0 + (i + 0.5) * scale
//     xmin = max(0, trunc(center - support + 0.5)); xmax = min(inSize, trunc(center + support + 0.5))
//     w[x] = bicubic((x + xmin - center + 0.5) / filterscale) for x in [0, xmax - xmin), normalised to sum 1,
//   all in double, then converted to fixed point with PRECISION_BITS = 22: trunc(w * 2^22 +- 0.5).
// - A sample is 2^21 (the rounding half) + sum(pixel * w_fixed), clipped: <= 0 -> 0, >= 255.5-ish ->
//   255, else >> 22.
// - The horizontal pass only computes the source rows the vertical pass reads.
// Bicubic with a = -0.5: |x| < 1: ((a + 2)|x| - (a + 3))x^2 + 1; 1 <= |x| < 2: (((|x| - 5)|x| + 8)|x| - 4)a.

const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const CLIP_HI = 1 << (PRECISION_BITS + 8); // sums at or above 256 << 22 clip to 255, sums <= 0 to 0
const BICUBIC_SUPPORT = 2.0;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/** fixed-point coefficients of one axis: for output i, taps k[i*ksize .. +count) start at source `start` */
export interface AxisCoefficients {
  ksize: number;
  /** bounds[2i] = first source index, bounds[2i+1] = number of taps */
  bounds: Int32Array;
  /** fixed-point weights (PRECISION_BITS), ksize per output index */
  kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for BICUBIC on one axis (box [in0, in1)). */
export function axisCoefficients(inSize: number, outSize: number, in0 = 0, in1 = inSize): AxisCoefficients {
  // Pillow keeps the box as C floats; integer boxes are exact in float32, so doubles give the same values
  const f0 = Math.fround(in0);
  const f1 = Math.fround(in1);
  const scale = Math.fround(f1 - f0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = f0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x]! / ww : w[x]!;
      kk[base + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= CLIP_HI) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS; // 0 < v < 2^30: a 32-bit shift is exact
}

/** An interleaved 8-bit image: `channels` bytes per pixel, rows without padding. */
export interface Image8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** The part of the resized image to compute (output coordinates); default the whole image. */
export interface OutputWindow {
  left: number;
  top: number;
  width: number;
  height: number;
}

function checkImage(img: Image8): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) {
    throw new RangeError(`channels must be 1..4, got ${channels}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
    throw new RangeError(`image data must be a Uint8Array of ${width * height * channels} bytes`);
  }
}

/**
 * PIL's `im.resize((outWidth, outHeight), Image.BICUBIC)` on an 8-bit image (any of 1..4 interleaved
 * channels, each resampled on its own like Pillow's L/RGB/RGBX), bit-exact. With `window`, only that part
 * of the resized image is computed and returned (the same pixels as cropping the full result).
 */
export function resizeBicubic(img: Image8, outWidth: number, outHeight: number, window?: OutputWindow): Image8 {
  checkImage(img);
  if (!Number.isInteger(outWidth) || !Number.isInteger(outHeight) || outWidth < 1 || outHeight < 1) {
    throw new RangeError(`output size must be positive integers, got ${outWidth}x${outHeight}`);
  }
  const win = window ?? { left: 0, top: 0, width: outWidth, height: outHeight };
  if (
    !Number.isInteger(win.left) || !Number.isInteger(win.top) || !Number.isInteger(win.width) ||
    !Number.isInteger(win.height) || win.left < 0 || win.top < 0 || win.width < 1 || win.height < 1 ||
    win.left + win.width > outWidth || win.top + win.height > outHeight
  ) {
    throw new RangeError(`window ${JSON.stringify(win)} is not inside ${outWidth}x${outHeight}`);
  }
  const { width: inW, height: inH, channels: nc } = img;
  const needH = outWidth !== inW;
  const needV = outHeight !== inH;

  // horizontal pass: columns win.left.., rows [rowFirst, rowLast) of the source (those the vertical pass reads)
  let cur: Image8 = img;
  let curX0 = 0; // column of `cur` that holds output column win.left (when no horizontal pass: the source)
  let curY0 = 0; // source row of cur's row 0
  let vert: AxisCoefficients | undefined;
  let rowFirst = win.top;
  let rowLast = win.top + win.height;
  if (needV) {
    vert = axisCoefficients(inH, outHeight);
    rowFirst = vert.bounds[win.top * 2]!;
    const last = win.top + win.height - 1;
    rowLast = vert.bounds[last * 2]! + vert.bounds[last * 2 + 1]!;
    // the bounds are monotone, so this loop only confirms the span [first row's start, last row's end)
    for (let yy = win.top; yy <= last; yy++) {
      rowFirst = Math.min(rowFirst, vert.bounds[yy * 2]!);
      rowLast = Math.max(rowLast, vert.bounds[yy * 2]! + vert.bounds[yy * 2 + 1]!);
    }
  }
  if (needH) {
    const hc = axisCoefficients(inW, outWidth);
    const outW = win.width;
    const rows = rowLast - rowFirst;
    const out = new Uint8Array(outW * rows * nc);
    const src = img.data;
    const { ksize, bounds, kk } = hc;
    const acc = new Float64Array(nc);
    for (let y = 0; y < rows; y++) {
      const rowBase = (y + rowFirst) * inW * nc;
      let o = y * outW * nc;
      for (let xx = win.left; xx < win.left + outW; xx++) {
        const xmin = bounds[xx * 2]!;
        const n = bounds[xx * 2 + 1]!;
        const kb = xx * ksize;
        if (nc === 3) {
          let s0 = HALF, s1 = HALF, s2 = HALF;
          let p = rowBase + xmin * 3;
          for (let x = 0; x < n; x++, p += 3) {
            const k = kk[kb + x]!;
            s0 += src[p]! * k;
            s1 += src[p + 1]! * k;
            s2 += src[p + 2]! * k;
          }
          out[o++] = clip8(s0);
          out[o++] = clip8(s1);
          out[o++] = clip8(s2);
        } else {
          acc.fill(HALF);
          let p = rowBase + xmin * nc;
          for (let x = 0; x < n; x++, p += nc) {
            const k = kk[kb + x]!;
            for (let c = 0; c < nc; c++) acc[c] = acc[c]! + src[p + c]! * k;
          }
          for (let c = 0; c < nc; c++) out[o++] = clip8(acc[c]!);
        }
      }
    }
    cur = { data: out, width: outW, height: rows, channels: nc };
    curX0 = 0;
    curY0 = rowFirst;
  } else {
    curX0 = win.left; // same width: output column = source column
  }

  if (!needV) {
    // rows are taken as they are (output row = source row); crop the window out of `cur`
    const outW = win.width;
    const out = new Uint8Array(outW * win.height * nc);
    for (let y = 0; y < win.height; y++) {
      const from = ((win.top + y - curY0) * cur.width + curX0) * nc;
      out.set(cur.data.subarray(from, from + outW * nc), y * outW * nc);
    }
    return { data: out, width: outW, height: win.height, channels: nc };
  }

  // vertical pass over the window
  const { ksize, bounds, kk } = vert!;
  const outW = win.width;
  const out = new Uint8Array(outW * win.height * nc);
  const src = cur.data;
  const stride = cur.width * nc;
  const rowLen = outW * nc;
  const acc = new Float64Array(rowLen);
  for (let yy = win.top; yy < win.top + win.height; yy++) {
    const ymin = bounds[yy * 2]! - curY0;
    const n = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const k = kk[kb + y]!;
      const base = (ymin + y) * stride + curX0 * nc;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + src[base + i]! * k;
    }
    const o = (yy - win.top) * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]!);
  }
  return { data: out, width: outW, height: win.height, channels: nc };
}
