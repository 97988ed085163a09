//! SSIMULACRA2, the same metric as the `ssimulacra2` crate (and libjxl's tool), computed in a
//! form that is cheaper for the per-photo quality: planar f32 images, no fused multiply-adds
//! (without the `fma` target feature the crate's `mul_add` calls a software routine for every
//! one), a vectorisable cube root, and the source's half of the work (its XYB planes, their
//! blurred means and variances) computed once per photo and reused by every score.
//!
//! Profile of the crate scoring a 2.2 MP photo whole (perf, release codegen): 30% in its
//! software `fmaf`, 19% in `cbrtf`, 35% in the blur. Scores agree with the crate's within 0.5
//! points (`crates/codec/tests/ssim2.rs` on real photos; docs/codec.md).
//!
//! The constants (opsin absorbance, the recursive Gaussian of sigma 1.5, the 108 weights and the
//! final polynomial) are the crate's (BSD-2-Clause), which are libjxl's.

pub(crate) use crate::ssim2_kernels::{gauss, positive_xyb_row, Maps};

/// Downscaling steps of the metric: scales 1:1 to 1:32.
pub(crate) const NUM_SCALES: usize = 6;

/// A planar three-channel f32 image.
#[derive(Clone)]
pub(crate) struct Image3 {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) planes: [Vec<f32>; 3],
}

impl Image3 {
    /// Linear-light planes of a rectangle of 8-bit sRGB pixels (RGB or RGBA, row after row,
    /// `stride` pixels a row), alpha composited over mid grey like the crate's callers do.
    pub(crate) fn linear_from_srgb(
        bytes: &[u8],
        channels: usize,
        stride: usize,
        (x0, y0, w, h): (usize, usize, usize, usize),
        lut: &[f32; 256],
    ) -> Image3 {
        let grey = lut[128];
        let mut planes = [
            Vec::with_capacity(w * h),
            Vec::with_capacity(w * h),
            Vec::with_capacity(w * h),
        ];
        for y in y0..y0 + h {
            let row = &bytes[(y * stride + x0) * channels..][..w * channels];
            for px in row.chunks_exact(channels) {
                if channels == 4 {
                    let a = f32::from(px[3]) / 255.0;
                    for (c, plane) in planes.iter_mut().enumerate() {
                        plane.push(lut[usize::from(px[c])] * a + grey * (1.0 - a));
                    }
                } else {
                    for (c, plane) in planes.iter_mut().enumerate() {
                        plane.push(lut[usize::from(px[c])]);
                    }
                }
            }
        }
        Image3 {
            width: w,
            height: h,
            planes,
        }
    }

    fn len(&self) -> usize {
        self.width * self.height
    }

    /// Half the size, each pixel the mean of a 2x2 block (edges repeated), in linear light: the
    /// metric's own step between scales.
    pub(crate) fn downscale_by_2(&self) -> Image3 {
        let (w, h) = (self.width, self.height);
        let (ow, oh) = (w.div_ceil(2), h.div_ceil(2));
        let planes = self.planes.each_ref().map(|plane| {
            let mut out = vec![0f32; ow * oh];
            for oy in 0..oh {
                let r0 = &plane[(2 * oy) * w..][..w];
                let r1 = &plane[(2 * oy + 1).min(h - 1) * w..][..w];
                let orow = &mut out[oy * ow..][..ow];
                for (ox, o) in orow.iter_mut().enumerate() {
                    let x0 = 2 * ox;
                    let x1 = (x0 + 1).min(w - 1);
                    *o = (r0[x0] + r0[x1] + r1[x0] + r1[x1]) * 0.25;
                }
            }
            out
        });
        Image3 {
            width: ow,
            height: oh,
            planes,
        }
    }

    /// XYB, shifted into roughly 0..1 as the metric wants (its `make_positive_xyb`).
    fn to_positive_xyb(&self) -> Image3 {
        let n = self.len();
        let mut planes = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
        positive_xyb_row(
            self.planes.each_ref().map(Vec::as_slice),
            planes.each_mut().map(Vec::as_mut_slice),
            false,
        );
        Image3 {
            width: self.width,
            height: self.height,
            planes,
        }
    }
}

/// The source's half of one scale: its XYB planes, their blurred means and blurred squares.
struct ScaleRef {
    xyb: Image3,
    mu: [Vec<f32>; 3],
    sq: [Vec<f32>; 3],
}

/// A source image prepared for scoring any number of distorted versions of it.
pub(crate) struct Reference {
    scales: Vec<ScaleRef>,
}

fn blurred(plane: &[f32], w: usize, h: usize, tmp: &mut [f32]) -> Vec<f32> {
    let mut out = vec![0f32; w * h];
    gauss::blur(plane, &mut out, tmp, w, h);
    out
}

