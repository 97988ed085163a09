//! From a request's path and query to what it asks for: a legacy thumbnail (its photo and size,
//! through the `--thumbnail` pattern), a legacy original (through `--original`), or a `/v1/` key
//! with explicit width, height, fit and format. Pure: no I/O.

use percent_encoding::percent_decode_str;
use recast_core::{webp_key, KeyPattern};

use crate::error::ServeError;
use crate::geometry::{Fit, Target};
use crate::render::Format;

/// Named sizes (`--sizes small=160,...`), numeric sizes and the widest answer allowed.
#[derive(Debug, Clone)]
pub struct Routes {
    pub original: KeyPattern,
    pub thumbnail: KeyPattern,
    pub sizes: Vec<(String, u32)>,
    pub max_width: u32,
}

/// Which format the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Exactly(Format),
    /// WebP when `Accept` takes it, JPEG otherwise.
    Auto,
}

impl Wanted {
    pub fn resolve(self, accepts_webp: bool) -> Format {
        match self {
            Wanted::Exactly(f) => f,
            Wanted::Auto if accepts_webp => Format::Webp,
            Wanted::Auto => Format::Jpeg,
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub route: Route,
    /// Keys to try in order; the first that exists is the source.
    pub lookups: Vec<Lookup>,
    pub target: Option<Target>,
    pub wanted: Wanted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    LegacyThumbnail,
    LegacyOriginal,
    V1,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::LegacyThumbnail => "legacy_thumbnail",
            Route::LegacyOriginal => "legacy_original",
            Route::V1 => "v1",
        }
    }
}

/// A key to try, and what to do with the object if it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Decode and fit to the target (or, with no target, send a WebP as it is when the answer is
    /// WebP).
    Render(String),
    /// Send the stored object as it is (a legacy object before its photo is switched).
    PassThrough(String),
}

impl Routes {
    /// Parses a request's raw (percent-encoded) path and query.
    pub fn parse(&self, raw_path: &str, query: Option<&str>) -> Result<Ask, ServeError> {
        let key = decode_key(raw_path)?;
        if let Some(key) = key.strip_prefix("v1/") {
            return self.v1(key, query);
        }
        if query.is_some_and(|q| !q.is_empty()) {
            return Err(ServeError::BadRequest(
                "legacy URLs take no query; use /v1/KEY?w=WIDTH for other sizes".into(),
            ));
        }
        if let Some(m) = self.thumbnail.matches(&key) {
            let size = m.size.unwrap_or_default();
            let side = self.size(size)?;
            let original = self
                .original
                .render(&m)
                .ok_or_else(|| ServeError::NotFound(format!("no original key for {key:?}")))?;
            return Ok(Ask {
                route: Route::LegacyThumbnail,
                lookups: vec![
                    Lookup::Render(webp_key(&original)),
                    Lookup::PassThrough(key.clone()),
                    Lookup::Render(original),
                ],
                target: Some(Target::bounding(side)),
                wanted: Wanted::Auto,
            });
        }
        if self.original.matches(&key).is_some() {
            return Ok(Ask {
                route: Route::LegacyOriginal,
                lookups: vec![
                    Lookup::Render(webp_key(&key)),
                    Lookup::PassThrough(key.clone()),
                ],
                target: None,
                wanted: Wanted::Auto,
            });
        }
        Err(ServeError::NotFound(format!(
            "{key:?} matches neither the thumbnail pattern `{}` nor the original pattern `{}`",
            self.thumbnail, self.original
        )))
    }

    /// The longest side of a legacy size: a number, or a name from `--sizes`.
    fn size(&self, size: &str) -> Result<u32, ServeError> {
        if let Some((_, px)) = self.sizes.iter().find(|(name, _)| name == size) {
            return Ok(*px);
        }
        let px: u32 = size.parse().map_err(|_| {
            let names: Vec<&str> = self.sizes.iter().map(|(n, _)| n.as_str()).collect();
            ServeError::NotFound(format!(
                "unknown size {size:?}: use a number of pixels or one of [{}] (--sizes)",
                names.join(", ")
            ))
        })?;
        self.check_width(px, "size")
    }

    fn check_width(&self, px: u32, what: &str) -> Result<u32, ServeError> {
        if px == 0 || px > self.max_width {
            return Err(ServeError::BadRequest(format!(
                "{what} {px} is outside 1..={} (--max-width)",
                self.max_width
            )));
        }
        Ok(px)
    }

    fn v1(&self, key: &str, query: Option<&str>) -> Result<Ask, ServeError> {
        let (mut w, mut h, mut fit, mut wanted) = (None, None, Fit::Inside, Wanted::Auto);
        for (name, value) in url_pairs(query.unwrap_or("")) {
            let number = |v: &str| {
                v.parse::<u32>().map_err(|_| {
                    ServeError::BadRequest(format!("{name}={v:?} is not a whole number of pixels"))
                })
            };
            match name.as_str() {
                "w" => w = Some(self.check_width(number(&value)?, "width")?),
                "h" => h = Some(self.check_width(number(&value)?, "height")?),
                "fit" => {
                    fit = match value.as_str() {
                        "inside" => Fit::Inside,
                        "cover" => Fit::Cover,
                        v => {
                            return Err(ServeError::BadRequest(format!(
                                "fit={v:?} is unknown: use inside or cover"
                            )))
                        }
                    }
                }
                "format" => {
                    wanted = match value.as_str() {
                        "webp" => Wanted::Exactly(Format::Webp),
                        "jpeg" | "jpg" => Wanted::Exactly(Format::Jpeg),
                        "auto" => Wanted::Auto,
                        v => {
                            return Err(ServeError::BadRequest(format!(
                                "format={v:?} is unknown: use webp, jpeg or auto"
                            )))
                        }
                    }
                }
                other => {
                    return Err(ServeError::BadRequest(format!(
                        "unknown parameter {other:?}: /v1/KEY takes w, h, fit and format"
                    )))
                }
            }
        }
        if w.is_none() {
            return Err(ServeError::BadRequest(
                "/v1/KEY needs a width: add ?w=PIXELS".into(),
            ));
        }
        if fit == Fit::Cover && h.is_none() {
            return Err(ServeError::BadRequest(
                "fit=cover needs h as well as w".into(),
            ));
        }
        let webp = webp_key(key);
        let mut lookups = vec![Lookup::Render(webp.clone())];
        if webp != key {
            lookups.push(Lookup::Render(key.to_owned()));
        }
        Ok(Ask {
            route: Route::V1,
            lookups,
            target: Some(Target {
                width: w,
                height: h,
                fit,
            }),
            wanted,
        })
    }
}

