//! SSIMULACRA2 streamed in rows: the score of `ssim2::Reference::score` (the same operations in
//! the same order, less the channels whose weights are negligible: within 0.01 points), but both
//! images are read once, row by row, and each scale keeps only the nine rows its blur reaches.
//!
//! Why: the whole-plane form writes and reads back some thirty full-size f32 planes per score,
//! so it waits on memory more than it computes (about 100 ms per megapixel on this project's
//! machine for the source's half and the try's). Row by row, every plane a pixel touches is in
//! the cache, and the memory used is a few dozen rows per scale instead of ~100 bytes per pixel:
//! a 60 MP photo is scored in a few megabytes. The source's half of the metric is recomputed at
//! every score; that costs less than storing it, and a photo is scored once or twice.

use crate::ssim2::{features_of, final_score, weight, NUM_SCALES};
use crate::ssim2_kernels::{gauss, positive_xyb_row, vectorised, Maps};

/// A channel of a scale whose six weights are all under this is not computed: its features
/// count for nothing the score can show. Of the 108 weights, 29 are between 1e-4 and 3e-3 (the
/// crate's fitted values) and the rest 0 or over 0.28. Skipped at full resolution: X and B
/// (weights 0.0007, 0.0008, 0.0009), leaving Y alone, which is two thirds of the work of the
/// largest scale. The features are at most about 1, so a skipped channel could move the
/// weighted sum by its weights' total at most: under 0.005 over all skipped channels, about
/// 0.04 points of score, and in practice under 0.01 (`ssim2.rs` tests against the whole form).
const NEGLIGIBLE_WEIGHT: f64 = 0.01;

/// 8-bit sRGB pixels row after row, RGB (3 channels) or RGBA (4).
#[derive(Clone, Copy)]
pub(crate) struct Srgb<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) channels: usize,
}

/// Rows one output row of the blur depends on.
const WINDOW: usize = 2 * gauss::R + 1;

/// Blurred quantities per channel, in this order: mu1, mu2, sigma11, sigma22, sigma12 (before
/// the means are taken off).
pub(crate) const BLURRED: usize = 5;

/// Three planes' rows: linear RGB or XYB.
type Rows3 = [Vec<f32>; 3];

/// One scale of the metric, fed a row of both images at a time.
struct Scale {
    /// The channels computed (see [`NEGLIGIBLE_WEIGHT`]).
    channels: [bool; 3],
    width: usize,
    height: usize,
    pushed: usize,
    emitted: usize,
    /// XYB rows of the source [0] and the distorted image [1], a ring of WINDOW rows, each
    /// with `gauss::R` zeros on both sides (the horizontal blur reads them in place).
    xyb: [Vec<Rows3>; 2],
    /// Horizontally blurred rows, a ring of WINDOW rows: [slot][channel][quantity].
    hblur: Vec<[[Vec<f32>; BLURRED]; 3]>,
    /// The error maps' six sums per channel (see `Maps::row_sums`).
    sums: [[f64; 6]; 3],
    /// A product of two XYB rows, with the same zeros on both sides.
    padded: Vec<f32>,
    vblur: [Vec<f32>; BLURRED],
    /// The last even linear row of both images, waiting for its odd partner to be downscaled.
    pending: [Rows3; 2],
    /// The downscaled row handed to the next scale.
    down: [Rows3; 2],
}

fn rows3(width: usize) -> Rows3 {
    std::array::from_fn(|_| vec![0f32; width])
}

impl Scale {
    fn new(width: usize, height: usize, channels: [bool; 3]) -> Scale {
        let half = width.div_ceil(2);
        Scale {
            channels,
            width,
            height,
            pushed: 0,
            emitted: 0,
            xyb: std::array::from_fn(|_| {
                (0..WINDOW).map(|_| rows3(width + 2 * gauss::R)).collect()
            }),
            hblur: (0..WINDOW)
                .map(|_| std::array::from_fn(|_| std::array::from_fn(|_| vec![0f32; width])))
                .collect(),
            sums: [[0.0; 6]; 3],
            padded: vec![0f32; width + 2 * gauss::R],
            vblur: std::array::from_fn(|_| vec![0f32; width]),
            pending: [rows3(width), rows3(width)],
            down: [rows3(half), rows3(half)],
        }
    }

