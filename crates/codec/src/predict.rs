//! What a photo needs, predicted: the quality its source JPEG was saved at, and the WebP quality
//! that reaches a target from the score of one probe encode.
//!
//! The probe model was fitted by `scripts/fit-quality` on photos that are **not** the bench set
//! (see docs/codec.md, "The second try"): for each photo, its whole SSIMULACRA2 score at a
//! ladder of WebP qualities; per photo and target (60 to 80), the lowest quality reaching the
//! target plus the check margin, against the probe's distance from that goal. A fixed probe
//! and this map beat predicting from cheap image statistics (gradient energy, flat blocks,
//! chroma, the JPEG's quality): those left 8.8 quality points of error (leave one photo out),
//! the probe's score 4.2.

/// Quality of the probe, the search's first encode: about the median answer at target 70.
pub const PROBE_QUALITY: f32 = 75.0;

/// The model: quality needed - probe = C0 + C1 d + C2 d² + C3 (target - 70), d the probe's
/// score minus the goal, within +-12, and the target within 60..=80 (the ranges fitted).
const PROBE_MODEL: [f64; 4] = [-3.610, -2.709, -0.0674, -0.3441];

/// The second encode aims this far above the model's answer: its leave-one-photo-out errors
/// were under 3.6 quality points for 85% of (photo, target) pairs, so the second encode
/// usually passes and a third is rare.
pub const AIM_ABOVE: f64 = 3.5;

/// The quality the model says reaches `goal` (the target plus the check margin) for a photo
/// whose probe at [`PROBE_QUALITY`] scored `probe_score`, plus [`AIM_ABOVE`]; rounded up.
pub fn quality_after_probe(probe_score: f64, goal: f64, target: f64) -> f32 {
    let d = (probe_score - goal).clamp(-12.0, 12.0);
    let [c0, c1, c2, c3] = PROBE_MODEL;
    // Targets outside the fitted 60..=80 count as its ends.
    let t = (target - 70.0).clamp(-10.0, 10.0);
    let needed = f64::from(PROBE_QUALITY) + c0 + c1 * d + c2 * d * d + c3 * t;
    (needed + AIM_ABOVE).ceil().clamp(0.0, 100.0) as f32
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
