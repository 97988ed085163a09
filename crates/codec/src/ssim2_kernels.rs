//! SSIMULACRA2's row kernels, shared by the whole-plane form (`ssim2.rs`) and the streamed one
//! (`ssim2_stream.rs`): positive XYB, the 9-tap Gaussian blur, the error maps' row sums, and the
//! AVX2 dispatch that runs each of them 8 floats a step on CPUs that have it, with the same bits.

/// Positive XYB (the metric's `make_positive_xyb`) of linear RGB `rgb` into `out`, pixel by
/// pixel over the planes' common length: whole planes or single rows. With `only_y`, only the Y
/// plane is written (the X and B planes are left as they were).
pub(crate) fn positive_xyb_row(rgb: [&[f32]; 3], out: [&mut [f32]; 3], only_y: bool) {
    vectorised!(positive_xyb_row_scalar(rgb, out, only_y))
}

#[inline(always)]
pub(crate) fn positive_xyb_row_scalar(rgb: [&[f32]; 3], out: [&mut [f32]; 3], only_y: bool) {
    const M: [f32; 9] = [
        0.30,
        1.0 - 0.078 - 0.30,
        0.078,
        0.23,
        1.0 - 0.078 - 0.23,
        0.078,
        0.243_422_69,
        0.204_767_45,
        1.0 - 0.243_422_69 - 0.204_767_45,
    ];
    const BIAS: f32 = 0.003_793_073_4;
    let neg_bias_cbrt = -cbrt(BIAS);
    let [r, g, b] = rgb;
    let [px, py, pb] = out;
    let n = r.len();
    if only_y {
        let (g, b, py) = (&g[..n], &b[..n], &mut py[..n]);
        for i in 0..n {
            let (r, g, b) = (r[i], g[i], b[i]);
            let m0 = cbrt((M[0] * r + M[1] * g + M[2] * b + BIAS).max(0.0)) + neg_bias_cbrt;
            let m1 = cbrt((M[3] * r + M[4] * g + M[5] * b + BIAS).max(0.0)) + neg_bias_cbrt;
            py[i] = 0.5 * (m0 + m1) + 0.01;
        }
        return;
    }
    let (g, b) = (&g[..n], &b[..n]);
    let (px, py, pb) = (&mut px[..n], &mut py[..n], &mut pb[..n]);
    for i in 0..n {
        let (r, g, b) = (r[i], g[i], b[i]);
        let m0 = cbrt((M[0] * r + M[1] * g + M[2] * b + BIAS).max(0.0)) + neg_bias_cbrt;
        let m1 = cbrt((M[3] * r + M[4] * g + M[5] * b + BIAS).max(0.0)) + neg_bias_cbrt;
        let m2 = cbrt((M[6] * r + M[7] * g + M[8] * b + BIAS).max(0.0)) + neg_bias_cbrt;
        let x = 0.5 * (m0 - m1);
        let y = 0.5 * (m0 + m1);
        px[i] = x * 14.0 + 0.42;
        py[i] = y + 0.01;
        pb[i] = (m2 - y) + 0.55;
    }
}

/// Cube root of a non-negative f32: the exponent divided by three as a first guess (within
/// about 3%), then two Halley steps in f32 (each cubes the error: relative error under 1e-6 on
/// 0..2), written without branches so that the loops calling it vectorise.
fn cbrt(x: f32) -> f32 {
    const B1: u32 = 709_958_130;
    let guess = f32::from_bits(x.to_bits() / 3 + B1);
    let mut t = guess;
    for _ in 0..2 {
        let t3 = t * t * t;
        t *= (x + x + t3) / (x + t3 + t3);
    }
    // x = 0 gives 0/0 after the guess; cube root of 0 is 0.
    if x > 0.0 {
        t
    } else {
        0.0
    }
}