    /// Takes the next linear row of both images; emits the row the blur can now finish.
    fn push(&mut self, linear: [[&[f32]; 3]; 2]) {
        let slot = self.pushed % WINDOW;
        let width = self.width;
        let Scale {
            channels,
            xyb,
            hblur,
            padded,
            ..
        } = self;
        let only_y = *channels == [false, true, false];
        let inner = gauss::R..gauss::R + width;
        for (image, rows) in linear.iter().zip(xyb.iter_mut()) {
            let out = rows[slot].each_mut().map(|r| &mut r[inner.clone()]);
            positive_xyb_row(*image, out, only_y);
        }
        for c in (0..3).filter(|&c| channels[c]) {
            blurred_quantities(
                &xyb[0][slot][c],
                &xyb[1][slot][c],
                padded,
                &mut hblur[slot][c],
            );
        }
        self.pushed += 1;
        if self.pushed > gauss::R {
            self.emit(self.pushed - 1 - gauss::R);
        }
    }

    /// Blurs row `y` vertically (zero outside the image) and adds its error maps to the sums.
    fn emit(&mut self, y: usize) {
        debug_assert_eq!(y, self.emitted);
        let height = self.height;
        let slot = y % WINDOW;
        for c in (0..3).filter(|&c| self.channels[c]) {
            for (q, out) in self.vblur.iter_mut().enumerate() {
                let hblur = &self.hblur;
                gauss::vertical_row(out, y, height, |r| &hblur[r % WINDOW][c][q]);
            }
            let [mu1, mu2, s11, s22, s12] = &self.vblur;
            let maps = Maps {
                mu1,
                mu2,
                s11,
                s22,
                s12,
                img1: &self.xyb[0][slot][c][gauss::R..gauss::R + self.width],
                img2: &self.xyb[1][slot][c][gauss::R..gauss::R + self.width],
            };
            for (s, r) in self.sums[c].iter_mut().zip(maps.row_sums()) {
                *s += f64::from(r);
            }
        }
        self.emitted += 1;
    }

    /// Emits the rows left once every row has been pushed.
    fn finish(&mut self) {
        debug_assert_eq!(self.pushed, self.height);
        for y in self.emitted..self.height {
            self.emit(y);
        }
    }

    /// Keeps an even row; on its odd partner (or at an odd height's last row, which pairs with
    /// itself, as the whole-plane downscale repeats the edge) makes the next scale's row: each
    /// pixel the mean of a 2x2 block, in linear light.
    fn downscale(&mut self, linear: [[&[f32]; 3]; 2]) -> Option<[[&[f32]; 3]; 2]> {
        let y = self.pushed - 1;
        let last = y + 1 == self.height;
        if y.is_multiple_of(2) {
            for (pending, image) in self.pending.iter_mut().zip(linear) {
                for (p, row) in pending.iter_mut().zip(image) {
                    p.copy_from_slice(row);
                }
            }
            if !last {
                return None;
            }
        }
        let w = self.width;
        for ((down, pending), image) in self.down.iter_mut().zip(&self.pending).zip(linear) {
            for ((out, r0), r1) in down.iter_mut().zip(pending).zip(image) {
                for (ox, o) in out.iter_mut().enumerate() {
                    let x0 = 2 * ox;
                    let x1 = (x0 + 1).min(w - 1);
                    *o = (r0[x0] + r0[x1] + r1[x0] + r1[x1]) * 0.25;
                }
            }
        }
        Some(
            self.down
                .each_ref()
                .map(|d| d.each_ref().map(Vec::as_slice)),
        )
    }
}

/// The five horizontally blurred quantities of one channel's row (see [`BLURRED`]) from the
/// padded XYB rows `p1` (source) and `p2` (distorted), the products made in `padded`.
fn blurred_quantities(p1: &[f32], p2: &[f32], padded: &mut [f32], out: &mut [Vec<f32>; BLURRED]) {
    vectorised!(blurred_quantities_scalar(p1, p2, padded, out))
}

