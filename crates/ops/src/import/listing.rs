//! A live listing of a store (`s3://BUCKET/PREFIX`, `file:///DIR`): pages of 1,000 keys
//! (ListObjectsV2 `start-after`), one unit per page.
//!
//! One ListObjectsV2 stream is a chain of requests, each waiting for the last (tens of ms each on
//! S3): a few thousand keys a second, days for a bucket of billions. An S3 listing is therefore
//! split into key ranges listed concurrently, at most `streams` requests in flight. The ranges
//! are cut where the keys are likely to be: at each of the key patterns' literal prefixes
//! (`photos/`, `thumbs/`) and, inside each, before the next character's likely values (digits,
//! capitals, hex letters and the rest of the alphabet; see [`SPLITS`]). They cover the whole key
//! space, so a key outside the patterns is still listed and counted as unmatched. Every range
//! costs at most one request more than one stream over it would (its last, partial page), so the
//! LIST bill stays one request per ~1,000 keys.
//!
//! The cursor of a unit records where every range stands (`ranges:v1:` and JSON): the ranges'
//! positions as of the pages already handed out, never of pages fetched but not yet imported, so
//! a resumed import lists each key once more at most. A local folder (the embedded store) is
//! listed by one walk; its cursor, like that of an S3 listing with `streams` 1, is the last key.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use recast_store::{ObjectMeta, ObjectStore, StoreError};
use serde::{Deserialize, Serialize};

use super::source::{Record, Source, Unit};
use super::ImportError;

/// Keys per listing page: S3's most per ListObjectsV2 request.
const PAGE: u32 = 1000;
/// Concurrent ListObjectsV2 requests of an S3 listing unless told otherwise.
pub const DEFAULT_LISTING_STREAMS: usize = 8;
/// Where a prefix's keys are cut into ranges: before these characters of the key after the
/// prefix. Numeric ids spread over the digits; hex and UUID ids over the digits and `a`–`f`;
/// other ids over capitals and the rest of the alphabet.
const SPLITS: &str = "123456789ANacegnt";
/// How a cursor of several ranges starts (a single range's cursor is the plain last key).
const RANGES_TAG: &str = "ranges:v1:";

/// How to list: how many requests at once, and the key patterns' literal prefixes to cut the
/// key space at.
#[derive(Debug, Clone)]
pub struct ListingShape {
    pub streams: usize,
    pub prefixes: Vec<String>,
}

impl ListingShape {
    /// One stream over the whole store.
    pub fn sequential() -> ListingShape {
        ListingShape {
            streams: 1,
            prefixes: Vec::new(),
        }
    }
}

/// A range of keys `[lo, hi)` and where its listing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Range {
    lo: Option<String>,
    hi: Option<String>,
    /// The last key listed (`start-after` of the next request).
    after: Option<String>,
    done: bool,
}

impl Range {
    fn holds(&self, key: &str) -> bool {
        self.lo.as_deref().is_none_or(|lo| key >= lo) && !self.past(key)
    }

    fn past(&self, key: &str) -> bool {
        self.hi.as_deref().is_some_and(|hi| key >= hi)
    }
}

type Page = Pin<Box<dyn Future<Output = (usize, Result<Vec<ObjectMeta>, StoreError>)> + Send>>;

pub(crate) struct Listing {
    store: Arc<dyn ObjectStore>,
    url: String,
    shape: ListingShape,
    /// Set from the cursor (or planned) on the first call.
    ranges: Option<Vec<Range>>,
    busy: Vec<bool>,
    in_flight: FuturesUnordered<Page>,
}

impl Listing {
    /// Opens `url`; an S3 listing is cut into ranges per `shape`, a local folder walked whole.
    pub(crate) async fn open(url: &str, shape: &ListingShape) -> Result<Listing, ImportError> {
        let store = recast_store::open(url)
            .await
            .map_err(|source| ImportError::Store {
                key: url.to_owned(),
                source,
            })?;
        let shape = if url.starts_with("s3://") {
            shape.clone()
        } else {
            ListingShape::sequential()
        };
        Ok(Listing::new(store, url, shape))
    }

