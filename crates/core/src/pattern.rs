//! Key patterns: one description of where a bucket keeps its photos, shared by `import` (which
//! reads keys into the catalog) and `serve` (which maps a legacy URL back to its photo).
//!
//! A pattern is literal text with placeholders: `photos/{couple}/{photo}.jpg`,
//! `thumbs/{couple}/{photo}_{size}.jpg`. A placeholder matches one non-empty part of one path
//! segment (never a `/`). Two placeholders must be separated by literal text, or a key could be
//! split between them in more than one way. Where a literal appears more than once in a segment
//! (`{photo}_{size}` on `a_b_160`), the earlier placeholder takes the longest part (`a_b`, `160`).

use std::fmt;

/// A placeholder of a key pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Couple,
    Photo,
    Size,
}

impl Var {
    pub fn name(self) -> &'static str {
        match self {
            Var::Couple => "couple",
            Var::Photo => "photo",
            Var::Size => "size",
        }
    }

    fn parse(name: &str) -> Option<Var> {
        match name {
            "couple" => Some(Var::Couple),
            "photo" => Some(Var::Photo),
            "size" => Some(Var::Size),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// Why a pattern was refused; each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("key pattern `{0}` has no {{photo}}: every pattern must name the photo")]
    NoPhoto(String),
    #[error("key pattern `{pattern}` names {{{var}}} twice")]
    Repeated { pattern: String, var: &'static str },
    #[error("key pattern `{pattern}` has an unknown placeholder `{{{name}}}`: use {{couple}}, {{photo}} or {{size}}")]
    Unknown { pattern: String, name: String },
    #[error("key pattern `{0}` has an unclosed `{{`")]
    Unclosed(String),
    #[error("key pattern `{pattern}` puts {{{first}}} and {{{second}}} side by side: separate them with literal text such as `_`")]
    Adjacent {
        pattern: String,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "key pattern `{0}` starts with `/`: keys are relative to the store (no leading slash)"
    )]
    Absolute(String),
    #[error("key pattern `{pattern}` has no {{{var}}}, which this role needs")]
    Missing { pattern: String, var: &'static str },
    #[error("key pattern `{pattern}` has {{{var}}}, which this role does not allow")]
    NotAllowed { pattern: String, var: &'static str },
}

/// A parsed key pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPattern {
    text: String,
    parts: Vec<Part>,
}

/// The values a key gave to a pattern's placeholders (borrowed from the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyMatch<'k> {
    pub couple: Option<&'k str>,
    pub photo: &'k str,
    pub size: Option<&'k str>,
}

impl<'k> KeyMatch<'k> {
    fn get(&self, var: Var) -> Option<&'k str> {
        match var {
            Var::Couple => self.couple,
            Var::Photo => Some(self.photo),
            Var::Size => self.size,
        }
    }
}

impl KeyPattern {
    /// Parses a pattern; it must name `{photo}`, and each placeholder at most once.
    pub fn parse(text: &str) -> Result<KeyPattern, PatternError> {
        if text.starts_with('/') {
            return Err(PatternError::Absolute(text.into()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut lit = String::new();
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| PatternError::Unclosed(text.into()))?;
            let name = &after[..close];
            let var = Var::parse(name).ok_or_else(|| PatternError::Unknown {
                pattern: text.into(),
                name: name.into(),
            })?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            } else if let Some(Part::Var(prev)) = parts.last() {
                return Err(PatternError::Adjacent {
                    pattern: text.into(),
                    first: prev.name(),
                    second: var.name(),
                });
            }
            if parts.contains(&Part::Var(var)) {
                return Err(PatternError::Repeated {
                    pattern: text.into(),
                    var: var.name(),
                });
            }
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        let pattern = KeyPattern {
            text: text.into(),
            parts,
        };
        if !pattern.has(Var::Photo) {
            return Err(PatternError::NoPhoto(text.into()));
        }
        Ok(pattern)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal text before the first placeholder (`photos/` of `photos/{couple}/{photo}.jpg`):
    /// every key the pattern matches starts with it.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(lit)) => lit,
            _ => "",
        }
    }