/// Percent-decodes the path and refuses keys that are not plain relative keys: `.` or `..`
/// segments (however encoded), empty segments, backslashes, control characters.
fn decode_key(raw_path: &str) -> Result<String, ServeError> {
    let raw = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let key = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ServeError::BadRequest("path is not UTF-8 once decoded".into()))?;
    let bad = |why: &str| Err(ServeError::BadRequest(format!("refused path: {why}")));
    if key.is_empty() {
        return Err(ServeError::NotFound(
            "no key: ask for /<thumbnail key> or /v1/<key>?w=WIDTH".into(),
        ));
    }
    if key.split('/').any(|s| s == ".." || s == ".") {
        return bad("it has a . or .. segment");
    }
    if key.split('/').any(str::is_empty) {
        return bad("it has an empty segment");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return bad("it has a backslash or a control character");
    }
    Ok(key.into_owned())
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (dec(k), dec(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        Routes {
            original: KeyPattern::parse("photos/{couple}/{photo}.jpg").unwrap(),
            thumbnail: KeyPattern::parse("thumbs/{couple}/{photo}_{size}.jpg").unwrap(),
            sizes: vec![("small".into(), 160)],
            max_width: 2000,
        }
    }

    #[test]
    fn a_legacy_thumbnail_tries_the_webp_then_itself_then_the_original() {
        let ask = routes().parse("/thumbs/c1/p%201_320.jpg", None).unwrap();
        assert_eq!(ask.route, Route::LegacyThumbnail);
        assert_eq!(ask.target, Some(Target::bounding(320)));
        assert_eq!(
            ask.lookups,
            vec![
                Lookup::Render("photos/c1/p 1.webp".into()),
                Lookup::PassThrough("thumbs/c1/p 1_320.jpg".into()),
                Lookup::Render("photos/c1/p 1.jpg".into()),
            ]
        );
        let named = routes().parse("/thumbs/c1/p_small.jpg", None).unwrap();
        assert_eq!(named.target, Some(Target::bounding(160)));
    }

    #[test]
    fn a_legacy_original_is_the_webp_or_itself() {
        let ask = routes().parse("/photos/c1/p.jpg", None).unwrap();
        assert_eq!(ask.route, Route::LegacyOriginal);
        assert_eq!(ask.target, None);
        assert_eq!(ask.lookups[0], Lookup::Render("photos/c1/p.webp".into()));
    }

    #[test]
    fn v1_reads_its_query() {
        let ask = routes()
            .parse(
                "/v1/photos/c1/p.jpg",
                Some("w=300&h=200&fit=cover&format=jpeg"),
            )
            .unwrap();
        assert_eq!(ask.wanted, Wanted::Exactly(Format::Jpeg));
        assert_eq!(
            ask.target,
            Some(Target {
                width: Some(300),
                height: Some(200),
                fit: Fit::Cover
            })
        );
        assert_eq!(ask.lookups.len(), 2);
        let webp = routes()
            .parse("/v1/photos/c1/p.webp", Some("w=10"))
            .unwrap();
        assert_eq!(
            webp.lookups,
            vec![Lookup::Render("photos/c1/p.webp".into())]
        );
    }

    #[test]
    fn bad_input_is_400_or_404() {
        let r = routes();
        let status = |p: &str, q: Option<&str>| r.parse(p, q).unwrap_err().status().as_u16();
        assert_eq!(status("/thumbs/c1/../p_320.jpg", None), 400);
        assert_eq!(status("/thumbs/c1/%2e%2e/p_320.jpg", None), 400);
        assert_eq!(status("/thumbs/c1%2f..%2fx/p_320.jpg", None), 400);
        assert_eq!(status("/thumbs//p_320.jpg", None), 400);
        assert_eq!(status("/thumbs/c1/p_huge.jpg", None), 404);
        assert_eq!(status("/thumbs/c1/p_9999.jpg", None), 400);
        assert_eq!(status("/thumbs/c1/p_0.jpg", None), 400);
        assert_eq!(status("/other/key", None), 404);
        assert_eq!(status("/v1/photos/c/p.jpg", None), 400);
        assert_eq!(status("/v1/photos/c/p.jpg", Some("w=abc")), 400);
        assert_eq!(status("/v1/photos/c/p.jpg", Some("w=10&fit=cover")), 400);
        assert_eq!(status("/v1/photos/c/p.jpg", Some("w=10&x=1")), 400);
        assert_eq!(status("/v1/photos/c/p.jpg", Some("w=10&format=gif")), 400);
        assert_eq!(status("/thumbs/c1/p_320.jpg", Some("w=1")), 400);
    }
}
