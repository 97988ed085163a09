//! A first guess of the per-photo quality from cheap statistics of the decoded photo, so that the
//! search usually needs one encode and one score instead of two or three.
//!
//! The statistics are read in one pass over the pixels (a few milliseconds per megapixel, against
//! ~95 for one `cwebp` encode): how much fine detail the luma has, how much of the photo is flat,
//! and how much the chroma varies. WebP at a low quality blurs fine detail away and bands smooth
//! areas; SSIMULACRA2 counts both, so detailed and smooth photos need different qualities for the
//! same score. The model's coefficients were fitted by least squares on photos that are not the
//! bench set (see docs/codec.md, "The first guess").

use image::DynamicImage;

use crate::quality::Pixels;

/// The model's coefficients, in the order of [`PhotoStats::terms`]; fitted by
/// `scripts/fit-quality` (see docs/codec.md, "The first guess").
const COEFFICIENTS: [f64; 7] = [70.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];

/// The first guess aims this many quality points above the model's answer: the model's
/// residuals are one-sided in what they cost (a guess under the answer costs a second encode
/// and score, one above it a few percent of bytes, or a step down), so it errs upwards.
const AIM_ABOVE: f64 = 0.0;

/// The WebP quality the model predicts a photo needs for `target` (SSIMULACRA2 plus the check
/// margin), from its statistics and, for a JPEG, the quality it was saved at. Within 30..=95.
pub fn predicted_quality(stats: &PhotoStats, jpeg_quality: Option<f64>, target: f64) -> f32 {
    let terms = stats.terms(jpeg_quality, target);
    let q: f64 = terms.iter().zip(COEFFICIENTS).map(|(t, c)| t * c).sum();
    (q + AIM_ABOVE).clamp(30.0, 95.0).round() as f32
}

/// Statistics of a photo that predict the WebP quality it needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoStats {
    /// Mean absolute difference between neighbouring luma values (0..255 units), right and down,
    /// at full resolution: fine detail.
    pub detail: f64,
    /// The same on the means of 4x4 blocks: structure at a coarser scale.
    pub coarse: f64,
    /// Fraction of 8x8 blocks whose own detail is under 1 level: flat areas, where a low quality
    /// shows bands and blocks.
    pub flat: f64,
    /// Mean absolute difference between neighbouring chroma values (R-G and B-G), right and down.
    pub chroma: f64,
}

impl PhotoStats {
    /// The model's terms: 1, ln detail, ln coarse, flat, ln chroma, JPEG quality - 90 (0 when
    /// unknown), target - 70. `scripts/fit-quality` fits on the same terms.
    pub fn terms(&self, jpeg_quality: Option<f64>, target: f64) -> [f64; 7] {
        [
            1.0,
            (self.detail + 0.05).ln(),
            (self.coarse + 0.05).ln(),
            self.flat,
            (self.chroma + 0.05).ln(),
            jpeg_quality.map_or(0.0, |q| q - 90.0),
            target - 70.0,
        ]
    }

    /// One pass over half the rows of the photo's 8-bit RGB(A) pixels.
    pub fn of(image: &DynamicImage) -> PhotoStats {
        let pixels = Pixels::of(image);
        stats(&pixels.bytes, pixels.channels, pixels.width)
    }
}