impl Reference {
    /// `None` when the image is under 8 pixels a side, which the metric cannot score.
    pub(crate) fn new(linear: Image3) -> Option<Reference> {
        if linear.width < 8 || linear.height < 8 {
            return None;
        }
        let mut scales = Vec::new();
        let mut img = linear;
        let mut tmp = vec![0f32; img.len()];
        for scale in 0..NUM_SCALES {
            // As the crate does: a scale is scored when the one before it had 8 pixels a side.
            if img.width < 8 || img.height < 8 {
                break;
            }
            if scale > 0 {
                img = img.downscale_by_2();
            }
            let (w, h) = (img.width, img.height);
            let tmp = &mut tmp[..w * h];
            let xyb = img.to_positive_xyb();
            let mu = xyb.planes.each_ref().map(|p| blurred(p, w, h, tmp));
            let sq = xyb.planes.each_ref().map(|p| {
                let squared: Vec<f32> = p.iter().map(|v| v * v).collect();
                blurred(&squared, w, h, tmp)
            });
            scales.push(ScaleRef { xyb, mu, sq });
        }
        Some(Reference { scales })
    }

    pub(crate) fn width(&self) -> usize {
        self.scales[0].xyb.width
    }

    pub(crate) fn height(&self) -> usize {
        self.scales[0].xyb.height
    }

    /// SSIMULACRA2 of `distorted` (linear light, the source's size) against the source.
    pub(crate) fn score(&self, distorted: Image3) -> f64 {
        assert_eq!(
            (distorted.width, distorted.height),
            (self.width(), self.height()),
            "the distorted image has the source's size"
        );
        let mut features = Vec::with_capacity(self.scales.len());
        let mut img = distorted;
        // Buffers for the largest scale, reused by the smaller ones.
        let [mut tmp, mut prod, mut mu2, mut s22, mut s12] =
            std::array::from_fn(|_| vec![0f32; img.len()]);
        for (scale, reference) in self.scales.iter().enumerate() {
            if scale > 0 {
                img = img.downscale_by_2();
            }
            let (w, h) = (img.width, img.height);
            let n = w * h;
            let (tmp, prod) = (&mut tmp[..n], &mut prod[..n]);
            let (mu2, s22, s12) = (&mut mu2[..n], &mut s22[..n], &mut s12[..n]);
            let xyb = img.to_positive_xyb();
            let mut ssim = [0f64; 6];
            let mut edge = [0f64; 12];
            for c in 0..3 {
                let p1 = &reference.xyb.planes[c];
                let p2 = &xyb.planes[c];
                gauss::blur(p2, mu2, tmp, w, h);
                for ((o, a), b) in prod.iter_mut().zip(p2).zip(p2) {
                    *o = a * b;
                }
                gauss::blur(prod, s22, tmp, w, h);
                for ((o, a), b) in prod.iter_mut().zip(p1).zip(p2) {
                    *o = a * b;
                }
                gauss::blur(prod, s12, tmp, w, h);
                let maps = Maps {
                    mu1: &reference.mu[c],
                    mu2,
                    s11: &reference.sq[c],
                    s22,
                    s12,
                    img1: p1,
                    img2: p2,
                };
                let (s, e) = maps.averages(w);
                ssim[2 * c..2 * c + 2].copy_from_slice(&s);
                edge[4 * c..4 * c + 4].copy_from_slice(&e);
            }
            features.push((ssim, edge));
        }
        final_score(&features)
    }
}

impl Maps<'_> {
    /// The SSIM error map's 1- and 4-norms, and the edge map's (ringing 1, 4; blurring 1, 4).
    fn averages(&self, width: usize) -> ([f64; 2], [f64; 4]) {
        let n = self.mu1.len();
        let mut sums = [0f64; 6];
        let mut start = 0;
        // Sums in f32 over a row's length, then in f64: the row sums are short enough for f32.
        while start < n {
            let end = (start + width).min(n);
            let r = start..end;
            let (mu1, mu2, s11, s22, s12, img1, img2) = (
                &self.mu1[r.clone()],
                &self.mu2[r.clone()],
                &self.s11[r.clone()],
                &self.s22[r.clone()],
                &self.s12[r.clone()],
                &self.img1[r.clone()],
                &self.img2[r],
            );
            let row = Maps {
                mu1,
                mu2,
                s11,
                s22,
                s12,
                img1,
                img2,
            }
            .row_sums();
            for (s, r) in sums.iter_mut().zip(row) {
                *s += f64::from(r);
            }
            start = end;
        }
        features_of(&sums, n)
    }
}
/// A channel's features at one scale from its six map sums over `n` pixels: the SSIM error
/// map's 1- and 4-norms, and the edge map's (ringing 1, 4; blurring 1, 4).
pub(crate) fn features_of(sums: &[f64; 6], n: usize) -> ([f64; 2], [f64; 4]) {
    let per = 1.0 / n as f64;
    let norm4 = |s: f64| (s * per).sqrt().sqrt();
    (
        [sums[0] * per, norm4(sums[1])],
        [sums[2] * per, norm4(sums[3]), sums[4] * per, norm4(sums[5])],
    )
}

