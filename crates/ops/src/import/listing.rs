//! A live listing of a store (`s3://BUCKET/PREFIX`, `file:///DIR`): pages of 1,000 keys
//! (ListObjectsV2 `start-after`), one unit per page.
//!
//! One ListObjectsV2 stream is a chain of requests, each waiting for the last (tens of ms each on
//! S3): a few thousand keys a second, days for a bucket of billions. An S3 listing is therefore
//! split into key ranges listed concurrently, at most `streams` requests in flight. It starts
//! with the key patterns' literal prefixes (`photos/`, `thumbs/`) as ranges, and the gaps around
//! them, so that the ranges cover the whole key space (a key outside the patterns is still
//! listed, and counted as unmatched). A range whose page comes back full has more keys: while
//! fewer than 4 ranges per stream are open it is cut, one character deeper than its position, at
//! the characters of the kind found there (digits for numeric ids, letters for others; see
//! [`Range::split`]), so the streams spread over the keys as the listing learns where they are.
//! A range costs one request more than a stream over its keys would (its last, partial page).
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
pub const DEFAULT_LISTING_STREAMS: usize = 16;
/// Where a range is cut when the character at the cut is of no known kind: digits, capitals and
/// lowercase letters.
const SPLITS: &str = "123456789ANacegnt";
/// The characters a range is cut at after a key's character `next`: those of its kind (digits
/// for a digit, letters of its case for a letter; with the character after the last of the kind,
/// so that what follows them is a range of its own), else [`SPLITS`].
fn cuts_after(next: Option<char>) -> &'static str {
    match next {
        Some('0'..='9') => "123456789:",
        Some('a'..='z') => "cegikmoqsuwy{",
        Some('A'..='Z') => "CEGIKMOQSUWY[",
        _ => SPLITS,
    }
}

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
    /// Which request in flight is this range's (ranges come and go as they split and finish).
    #[serde(skip)]
    id: u64,
    #[serde(skip)]
    busy: bool,
}

impl Range {
    fn new(lo: Option<String>, hi: Option<String>) -> Range {
        Range {
            after: lo.as_deref().and_then(just_before),
            lo,
            hi,
            done: false,
            id: 0,
            busy: false,
        }
    }

    fn holds(&self, key: &str) -> bool {
        self.lo.as_deref().is_none_or(|lo| key >= lo) && !self.past(key)
    }

    fn past(&self, key: &str) -> bool {
        self.hi.as_deref().is_some_and(|hi| key >= hi)
    }

    /// Cuts what is left of a range that still had a full page into smaller ranges, one
    /// character deeper than where its position and its end part, at the characters of the same
    /// kind as the position's there (position `thumbs/10/6_320.jpg`, end `thumbs/2`: cuts
    /// `thumbs/11`, ..., `thumbs/19`, `thumbs/1:`). This range keeps `[position, first cut)`;
    /// the ranges after the cuts are returned. Nothing when no cut falls in between.
    fn split(&mut self) -> Vec<Range> {
        let Some(after) = self.after.as_deref() else {
            return Vec::new();
        };
        let common = match self.hi.as_deref() {
            Some(hi) => after
                .char_indices()
                .zip(hi.chars())
                .find(|((_, a), h)| a != h)
                .map_or(after.len().min(hi.len()), |((i, _), _)| i),
            None => 0,
        };
        let base_end = after[common..]
            .chars()
            .next()
            .map_or(common, |c| common + c.len_utf8());
        let base = &after[..base_end];
        let next = after[base_end..].chars().next();
        let cuts: Vec<String> = cuts_after(next)
            .chars()
            .map(|c| format!("{base}{c}"))
            .filter(|cut| cut.as_str() > after && !self.past(cut))
            .collect();
        let Some(first) = cuts.first().cloned() else {
            return Vec::new();
        };
        let hi = self.hi.replace(first);
        let ends = cuts.iter().skip(1).cloned().map(Some).chain([hi]);
        cuts.iter()
            .cloned()
            .zip(ends)
            .map(|(lo, hi)| Range::new(Some(lo), hi))
            .collect()
    }
}

type Page = Pin<Box<dyn Future<Output = (u64, Result<Vec<ObjectMeta>, StoreError>)> + Send>>;

pub(crate) struct Listing {
    store: Arc<dyn ObjectStore>,
    url: String,
    shape: ListingShape,
    /// The ranges not done: set from the cursor (or planned) on the first call.
    ranges: Option<Vec<Range>>,
    next_id: u64,
    in_flight: FuturesUnordered<Page>,
}