    /// Whether the pattern has this placeholder.
    pub fn has(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Checks that the pattern has every placeholder of `needs` and none outside `allows`
    /// (for example an original's pattern needs `{couple}` and `{photo}` and allows no `{size}`).
    pub fn check_role(&self, needs: &[Var], allows: &[Var]) -> Result<(), PatternError> {
        for &var in needs {
            if !self.has(var) {
                return Err(PatternError::Missing {
                    pattern: self.text.clone(),
                    var: var.name(),
                });
            }
        }
        for part in &self.parts {
            if let Part::Var(var) = part {
                if !allows.contains(var) && !needs.contains(var) {
                    return Err(PatternError::NotAllowed {
                        pattern: self.text.clone(),
                        var: var.name(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Matches a whole key; `None` when the key does not have the pattern's shape.
    pub fn matches<'k>(&self, key: &'k str) -> Option<KeyMatch<'k>> {
        let mut found = KeyMatch::default();
        let mut photo = None;
        if !match_parts(&self.parts, key, &mut found, &mut photo) {
            return None;
        }
        found.photo = photo?;
        Some(found)
    }

    /// The key this pattern gives for those values; `None` when the pattern needs a value that
    /// `values` lacks.
    pub fn render(&self, values: &KeyMatch<'_>) -> Option<String> {
        let mut key = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Lit(lit) => key.push_str(lit),
                Part::Var(var) => key.push_str(values.get(*var)?),
            }
        }
        Some(key)
    }
}

/// Matches `parts` against all of `key`, filling `found`; greedy for each placeholder, with
/// backtracking limited to the placeholder's own path segment.
fn match_parts<'k>(
    parts: &[Part],
    key: &'k str,
    found: &mut KeyMatch<'k>,
    photo: &mut Option<&'k str>,
) -> bool {
    match parts.split_first() {
        None => key.is_empty(),
        Some((Part::Lit(lit), rest)) => {
            key.starts_with(lit.as_str()) && match_parts(rest, &key[lit.len()..], found, photo)
        }
        Some((Part::Var(var), rest)) => {
            // A placeholder never spans a `/`: its value ends before the segment does.
            let segment_end = key.find('/').unwrap_or(key.len());
            let next = match rest.first() {
                None => None,
                Some(Part::Lit(next)) => Some(next.as_str()),
                Some(Part::Var(_)) => unreachable!("placeholders are never adjacent"),
            };
            // Candidate ends, longest value first; each leaves the rest starting with `next`.
            let ends = (1..=segment_end).rev().filter(|&end| {
                key.is_char_boundary(end)
                    && match next {
                        None => end == key.len(),
                        Some(next) => key[end..].starts_with(next),
                    }
            });
            for end in ends {
                let value = &key[..end];
                match var {
                    Var::Couple => found.couple = Some(value),
                    Var::Photo => *photo = Some(value),
                    Var::Size => found.size = Some(value),
                }
                if match_parts(rest, &key[end..], found, photo) {
                    return true;
                }
            }
            false
        }
    }
}

impl fmt::Debug for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPattern({:?})", self.text)
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for KeyPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyPattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> KeyPattern {
        KeyPattern::parse(s).unwrap()
    }

    #[test]
    fn matches_originals_and_thumbnails() {
        let orig = p("photos/{couple}/{photo}.jpg");
        let m = orig.matches("photos/c-1/abc.jpg").unwrap();
        assert_eq!((m.couple, m.photo, m.size), (Some("c-1"), "abc", None));
        assert_eq!(orig.matches("photos/c-1/abc.png"), None);
        assert_eq!(orig.matches("photos/c-1/x/abc.jpg"), None);
        assert_eq!(orig.matches("photos//abc.jpg"), None);
        assert_eq!(orig.matches("photos/c/.jpg"), None);

        let thumb = p("thumbs/{couple}/{photo}_{size}.jpg");
        let m = thumb.matches("thumbs/7/a_b_160.jpg").unwrap();
        assert_eq!((m.couple, m.photo, m.size), (Some("7"), "a_b", Some("160")));
        assert_eq!(thumb.matches("thumbs/7/ab.jpg"), None);
    }

    #[test]
    fn renders_what_it_matches() {
        let orig = p("photos/{couple}/{photo}.jpg");
        let thumb = p("thumbs/{couple}/{photo}_{size}.jpg");
        let m = thumb.matches("thumbs/u 1/ü+%_640.jpg").unwrap();
        assert_eq!(orig.render(&m).unwrap(), "photos/u 1/ü+%.jpg");
        assert_eq!(thumb.render(&m).unwrap(), "thumbs/u 1/ü+%_640.jpg");
        let no_size = orig.matches("photos/1/2.jpg").unwrap();
        assert_eq!(thumb.render(&no_size), None);
    }

    #[test]
    fn a_placeholder_may_take_the_last_segment_whole() {
        let pat = p("{couple}/{photo}");
        let m = pat.matches("a/b.c").unwrap();
        assert_eq!((m.couple, m.photo), (Some("a"), "b.c"));
        assert_eq!(pat.matches("a/b/c"), None);
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(matches!(
            KeyPattern::parse("photos/{couple}.jpg"),
            Err(PatternError::NoPhoto(_))
        ));
        assert!(matches!(
            KeyPattern::parse("{photo}/{photo}"),
            Err(PatternError::Repeated { .. })
        ));
        assert!(matches!(
            KeyPattern::parse("{photo}{size}"),
            Err(PatternError::Adjacent { .. })
        ));
        assert!(matches!(
            KeyPattern::parse("{user}/{photo}"),
            Err(PatternError::Unknown { .. })
        ));
        assert!(matches!(
            KeyPattern::parse("{photo"),
            Err(PatternError::Unclosed(_))
        ));
        assert!(matches!(
            KeyPattern::parse("/p/{photo}"),
            Err(PatternError::Absolute(_))
        ));
        let orig = p("photos/{photo}_{size}.jpg");
        assert!(matches!(
            orig.check_role(&[Var::Couple, Var::Photo], &[]),
            Err(PatternError::Missing { var: "couple", .. })
        ));
        assert!(matches!(
            orig.check_role(&[Var::Photo], &[Var::Couple]),
            Err(PatternError::NotAllowed { var: "size", .. })
        ));
    }
}