/// The weighted sum of the 108 features and the metric's final transform.
pub(crate) fn final_score(features: &[([f64; 6], [f64; 12])]) -> f64 {
    let mut ssim = 0.0f64;
    let mut i = 0usize;
    // As the crate does: on an image too small for all six scales, the weights are taken in
    // order over the scales that exist.
    for c in 0..3 {
        for (s, e) in features {
            for n in 0..2 {
                ssim += WEIGHT[i] * s[c * 2 + n].abs();
                ssim += WEIGHT[i + 1] * e[c * 4 + n].abs();
                ssim += WEIGHT[i + 2] * e[c * 4 + n + 2].abs();
                i += 3;
            }
        }
    }
    ssim *= 0.956_238_261_683_484_4;
    ssim = (6.248_496_625_763_138e-5 * ssim * ssim) * ssim + 2.326_765_642_916_932 * ssim
        - 0.020_884_521_182_843_837 * ssim * ssim;
    if ssim > 0.0 {
        100.0 - 10.0 * ssim.powf(0.627_633_646_783_138_7)
    } else {
        100.0
    }
}

/// Weight of feature `k` (0..6: SSIM 1-norm, ringing 1-norm, blurring 1-norm, then the same
/// 4-norms) of `channel` at `scale`, when the image has `scales` scales: as the crate does, the
/// weights are taken in order over the scales that exist.
pub(crate) fn weight(channel: usize, scale: usize, scales: usize, k: usize) -> f64 {
    WEIGHT[channel * 6 * scales + scale * 6 + k]
}

#[rustfmt::skip]
const WEIGHT: [f64; 108] = [
    0.0, 0.000_737_660_670_740_658_6, 0.0, 0.0, 0.000_779_348_168_286_730_9, 0.0, 0.0,
    0.000_437_115_573_010_737_9, 0.0, 1.104_172_642_665_734_6, 0.000_662_848_341_292_71,
    0.000_152_316_327_837_187_52, 0.0, 0.001_640_643_745_659_975_4, 0.0, 1.842_245_552_053_929_8,
    11.441_172_603_757_666, 0.0, 0.000_798_910_943_601_516_3, 0.000_176_816_438_078_653, 0.0,
    1.878_759_497_954_638_7, 10.949_069_906_051_42, 0.0, 0.000_728_934_699_150_807_2,
    0.967_793_708_062_683_3, 0.0, 0.000_140_034_242_854_358_84, 0.998_176_697_785_496_7,
    0.000_319_497_559_344_350_53, 0.000_455_099_211_379_206_3, 0.0, 0.0,
    0.001_364_876_616_324_339_8, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466_890_328_078_848, 0.0,
    17.445_833_984_131_262, 0.000_623_560_163_404_146_6, 0.0, 0.0, 6.683_678_146_179_332,
    0.000_377_244_079_796_112_96, 1.027_889_937_768_264, 225.205_153_008_492_74, 0.0, 0.0,
    19.213_238_186_143_016, 0.001_140_152_458_661_836_1, 0.001_237_755_635_509_985,
    176.393_175_984_506_94, 0.0, 0.0, 24.433_009_998_704_76, 0.285_208_026_121_177_57,
    0.000_448_543_692_383_340_8, 0.0, 0.0, 0.0, 34.779_063_444_837_72, 44.835_625_328_877_896,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.000_868_055_657_329_169_8, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.000_531_319_187_435_874_7, 0.0, 0.000_165_338_141_613_791_12, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.000_417_917_180_325_133_6, 0.001_729_082_823_472_283_3, 0.0, 0.002_082_700_584_663_643_7,
    0.0, 0.0, 8.826_982_764_996_862, 23.192_433_439_989_26, 0.0, 95.108_049_881_108_6,
    0.986_397_803_440_068_2, 0.983_438_279_246_535_3, 0.001_228_640_504_827_849_3,
    171.266_725_589_730_7, 0.980_785_887_243_537_9, 0.0, 0.0, 0.0, 0.000_513_006_458_899_067_9,
    0.0, 0.000_108_540_578_584_115_37,
];