impl Listing {
    /// Opens `url`; an S3 listing is cut into ranges per `shape`, a local folder walked whole.
    pub(crate) async fn open(url: &str, shape: &ListingShape) -> Result<Listing, ImportError> {
        let store =
            recast_store::open_existing(url)
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
            next_id: 0,
            in_flight: FuturesUnordered::new(),
        }
    }

    fn add(&mut self, ranges: Vec<Range>) {
        let all = self.ranges.get_or_insert_with(Vec::new);
        for mut range in ranges {
            range.id = self.next_id;
            self.next_id += 1;
            all.push(range);
        }
    }

    /// Starts a request for each range neither done nor being listed, up to the streams.
    fn fill(&mut self) {
        let ranges = self.ranges.as_mut().expect("ranges are set before listing");
        for range in ranges.iter_mut() {
            if self.in_flight.len() >= self.shape.streams.max(1) {
                break;
            }
            if range.done || range.busy {
                continue;
            }
            range.busy = true;
            let store = Arc::clone(&self.store);
            let (id, after) = (range.id, range.after.clone());
            self.in_flight.push(Box::pin(async move {
                (id, store.list_page("", after.as_deref(), PAGE).await)
            }));
        }
    }

    /// Whether a range that still had a full page should be cut: while fewer ranges are open
    /// than a few per stream (so that every stream has one to list, and the cursor stays small).
    fn wants_more_ranges(&self) -> bool {
        let open = self.ranges.as_ref().map_or(0, Vec::len);
        self.shape.streams > 1 && open < 4 * self.shape.streams
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
            self.add(ranges);
        }
        loop {
            self.fill();
            let Some((id, page)) = self.in_flight.next().await else {
                return Ok(None);
            };
            let page = page.map_err(|source| ImportError::Store {
                key: self.url.clone(),
                source,
            })?;
            let split = self.wants_more_ranges();
            let ranges = self.ranges.as_mut().expect("ranges are set");
            let at = ranges
                .iter()
                .position(|r| r.id == id)
                .expect("a page answers a range of the listing");
            let range = &mut ranges[at];
            range.busy = false;
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
            let cut = if split && !range.done {
                range.split()
            } else {
                Vec::new()
            };
            if self.shape.streams > 1 {
                // One stream keeps its one range: its cursor stays the last key.
                ranges.retain(|r| !r.done);
            }
            self.add(cut);
            let Some(Ok(first)) = records.first() else {
                continue;
            };
            let name = format!("{} from {}", self.url, first.key);
            return Ok(Some(Unit {
                name,
                cursor: encode(self.ranges.as_deref().unwrap_or_default()),
                records: Box::new(records.into_iter()),
            }));
        }
    }
}

/// The ranges a listing of `shape` starts with: the whole key space, cut (when more than one
/// stream) where each prefix's keys start and end.
fn plan(shape: &ListingShape) -> Vec<Range> {
    if shape.streams <= 1 {
        return vec![Range::new(None, None)];
    }
    let mut cuts: Vec<String> = Vec::new();
    for p in shape.prefixes.iter().filter(|p| !p.is_empty()) {
        cuts.push(p.clone());
        cuts.extend(after_all(p));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(cuts.len() + 1);
    let mut lo: Option<String> = None;
    for cut in cuts.into_iter().map(Some).chain([None]) {
        ranges.push(Range::new(lo.take(), cut.clone()));
        lo = cut;
    }
    ranges
}

/// The least string above every key that starts with `prefix` (`photos0` for `photos/`), if
/// its last character can be raised.
fn after_all(prefix: &str) -> Option<String> {
    let mut chars = prefix.chars();
    let last = chars.next_back()?;
    let raised = char::from_u32(last as u32 + 1)?;
    Some(format!("{}{raised}", chars.as_str()))
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
            after: Some(cursor.to_owned()),
            ..Range::new(None, None)
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
        assert_eq!(ranges.len(), 5, "{ranges:?}");
        assert_eq!(ranges[1].lo.as_deref(), Some("photos/"));
        assert_eq!(ranges[1].hi.as_deref(), Some("photos0"));
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
    fn a_long_range_splits_after_its_position_and_the_pieces_meet() {
        let mut range = Range {
            after: Some("thumbs/10/612_320.jpg".into()),
            ..Range::new(Some("thumbs/1".into()), Some("thumbs/2".into()))
        };
        let pieces = range.split();
        assert_eq!(range.hi.as_deref(), Some("thumbs/11"));
        assert_eq!(pieces[0].lo.as_deref(), Some("thumbs/11"));
        // Digits after a digit, and what follows the digits in a range of its own.
        assert_eq!(pieces.len(), 10, "{pieces:?}");
        assert_eq!(pieces.last().unwrap().lo.as_deref(), Some("thumbs/1:"));
        assert_eq!(pieces.last().unwrap().hi.as_deref(), Some("thumbs/2"));
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].hi, pair[1].lo);
        }
        // One level deeper for the piece that keeps the position.
        let deeper = range.split();
        assert_eq!(range.hi.as_deref(), Some("thumbs/101"));
        assert_eq!(deeper.last().unwrap().hi.as_deref(), Some("thumbs/11"));
        // A range not started yet has no position to cut after.
        assert!(Range::new(None, Some("a".into())).split().is_empty());
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