/// The metric's Gaussian blur (sigma 1.5), zero outside the image, as the 9-tap filter it is.
///
/// libjxl and the crate compute it recursively ("truncated cosine" recursive Gaussian,
/// Charalampidis 2016): three second-order recursions whose feedback is exactly -1 two steps back,
/// so they never damp. In exact arithmetic the recursion is a 9-tap FIR; in f32 its rounding
/// errors do not die out but ring along the whole row or column, and the score then depends on
/// how they were rounded (0.8 points apart on a real photo between f32 with and without fused
/// multiply-adds). The FIR computes the same blur with no such error, and vectorises.
pub(crate) mod gauss {
    /// Taps 0..=4 of the symmetric kernel: the recursion's impulse response, computed in f64
    /// from the crate's constants (`the_taps_are_the_recursive_gaussians_impulse_response`).
    pub const TAPS: [f32; 5] = [
        0.264_621_17,
        0.212_928_66,
        0.109_335_44,
        0.036_011_198,
        0.009_414_461,
    ];
    pub const R: usize = TAPS.len() - 1;

    /// Blurs `input` (width x height) into `out`, using `tmp` (same size) between the passes.
    pub fn blur(input: &[f32], out: &mut [f32], tmp: &mut [f32], width: usize, height: usize) {
        let mut padded = vec![0f32; width + 2 * R];
        for (row_in, row_out) in input.chunks_exact(width).zip(tmp.chunks_exact_mut(width)) {
            padded[R..R + width].copy_from_slice(row_in);
            horizontal_row(&padded, row_out);
        }
        vertical(tmp, out, width, height);
    }

    /// `padded` is the row with R zeros on each side.
    pub fn horizontal_row(padded: &[f32], out: &mut [f32]) {
        super::vectorised!(horizontal_row_scalar(padded, out))
    }

    #[inline(always)]
    pub(crate) fn horizontal_row_scalar(padded: &[f32], out: &mut [f32]) {
        let w = out.len();
        // The nine taps' inputs, each shifted by its offset: one pass over `out`, adding the
        // taps in the order of the taps (the same bits as a pass per tap).
        let p: [&[f32]; 2 * R + 1] = std::array::from_fn(|j| &padded[j..j + w]);
        for (x, o) in out.iter_mut().enumerate() {
            *o = TAPS[0] * p[4][x]
                + TAPS[1] * (p[3][x] + p[5][x])
                + TAPS[2] * (p[2][x] + p[6][x])
                + TAPS[3] * (p[1][x] + p[7][x])
                + TAPS[4] * (p[0][x] + p[8][x]);
        }
    }

    /// A whole row at a time, so that the inner loops run over contiguous memory.
    fn vertical(input: &[f32], output: &mut [f32], width: usize, height: usize) {
        let row = |y: usize| &input[y * width..][..width];
        for (y, out) in output.chunks_exact_mut(width).enumerate() {
            vertical_row(out, y, height, row);
        }
    }

    /// Row `y` of a vertical blur (zero outside the image's `height` rows), from the rows of the
    /// horizontally blurred plane that `row` gives: the whole-plane blur's and the streamed one's.
    pub fn vertical_row<'a>(
        out: &mut [f32],
        y: usize,
        height: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) {
        super::vectorised!(vertical_row_scalar(out, y, height, row))
    }

    #[inline(always)]
    pub(crate) fn vertical_row_scalar<'a>(
        out: &mut [f32],
        y: usize,
        height: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) {
        if y >= R && y + R < height {
            // All nine rows inside the image: one pass, the taps added in the same order as the
            // passes below (the same bits).
            let w = out.len();
            let r: [&[f32]; 2 * R + 1] = std::array::from_fn(|j| &row(y + j - R)[..w]);
            for (x, o) in out.iter_mut().enumerate() {
                *o = TAPS[0] * r[4][x]
                    + TAPS[1] * (r[3][x] + r[5][x])
                    + TAPS[2] * (r[2][x] + r[6][x])
                    + TAPS[3] * (r[1][x] + r[7][x])
                    + TAPS[4] * (r[0][x] + r[8][x]);
            }
            return;
        }
        out.copy_from_slice(row(y));
        out.iter_mut().for_each(|o| *o *= TAPS[0]);
        for (k, &tap) in TAPS.iter().enumerate().skip(1) {
            match (y.checked_sub(k), (y + k < height).then_some(y + k)) {
                (Some(a), Some(b)) => {
                    for ((o, u), d) in out.iter_mut().zip(row(a)).zip(row(b)) {
                        *o += tap * (u + d);
                    }
                }
                (Some(a), None) | (None, Some(a)) => {
                    for (o, u) in out.iter_mut().zip(row(a)) {
                        *o += tap * u;
                    }
                }
                (None, None) => {}
            }
        }
    }
}

