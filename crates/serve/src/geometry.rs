//! The size of an answer: what a request asks for, and the pixels that gives for a source.

use crate::webp_scaled::Crop;

/// How the requested box is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Within the box, aspect kept (the legacy thumbnails' rule: longest side = size).
    Inside,
    /// Exactly the box, aspect kept by cropping the centre.
    Cover,
}

/// A requested size: a box of `width`×`height` (either may be unbounded) and a fit. Never
/// upscaled: a source smaller than the box is answered at its own size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
}

impl Target {
    /// The legacy thumbnail rule: longest side at most `side`.
    pub fn bounding(side: u32) -> Target {
        Target {
            width: Some(side),
            height: Some(side),
            fit: Fit::Inside,
        }
    }

    /// A short stable tag of the target, part of the ETag.
    pub fn tag(&self) -> String {
        let side = |s: Option<u32>| s.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let fit = match self.fit {
            Fit::Inside => "i",
            Fit::Cover => "c",
        };
        format!("{}x{}{fit}", side(self.width), side(self.height))
    }
}

/// What to take from a source and the size to make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub crop: Option<Crop>,
    pub width: u32,
    pub height: u32,
}

/// The answer's geometry for a `src_w`×`src_h` source. `Inside` rounds as the `image` crate's
/// `thumbnail` did when `seed` (and the app before it) made the legacy thumbnails, so an answer
/// has exactly the old thumbnail's dimensions.
pub fn plan(src_w: u32, src_h: u32, target: Option<&Target>) -> Plan {
    let whole = Plan {
        crop: None,
        width: src_w,
        height: src_h,
    };
    let Some(t) = target else { return whole };
    let bw = t.width.unwrap_or(u32::MAX);
    let bh = t.height.unwrap_or(u32::MAX);
    match (t.fit, t.width, t.height) {
        (Fit::Cover, Some(w), Some(h)) => {
            // Never upscale: shrink the box until it fits in the source, keeping its aspect.
            let f = (src_w as f64 / w as f64)
                .min(src_h as f64 / h as f64)
                .min(1.0);
            let out_w = ((w as f64 * f).round() as u32).clamp(1, src_w);
            let out_h = ((h as f64 * f).round() as u32).clamp(1, src_h);
            // The largest centred source rectangle with the box's aspect.
            let aspect = w as f64 / h as f64;
            let (cw, ch) = if src_w as f64 / src_h as f64 > aspect {
                (
                    ((src_h as f64 * aspect).round() as u32).clamp(1, src_w),
                    src_h,
                )
            } else {
                (
                    src_w,
                    ((src_w as f64 / aspect).round() as u32).clamp(1, src_h),
                )
            };
            // libwebp snaps a crop's origin to even pixels; start there so the size stays exact.
            let left = ((src_w - cw) / 2) & !1;
            let top = ((src_h - ch) / 2) & !1;
            let crop = (cw, ch) != (src_w, src_h);
            Plan {
                crop: crop.then_some(Crop {
                    left,
                    top,
                    width: cw,
                    height: ch,
                }),
                width: out_w,
                height: out_h,
            }
        }
        _ => {
            if src_w <= bw && src_h <= bh {
                return whole;
            }
            let ratio = (bw as f64 / src_w as f64).min(bh as f64 / src_h as f64);
            Plan {
                crop: None,
                width: ((src_w as f64 * ratio).round() as u32).max(1),
                height: ((src_h as f64 * ratio).round() as u32).max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_box_matches_the_legacy_thumbnails() {
        // image's thumbnail(320, 320) of a 4000x3000 photo is 320x240; of 3000x4000, 240x320.
        assert_eq!(plan(4000, 3000, Some(&Target::bounding(320))).width, 320);
        assert_eq!(plan(4000, 3000, Some(&Target::bounding(320))).height, 240);
        assert_eq!(plan(3000, 4000, Some(&Target::bounding(320))).width, 240);
        // 451x300 to 160: ratio 160/451, height 106.4 -> 106.
        let p = plan(451, 300, Some(&Target::bounding(160)));
        assert_eq!((p.width, p.height), (160, 106));
        // Never upscaled.
        let p = plan(100, 50, Some(&Target::bounding(320)));
        assert_eq!((p.width, p.height, p.crop), (100, 50, None));
    }

    #[test]
    fn width_only_keeps_the_aspect() {
        let t = Target {
            width: Some(200),
            height: None,
            fit: Fit::Inside,
        };
        let p = plan(1000, 2000, Some(&t));
        assert_eq!((p.width, p.height), (200, 400));
    }

    #[test]
    fn cover_crops_the_centre_to_the_exact_box() {
        let t = Target {
            width: Some(100),
            height: Some(100),
            fit: Fit::Cover,
        };
        let p = plan(400, 200, Some(&t));
        assert_eq!((p.width, p.height), (100, 100));
        assert_eq!(
            p.crop,
            Some(Crop {
                left: 100,
                top: 0,
                width: 200,
                height: 200
            })
        );
        // A box larger than the source shrinks to fit, keeping its aspect.
        let big = Target {
            width: Some(800),
            height: Some(400),
            fit: Fit::Cover,
        };
        let p = plan(300, 300, Some(&big));
        assert_eq!((p.width, p.height), (300, 150));
    }
}
