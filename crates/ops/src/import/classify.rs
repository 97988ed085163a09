//! What a key is to the catalog: an original, a thumbnail, or neither (unmatched), through the
//! operator's key patterns.

use recast_catalog::ObjectKind;
use recast_core::{KeyPattern, PatternError, Var};

/// The operator's description of the bucket: patterns for originals (usually one; one per file
/// extension where the originals differ), any number for thumbnails.
#[derive(Debug, Clone)]
pub struct Patterns {
    originals: Vec<KeyPattern>,
    thumbnails: Vec<KeyPattern>,
}

/// A key matched to its photo, by the app's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: ObjectKind,
    pub couple: String,
    pub photo: String,
}

impl Patterns {
    /// Parses the patterns: an original names `{couple}` and `{photo}` and no `{size}`; a
    /// thumbnail names `{couple}` and `{photo}` and may name `{size}`.
    pub fn parse(originals: &[String], thumbnails: &[String]) -> Result<Patterns, PatternError> {
        let originals = originals
            .iter()
            .map(|o| {
                let p = KeyPattern::parse(o)?;
                p.check_role(&[Var::Couple, Var::Photo], &[])?;
                Ok(p)
            })
            .collect::<Result<Vec<_>, PatternError>>()?;
        let thumbnails = thumbnails
            .iter()
            .map(|t| {
                let p = KeyPattern::parse(t)?;
                p.check_role(&[Var::Couple, Var::Photo], &[Var::Size])?;
                Ok(p)
            })
            .collect::<Result<Vec<_>, PatternError>>()?;
        Ok(Patterns {
            originals,
            thumbnails,
        })
    }

    /// The patterns' literal prefixes, sorted, without one that another contains (`photos/` for
    /// `photos/{couple}/{photo}.jpg`): where in the key space the photos are.
    pub fn literal_prefixes(&self) -> Vec<String> {
        let mut all: Vec<&str> = self
            .originals
            .iter()
            .chain(&self.thumbnails)
            .map(KeyPattern::literal_prefix)
            .collect();
        all.sort_unstable();
        let mut out: Vec<String> = Vec::new();
        for p in all {
            if !out.last().is_some_and(|kept| p.starts_with(kept.as_str())) {
                out.push(p.to_owned());
            }
        }
        out
    }

    /// The originals' patterns first, then the thumbnails', each in the order given.
    pub fn classify(&self, key: &str) -> Option<Classified> {
        let found = |kind, m: recast_core::KeyMatch<'_>| Classified {
            kind,
            couple: m.couple.unwrap_or_default().to_owned(),
            photo: m.photo.to_owned(),
        };
        if let Some(m) = self.originals.iter().find_map(|o| o.matches(key)) {
            return Some(found(ObjectKind::Original, m));
        }
        self.thumbnails
            .iter()
            .find_map(|t| t.matches(key))
            .map(|m| found(ObjectKind::Thumbnail, m))
    }
}

/// An original's format from its name (`photos/1/2.JPG` is `jpeg`), as the catalog records it.
pub(crate) fn format_of(key: &str) -> String {
    let ext = key
        .rsplit_once('.')
        .filter(|(_, e)| !e.contains('/'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jpg" | "jpeg" | "jpe") => "jpeg".into(),
        Some("png") => "png".into(),
        Some("gif") => "gif".into(),
        Some("webp") => "webp".into(),
        Some("heic" | "heif") => "heif".into(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_originals_thumbnails_and_the_rest() {
        let p = Patterns::parse(
            &["photos/{couple}/{photo}.jpg".into()],
            &["thumbs/{couple}/{photo}_{size}.jpg".into()],
        )
        .unwrap();
        let o = p.classify("photos/c 1/é+.jpg").unwrap();
        assert_eq!(
            (o.kind, o.couple.as_str(), o.photo.as_str()),
            (ObjectKind::Original, "c 1", "é+")
        );
        assert_eq!(
            p.classify("thumbs/7/a_b_160.jpg").unwrap().kind,
            ObjectKind::Thumbnail
        );
        assert_eq!(p.classify("other/7/x.jpg"), None);
        assert_eq!(format_of("photos/1/2.JPG"), "jpeg");
        assert_eq!(format_of("photos/a.b/2"), "unknown");
    }

    #[test]
    fn refuses_patterns_that_do_not_name_the_photo_and_couple() {
        assert!(matches!(
            Patterns::parse(&["photos/{couple}.jpg".into()], &[]),
            Err(PatternError::NoPhoto(_))
        ));
        assert!(matches!(
            Patterns::parse(&["photos/{photo}.jpg".into()], &[]),
            Err(PatternError::Missing { var: "couple", .. })
        ));
        assert!(matches!(
            Patterns::parse(&["photos/{couple}/{photo}_{size}.jpg".into()], &[]),
            Err(PatternError::NotAllowed { var: "size", .. })
        ));
    }
}