/// One channel of one scale (or one row of it): the planes the error maps are made of.
#[derive(Clone, Copy)]
pub(crate) struct Maps<'a> {
    pub(crate) mu1: &'a [f32],
    pub(crate) mu2: &'a [f32],
    pub(crate) s11: &'a [f32],
    pub(crate) s22: &'a [f32],
    pub(crate) s12: &'a [f32],
    pub(crate) img1: &'a [f32],
    pub(crate) img2: &'a [f32],
}

impl Maps<'_> {
    /// The six sums of the error maps over one row (the planes hold one row), in f32: a row is
    /// short enough for f32 sums. Each sum is kept in [`LANES`] partial sums (pixel `i` in lane
    /// `i % LANES`), added up at the end of the row: the order is fixed, so the compiler may
    /// run the lanes as one vector (a single running sum would have to be added pixel by pixel)
    /// and every machine gets the same sums.
    pub(crate) fn row_sums(&self) -> [f32; 6] {
        vectorised!(row_sums_scalar(self))
    }
}

/// [`Maps::row_sums`], for any instruction set.
#[inline(always)]
pub(crate) fn row_sums_scalar(maps: &Maps<'_>) -> [f32; 6] {
    let Maps {
        mu1,
        mu2,
        s11,
        s22,
        s12,
        img1,
        img2,
    } = *maps;
    let len = mu1.len();
    // Equal lengths, said once, so that the loops below run without bounds checks.
    assert!([mu2, s11, s22, s12, img1, img2]
        .iter()
        .all(|p| p.len() == len));
    let mut lanes = [[0f32; LANES]; 6];
    let lane_of = |p: &[f32]| -> [f32; LANES] { p.try_into().expect("a chunk of LANES") };
    let body = len - len % LANES;
    for start in (0..body).step_by(LANES) {
        let at = |p: &[f32]| lane_of(&p[start..start + LANES]);
        let (m1, m2, a, b, c, i1, i2) = (
            at(mu1),
            at(mu2),
            at(s11),
            at(s22),
            at(s12),
            at(img1),
            at(img2),
        );
        for k in 0..LANES {
            let terms = map_terms(m1[k], m2[k], a[k], b[k], c[k], i1[k], i2[k]);
            for (sum, t) in lanes.iter_mut().zip(terms) {
                sum[k] += t;
            }
        }
    }
    for i in body..len {
        let terms = map_terms(mu1[i], mu2[i], s11[i], s22[i], s12[i], img1[i], img2[i]);
        for (sum, t) in lanes.iter_mut().zip(terms) {
            sum[i % LANES] += t;
        }
    }
    lanes.map(|l| l.iter().sum())
}

/// Calls the kernel `$scalar` compiled for AVX2 when the CPU has it (its twin in [`avx2`]),
/// else as compiled for the baseline (SSE2). The kernels are written so that their loops
/// vectorise, and are `#[inline(always)]`, so each twin is the same code 8 floats a step instead
/// of 4. No fused multiply-adds (Rust never contracts `a * b + c`) and no reordered sums, so
/// both give the same bits: a score does not depend on the machine
/// (`both_instruction_sets_give_the_same_bits`). The feature check is a cached load, once a row.
macro_rules! vectorised {
    ($scalar:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the twin only requires the CPU to have AVX2, checked just above.
            #[allow(unsafe_code)]
            return unsafe { $crate::ssim2_kernels::avx2::$scalar($($arg),*) };
        }
        $scalar($($arg),*)
    }};
}
pub(crate) use vectorised;

/// The kernels compiled with AVX2: each calls its baseline version, inlined (see
/// [`vectorised`]).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{gauss, Maps};

    #[target_feature(enable = "avx2")]
    pub(crate) fn positive_xyb_row_scalar(rgb: [&[f32]; 3], out: [&mut [f32]; 3], only_y: bool) {
        super::positive_xyb_row_scalar(rgb, out, only_y)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) fn horizontal_row_scalar(padded: &[f32], out: &mut [f32]) {
        gauss::horizontal_row_scalar(padded, out)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) fn vertical_row_scalar<'a>(
        out: &mut [f32],
        y: usize,
        height: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) {
        gauss::vertical_row_scalar(out, y, height, row)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) fn row_sums_scalar(maps: &Maps<'_>) -> [f32; 6] {
        super::row_sums_scalar(maps)
    }

    #[target_feature(enable = "avx2")]
    pub(crate) fn blurred_quantities_scalar(
        p1: &[f32],
        p2: &[f32],
        padded: &mut [f32],
        out: &mut [Vec<f32>; crate::ssim2_stream::BLURRED],
    ) {
        crate::ssim2_stream::blurred_quantities_scalar(p1, p2, padded, out)
    }
}