#[inline(always)]
pub(crate) fn blurred_quantities_scalar(
    p1: &[f32],
    p2: &[f32],
    padded: &mut [f32],
    out: &mut [Vec<f32>; BLURRED],
) {
    let [mu1, mu2, s11, s22, s12] = out;
    gauss::horizontal_row_scalar(p1, mu1);
    gauss::horizontal_row_scalar(p2, mu2);
    // The padding is zero in both rows, so it stays zero in their product.
    for (pair, o) in [(p1, p1), (p2, p2), (p1, p2)]
        .into_iter()
        .zip([s11, s22, s12])
    {
        for ((v, a), b) in padded.iter_mut().zip(pair.0).zip(pair.1) {
            *v = a * b;
        }
        gauss::horizontal_row_scalar(padded, o);
    }
}

/// Feeds a row of both images to the first scale and what it downscales to the next ones.
fn push_chain(scales: &mut [Scale], linear: [[&[f32]; 3]; 2]) {
    let Some((head, rest)) = scales.split_first_mut() else {
        return;
    };
    head.push(linear);
    if rest.is_empty() {
        return;
    }
    if let Some(down) = head.downscale(linear) {
        push_chain(rest, down);
    }
}

/// Linear light of one row of 8-bit sRGB, alpha composited over mid grey.
fn linear_row(row: &[u8], channels: usize, lut: &[f32; 256], out: &mut Rows3) {
    let grey = lut[128];
    let [r, g, b] = out;
    for (i, px) in row.chunks_exact(channels).enumerate() {
        if channels == 4 {
            let a = f32::from(px[3]) / 255.0;
            r[i] = lut[usize::from(px[0])] * a + grey * (1.0 - a);
            g[i] = lut[usize::from(px[1])] * a + grey * (1.0 - a);
            b[i] = lut[usize::from(px[2])] * a + grey * (1.0 - a);
        } else {
            r[i] = lut[usize::from(px[0])];
            g[i] = lut[usize::from(px[1])];
            b[i] = lut[usize::from(px[2])];
        }
    }
}

/// SSIMULACRA2 of `distorted` against `source`, both `width` x `height` 8-bit sRGB. `None` when
/// a side is under 8 pixels, which the metric cannot score.
pub(crate) fn score(
    source: Srgb<'_>,
    distorted: Srgb<'_>,
    width: usize,
    height: usize,
    lut: &[f32; 256],
) -> Option<f64> {
    if width < 8 || height < 8 {
        return None;
    }
    // As the whole-plane form does: a scale is scored when the one before it had 8 pixels a side.
    let mut dims = vec![(width, height)];
    while dims.len() < NUM_SCALES {
        let (w, h) = dims[dims.len() - 1];
        if w < 8 || h < 8 {
            break;
        }
        dims.push((w.div_ceil(2), h.div_ceil(2)));
    }
    let count = dims.len();
    let mut scales: Vec<Scale> = dims
        .iter()
        .enumerate()
        .map(|(s, &(w, h))| {
            let channels = std::array::from_fn(|c| {
                (0..6).any(|k| weight(c, s, count, k) >= NEGLIGIBLE_WEIGHT)
            });
            Scale::new(w, h, channels)
        })
        .collect();
    let mut linear = [rows3(width), rows3(width)];
    for y in 0..height {
        for (image, out) in [source, distorted].iter().zip(linear.iter_mut()) {
            let row = &image.bytes[y * width * image.channels..][..width * image.channels];
            linear_row(row, image.channels, lut, out);
        }
        push_chain(
            &mut scales,
            linear.each_ref().map(|l| l.each_ref().map(Vec::as_slice)),
        );
    }
    let features: Vec<([f64; 6], [f64; 12])> = scales
        .iter_mut()
        .map(|scale| {
            scale.finish();
            let (mut ssim, mut edge) = ([0f64; 6], [0f64; 12]);
            for c in 0..3 {
                let (s, e) = features_of(&scale.sums[c], scale.width * scale.height);
                ssim[2 * c..2 * c + 2].copy_from_slice(&s);
                edge[4 * c..4 * c + 4].copy_from_slice(&e);
            }
            (ssim, edge)
        })
        .collect();
    Some(final_score(&features))
}
