//! recast's pure domain: identifiers, run settings, job messages and their outcomes, the photo
//! state machine, and the plan and cost model.
//!
//! Nothing here does I/O or knows an SDK; every other crate depends on these types.

mod budget;
mod ids;
mod job;
mod outcome;
mod pattern;
mod plan;
mod prices;
mod settings;
mod state;
mod tally;

pub use budget::{BudgetOverrides, Budgets, Share};
pub use ids::{CoupleId, PhotoId, RunId};
pub use job::{JobMessage, JobPhoto, MessageError, JOB_MESSAGE_VERSION};
pub use outcome::{JobOutcome, UnknownOutcome};
pub use pattern::{KeyMatch, KeyPattern, PatternError, Var};
pub use plan::{
    plan, CatalogTotals, Fleet, Footprint, Limit, LimitUse, Plan, PlanBudgets, PlanInput,
    SampleMeasure, DEFAULT_DB_STATEMENTS_PER_SECOND, PIPELINE_EFFICIENCY, TAIL_SECONDS,
};
pub use prices::{Cost, InstancePrice, PriceError, PriceTable, BILLED_GB};
pub use settings::{
    OriginalsPolicy, RunSettings, SettingsError, DEFAULT_MAX_QUALITY, DEFAULT_TARGET_SCORE,
};
pub use state::{advance_after_deletes, webp_key, FailureReason, KeptReason, PhotoState, Step};
pub use tally::{Tally, TallySnapshot};