/// Partial sums a row's error-map sums are kept in (see `Maps::row_sums`).
const LANES: usize = 8;

/// One pixel's terms of the six error-map sums: the SSIM error d and d^4; the edge map's
/// artifact (ringing) a and a^4; its detail lost (blurring) l and l^4.
#[inline(always)]
fn map_terms(m1: f32, m2: f32, s11: f32, s22: f32, s12: f32, i1: f32, i2: f32) -> [f32; 6] {
    const C2: f32 = 0.0009;
    let diff = m1 - m2;
    let num_m = 1.0 - diff * diff;
    let num_s = 2.0 * (s12 - m1 * m2) + C2;
    let denom_s = (s11 - m1 * m1) + (s22 - m2 * m2) + C2;
    let d = (1.0 - (num_m * num_s) / denom_s).max(0.0);
    let d2 = d * d;
    let e = (1.0 + (i2 - m2).abs()) / (1.0 + (i1 - m1).abs()) - 1.0;
    let artifact = e.max(0.0);
    let lost = (-e).max(0.0);
    let (a2, l2) = (artifact * artifact, lost * lost);
    [d, d2 * d2, artifact, a2 * a2, lost, l2 * l2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kernel compiled for AVX2 gives the same bits as compiled for the baseline, on
    /// values of the ranges the metric sees (so a score never depends on the machine), and the
    /// fused one-pass blurs give the bits of a pass per tap.
    #[test]
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    fn both_instruction_sets_give_the_same_bits() {
        fn same_bits(a: &[f32], b: &[f32]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        }
        // Without AVX2 (not on this project's machines) only the fused-against-per-tap
        // comparisons can run; the test says so.
        let avx2 = std::is_x86_feature_detected!("avx2");
        if !avx2 {
            eprintln!("this CPU has no AVX2: the AVX2 kernels are not compared");
        }
        let mut rng = fastrand::Rng::with_seed(7);
        // 103: not a multiple of the vector width, so the tails run too.
        let w = 103;
        let plane = |rng: &mut fastrand::Rng| (0..w).map(|_| rng.f32()).collect::<Vec<f32>>();
        let rgb = [plane(&mut rng), plane(&mut rng), plane(&mut rng)];
        for only_y in [false, true] {
            let (mut a, mut b) = (
                [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
                [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
            );
            let input = rgb.each_ref().map(Vec::as_slice);
            positive_xyb_row_scalar(input, a.each_mut().map(Vec::as_mut_slice), only_y);
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe {
                avx2::positive_xyb_row_scalar(input, b.each_mut().map(Vec::as_mut_slice), only_y)
            };
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert_eq!(x.to_bits(), y.to_bits(), "xyb");
            }
        }
        let mut padded = vec![0f32; w + 2 * gauss::R];
        padded[gauss::R..gauss::R + w].copy_from_slice(&rgb[0]);
        let (mut a, mut b, mut per_tap) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
        gauss::horizontal_row_scalar(&padded, &mut a);
        // SAFETY: as above.
        if avx2 {
            unsafe { avx2::horizontal_row_scalar(&padded, &mut b) };
        } else {
            b = a.clone();
        }
        for (x, o) in per_tap.iter_mut().enumerate() {
            *o = gauss::TAPS[0] * padded[gauss::R + x];
        }
        for (k, &tap) in gauss::TAPS.iter().enumerate().skip(1) {
            for (x, o) in per_tap.iter_mut().enumerate() {
                *o += tap * (padded[gauss::R + x - k] + padded[gauss::R + x + k]);
            }
        }
        assert!(same_bits(&a, &b), "horizontal");
        assert!(same_bits(&a, &per_tap), "horizontal, a pass per tap");
        let rows: Vec<Vec<f32>> = (0..12).map(|_| plane(&mut rng)).collect();
        for y in 0..12 {
            let (mut a, mut b, mut per_tap) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
            gauss::vertical_row_scalar(&mut a, y, 12, |r| &rows[r]);
            // SAFETY: as above.
            if avx2 {
                unsafe { avx2::vertical_row_scalar(&mut b, y, 12, |r| &rows[r]) };
            } else {
                b = a.clone();
            }
            for (x, o) in per_tap.iter_mut().enumerate() {
                *o = gauss::TAPS[0] * rows[y][x];
                for (k, &tap) in gauss::TAPS.iter().enumerate().skip(1) {
                    match (y.checked_sub(k), (y + k < 12).then_some(y + k)) {
                        (Some(u), Some(d)) => *o += tap * (rows[u][x] + rows[d][x]),
                        (Some(u), None) | (None, Some(u)) => *o += tap * rows[u][x],
                        (None, None) => {}
                    }
                }
            }
            assert!(same_bits(&a, &b), "vertical row {y}");
            assert!(same_bits(&a, &per_tap), "vertical row {y}, a pass per tap");
        }
        // Means near each other and variances above their squares, as blurred images give.
        let mu1 = plane(&mut rng);
        let mu2: Vec<f32> = mu1.iter().map(|m| m + 0.05 * (rng.f32() - 0.5)).collect();
        let sq = |mu: &[f32], rng: &mut fastrand::Rng| {
            mu.iter()
                .map(|m| m * m + 0.01 * rng.f32())
                .collect::<Vec<f32>>()
        };
        let (s11, s22) = (sq(&mu1, &mut rng), sq(&mu2, &mut rng));
        let s12: Vec<f32> = mu1.iter().zip(&mu2).map(|(a, b)| a * b).collect();
        let (img1, img2) = (plane(&mut rng), plane(&mut rng));
        let maps = Maps {
            mu1: &mu1,
            mu2: &mu2,
            s11: &s11,
            s22: &s22,
            s12: &s12,
            img1: &img1,
            img2: &img2,
        };
        let a = row_sums_scalar(&maps);
        // SAFETY: as above.
        let b = if avx2 {
            unsafe { avx2::row_sums_scalar(&maps) }
        } else {
            a
        };
        assert!(a.iter().all(|s| *s > 0.0), "every sum is exercised: {a:?}");
        assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "row sums");
    }

    /// The recursion of libjxl and the crate (their constants, run in f64 on an impulse) gives
    /// the FIR's taps.
    #[test]
    fn the_taps_are_the_recursive_gaussians_impulse_response() {
        const MUL_IN: [f64; 3] = [0.055_295_236, -0.058_836_687, 0.012_955_819];
        const MUL_PREV: [f64; 3] = [1.902_113_1, 1.175_570_5, 1.224_646_9e-16];
        const RADIUS: isize = 5;
        let width = 41isize;
        let input = |i: isize| if i == 20 { 1.0 } else { 0.0 };
        let (mut prev, mut prev2) = ([0f64; 3], [0f64; 3]);
        let mut response = vec![0f64; width as usize];
        for n in (1 - RADIUS)..width {
            let sum = input(n - RADIUS - 1) + input(n + RADIUS - 1);
            let out: [f64; 3] =
                std::array::from_fn(|k| sum * MUL_IN[k] - prev2[k] + MUL_PREV[k] * prev[k]);
            (prev2, prev) = (prev, out);
            if n >= 0 {
                response[n as usize] = out.iter().sum();
            }
        }
        for (k, &tap) in gauss::TAPS.iter().enumerate() {
            for side in [20 + k, 20 - k] {
                assert!(
                    (response[side] - f64::from(tap)).abs() < 1e-6,
                    "{k}: {response:?}"
                );
            }
        }
        for (i, r) in response.iter().enumerate() {
            if i.abs_diff(20) > 4 {
                assert!(r.abs() < 1e-6, "{i}: {r}");
            }
        }
    }

    #[test]
    fn the_cube_root_is_accurate_over_the_range_the_metric_uses() {
        for i in 0..=2000 {
            let x = i as f32 / 1000.0;
            let want = f64::from(x).cbrt();
            let got = f64::from(cbrt(x));
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1e-3),
                "{x}: {got} {want}"
            );
        }
    }
}