    fn new(store: Arc<dyn ObjectStore>, name: &str, shape: ListingShape) -> Listing {
        Listing {
            store,
            url: name.to_owned(),
            shape,
            ranges: None,
            busy: Vec::new(),
            in_flight: FuturesUnordered::new(),
        }
    }

    /// Starts a request for each range neither done nor being listed, up to the streams.
    fn fill(&mut self) {
        let ranges = self.ranges.as_ref().expect("ranges are set before listing");
        for (i, range) in ranges.iter().enumerate() {
            if self.in_flight.len() >= self.shape.streams.max(1) {
                break;
            }
            if range.done || self.busy[i] {
                continue;
            }
            self.busy[i] = true;
            let store = Arc::clone(&self.store);
            let after = range.after.clone();
            self.in_flight.push(Box::pin(async move {
                (i, store.list_page("", after.as_deref(), PAGE).await)
            }));
        }
    }
}

/// A listing of a store already open (`seed` imports what it just wrote this way); `name` is
/// what messages call it. One stream.
pub fn listing_of(store: Arc<dyn ObjectStore>, name: &str) -> Box<dyn Source> {
    listing_with(store, name, ListingShape::sequential())
}

/// A listing of a store already open, cut into ranges per `shape` whatever the store.
pub fn listing_with(
    store: Arc<dyn ObjectStore>,
    name: &str,
    shape: ListingShape,
) -> Box<dyn Source> {
    Box::new(Listing::new(store, name, shape))
}

#[async_trait]
impl Source for Listing {
    async fn unit(
        &mut self,
        _index: i64,
        cursor: Option<&str>,
    ) -> Result<Option<Unit>, ImportError> {
        if self.ranges.is_none() {
            let ranges = match cursor {
                Some(c) => decode(c).map_err(|e| ImportError::Cursor(e.to_string()))?,
                None => plan(&self.shape),
            };
            self.busy = vec![false; ranges.len()];
            self.ranges = Some(ranges);
        }
        loop {
            self.fill();
            let Some((i, page)) = self.in_flight.next().await else {
                return Ok(None);
            };
            self.busy[i] = false;
            let page = page.map_err(|source| ImportError::Store {
                key: self.url.clone(),
                source,
            })?;
            let ranges = self.ranges.as_mut().expect("ranges are set");
            let range = &mut ranges[i];
            let full = page.len() >= PAGE as usize;
            range.after = page.last().map(|m| m.key.clone()).or(range.after.take());
            range.done = !full || page.last().is_some_and(|m| range.past(&m.key));
            let records: Vec<Result<Record, ImportError>> = page
                .into_iter()
                .filter(|m| range.holds(&m.key))
                .map(|m| {
                    Ok(Record {
                        key: m.key,
                        bytes: m.size,
                        given: None,
                    })
                })
                .collect();
            let Some(Ok(first)) = records.first() else {
                continue;
            };
            let name = format!("{} from {}", self.url, first.key);
            return Ok(Some(Unit {
                name,
                cursor: encode(ranges),
                records: Box::new(records.into_iter()),
            }));
        }
    }
}

