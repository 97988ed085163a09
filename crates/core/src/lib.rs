//! recast's pure domain: identifiers, run settings, job messages and the photo state machine.
//!
//! Nothing here does I/O or knows an SDK; every other crate depends on these types.

mod budget;
mod ids;
mod job;
mod settings;
mod state;
mod tally;

pub use budget::{BudgetOverrides, Budgets, Share};
pub use ids::{CoupleId, PhotoId, RunId};
pub use job::{JobMessage, JobPhoto, MessageError, JOB_MESSAGE_VERSION};
pub use settings::{OriginalsPolicy, RunSettings, SettingsError, DEFAULT_MIN_SCORE};
pub use state::{advance_after_deletes, webp_key, FailureReason, KeptReason, PhotoState, Step};
pub use tally::{Tally, TallySnapshot};