fn stats(bytes: &[u8], channels: usize, width: usize) -> PhotoStats {
    let height = bytes.len() / (channels * width).max(1);
    if width < 2 || height < 2 {
        return PhotoStats {
            detail: 0.0,
            coarse: 0.0,
            flat: 1.0,
            chroma: 0.0,
        };
    }
    // Luma and chroma of one row, in 0..255 units (integers scaled by 1/256 at the end).
    let planes_of = |y: usize, luma: &mut Vec<i32>, cr: &mut Vec<i32>, cb: &mut Vec<i32>| {
        luma.clear();
        cr.clear();
        cb.clear();
        for px in bytes[y * width * channels..][..width * channels].chunks_exact(channels) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            luma.push(77 * r + 150 * g + 29 * b);
            cr.push(r - g);
            cb.push(b - g);
        }
    };
    let (bw, bh) = (width.div_ceil(8), height.div_ceil(8));
    let mut block_detail = vec![0u64; bw * bh];
    let (cw, ch) = (width / 4, height / 4);
    let mut coarse_sums = vec![0i64; cw.max(1) * ch.max(1)];
    let (mut detail, mut chroma) = (0u64, 0u64);
    let (mut luma, mut cr, mut cb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut prev_luma, mut prev_cr, mut prev_cb) = (Vec::new(), Vec::new(), Vec::new());
    let mut pairs = 0usize;
    for y in 0..height {
        // Half the rows, in pairs (4k, 4k+1): the statistics of a photo, at half the cost.
        if y % 4 >= 2 {
            continue;
        }
        planes_of(y, &mut luma, &mut cr, &mut cb);
        let brow = &mut block_detail[(y / 8) * bw..][..bw];
        let down = y % 4 == 1;
        for x in 0..width {
            let mut d = 0u64;
            let mut c = 0u64;
            if x + 1 < width {
                d += u64::from(luma[x].abs_diff(luma[x + 1]));
                c += u64::from(cr[x].abs_diff(cr[x + 1])) + u64::from(cb[x].abs_diff(cb[x + 1]));
                pairs += 1;
            }
            if down {
                d += u64::from(luma[x].abs_diff(prev_luma[x]));
                c += u64::from(cr[x].abs_diff(prev_cr[x])) + u64::from(cb[x].abs_diff(prev_cb[x]));
                pairs += 1;
            }
            detail += d;
            chroma += c;
            brow[x / 8] += d;
        }
        if y / 4 < ch {
            let crow = &mut coarse_sums[(y / 4) * cw..][..cw];
            for (x, l) in luma.iter().take(4 * cw).enumerate() {
                crow[x / 4] += i64::from(*l);
            }
        }
        std::mem::swap(&mut luma, &mut prev_luma);
        std::mem::swap(&mut cr, &mut prev_cr);
        std::mem::swap(&mut cb, &mut prev_cb);
    }
    let pairs = pairs.max(1) as f64;
    let mut coarse = 0f64;
    if cw >= 2 && ch >= 2 {
        let at = |x: usize, y: usize| coarse_sums[y * cw + x] as f64 / (8.0 * 256.0);
        let mut n = 0usize;
        for y in 0..ch {
            for x in 0..cw {
                if x + 1 < cw {
                    coarse += (at(x, y) - at(x + 1, y)).abs();
                    n += 1;
                }
                if y + 1 < ch {
                    coarse += (at(x, y) - at(x, y + 1)).abs();
                    n += 1;
                }
            }
        }
        coarse /= n as f64;
    }
    // A block's detail per pixel pair (two per pixel, on the half of its rows read), in luma
    // levels.
    let flat_blocks = block_detail
        .iter()
        .filter(|&&d| (d as f64 / (2.0 * 32.0 * 256.0)) < 1.0)
        .count();
    PhotoStats {
        detail: detail as f64 / 256.0 / pairs,
        coarse,
        flat: flat_blocks as f64 / block_detail.len() as f64,
        chroma: chroma as f64 / pairs,
    }
}

/// The quality a JPEG was saved at, estimated from its luma quantisation table against the
/// IJG (libjpeg) table that `-quality Q` scales: 50 is the table itself, 100 all ones. `None`
/// for anything else than a JPEG with such a table.
pub fn jpeg_quality(input: &[u8]) -> Option<f64> {
    // The IJG luma table in zigzag order, as DQT segments store it.
    const BASE: [u16; 64] = [
        16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35,
        37, 29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80,
        109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
    ];
    if input.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    while at + 4 <= input.len() {
        if input[at] != 0xFF {
            return None;
        }
        let marker = input[at + 1];
        let len = usize::from(u16::from_be_bytes([input[at + 2], input[at + 3]]));
        let segment = input.get(at + 4..at + 2 + len)?;
        if marker == 0xDB {
            let mut s = segment;
            while !s.is_empty() {
                let (precision, id) = (s[0] >> 4, s[0] & 0x0F);
                let size = if precision == 0 { 64 } else { 128 };
                let table = s.get(1..1 + size)?;
                if id == 0 {
                    let value = |i: usize| {
                        if precision == 0 {
                            u32::from(table[i])
                        } else {
                            u32::from(u16::from_be_bytes([table[2 * i], table[2 * i + 1]]))
                        }
                    };
                    let sum: u32 = (0..64).map(value).sum();
                    let base: u32 = BASE.iter().map(|&b| u32::from(b)).sum();
                    let scale = 100.0 * f64::from(sum) / f64::from(base);
                    let quality = if scale <= 100.0 {
                        (200.0 - scale) / 2.0
                    } else {
                        5000.0 / scale
                    };
                    return Some(quality.clamp(1.0, 100.0));
                }
                s = &s[1 + size..];
            }
        }
        // Start of scan: the tables come before it.
        if marker == 0xDA {
            return None;
        }
        at += 2 + len;
    }
    None
}
