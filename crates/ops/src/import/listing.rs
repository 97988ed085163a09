//! A live listing of a store (`s3://BUCKET/PREFIX`, `file:///DIR`): one unit per page of 1,000
//! keys, the last key of a page being the cursor of the next (ListObjectsV2 `start-after`).

use std::sync::Arc;

use async_trait::async_trait;
use recast_store::ObjectStore;

use super::source::{Record, Source, Unit};
use super::ImportError;

/// Keys per listing page: S3's most per ListObjectsV2 request.
const PAGE: u32 = 1000;

pub(crate) struct Listing {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Listing {
    pub(crate) async fn open(url: &str) -> Result<Listing, ImportError> {
        let store = recast_store::open(url)
            .await
            .map_err(|source| ImportError::Store {
                key: url.to_owned(),
                source,
            })?;
        Ok(Listing {
            store,
            url: url.to_owned(),
        })
    }
}

/// A listing of a store already open (`seed` imports what it just wrote this way); `name` is
/// what messages call it.
pub fn listing_of(store: Arc<dyn ObjectStore>, name: &str) -> Box<dyn Source> {
    Box::new(Listing {
        store,
        url: name.to_owned(),
    })
}

#[async_trait]
impl Source for Listing {
    async fn unit(
        &mut self,
        _index: i64,
        cursor: Option<&str>,
    ) -> Result<Option<Unit>, ImportError> {
        let page = self
            .store
            .list_page("", cursor, PAGE)
            .await
            .map_err(|source| ImportError::Store {
                key: self.url.clone(),
                source,
            })?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        let cursor = Some(last.key.clone());
        let name = format!("{} from {}", self.url, page[0].key);
        let records = page.into_iter().map(|m| {
            Ok(Record {
                key: m.key,
                bytes: m.size,
                given: None,
            })
        });
        Ok(Some(Unit {
            name,
            cursor,
            records: Box::new(records.collect::<Vec<_>>().into_iter()),
        }))
    }
}