/// The ranges a listing of `shape` starts with: the whole key space, cut (when more than one
/// stream) at each prefix and before each of [`SPLITS`] after it.
fn plan(shape: &ListingShape) -> Vec<Range> {
    let whole = Range {
        lo: None,
        hi: None,
        after: None,
        done: false,
    };
    if shape.streams <= 1 {
        return vec![whole];
    }
    let prefixes: Vec<&str> = if shape.prefixes.is_empty() {
        vec![""]
    } else {
        shape.prefixes.iter().map(String::as_str).collect()
    };
    let mut cuts: Vec<String> = Vec::new();
    for p in prefixes {
        if !p.is_empty() {
            cuts.push(p.to_owned());
        }
        cuts.extend(SPLITS.chars().map(|c| format!("{p}{c}")));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut lo: Option<String> = None;
    for cut in cuts.into_iter().map(Some).chain([None]) {
        ranges.push(Range {
            after: lo.as_deref().and_then(just_before),
            lo: lo.take(),
            hi: cut.clone(),
            done: false,
        });
        lo = cut;
    }
    ranges
}

/// A `start-after` for a range that starts at `lo`: just below it, so that its first request
/// does not list the range before it (`photos/1` gives `photos/0` followed by the highest code
/// point). Keys between it and `lo`, if any, are listed and left to the range before.
fn just_before(lo: &str) -> Option<String> {
    let mut chars = lo.chars();
    let last = chars.next_back()?;
    let head = chars.as_str();
    if last.is_ascii() && last != '\0' {
        Some(format!("{head}{}\u{10FFFF}", (last as u8 - 1) as char))
    } else {
        (!head.is_empty()).then(|| head.to_owned())
    }
}

/// The cursor of `ranges`: the last key for one range over the whole store (the form a sequential
/// listing always had), else the tagged JSON of every range.
fn encode(ranges: &[Range]) -> Option<String> {
    match ranges {
        [only] if only.lo.is_none() && only.hi.is_none() => only.after.clone(),
        _ => Some(format!(
            "{RANGES_TAG}{}",
            serde_json::to_string(ranges).expect("ranges serialise")
        )),
    }
}

/// The ranges a cursor records; a plain key is one range over the whole store after it.
fn decode(cursor: &str) -> Result<Vec<Range>, serde_json::Error> {
    match cursor.strip_prefix(RANGES_TAG) {
        Some(json) => serde_json::from_str(json),
        None => Ok(vec![Range {
            lo: None,
            hi: None,
            after: Some(cursor.to_owned()),
            done: false,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(streams: usize, prefixes: &[&str]) -> ListingShape {
        ListingShape {
            streams,
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn ranges_cover_the_key_space_once_in_order() {
        let ranges = plan(&shape(8, &["photos/", "thumbs/"]));
        assert_eq!(ranges.len(), 2 * (SPLITS.len() + 1) + 1);
        assert_eq!(ranges[0].lo, None);
        assert_eq!(ranges.last().unwrap().hi, None);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].hi, pair[1].lo, "ranges meet");
            assert!(pair[0].hi.is_some());
        }
        for key in [
            "",
            "a",
            "photos/",
            "photos/0",
            "photos/1",
            "photos/é",
            "thumbs/t9",
            "zz",
        ] {
            let holders = ranges.iter().filter(|r| r.holds(key)).count();
            assert_eq!(holders, 1, "{key} is in exactly one range");
        }
        assert_eq!(plan(&shape(1, &["photos/"])).len(), 1);
    }

    #[test]
    fn a_range_starts_just_below_its_first_key() {
        assert_eq!(just_before("photos/1").unwrap(), "photos/0\u{10FFFF}");
        assert_eq!(just_before("photos/").unwrap(), "photos.\u{10FFFF}");
        assert_eq!(just_before("fotos/é").unwrap(), "fotos/");
        assert_eq!(just_before(""), None);
        for lo in ["photos/1", "photos/", "a"] {
            let after = just_before(lo).unwrap();
            assert!(after.as_str() < lo);
        }
    }

    #[test]
    fn cursors_round_trip_and_a_plain_key_is_one_range() {
        let ranges = plan(&shape(4, &["p/"]));
        let cursor = encode(&ranges).unwrap();
        assert!(cursor.starts_with(RANGES_TAG));
        assert_eq!(decode(&cursor).unwrap(), ranges);
        let one = decode("photos/1/2.jpg").unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(encode(&one).as_deref(), Some("photos/1/2.jpg"));
        assert!(decode("ranges:v1:{not json").is_err());
    }
}
