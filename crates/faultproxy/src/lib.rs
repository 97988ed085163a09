//! A fault-injecting HTTP proxy for tests: it sits between recast and the real S3/SQS server
//! (moto on 127.0.0.1), forwards every request, and by seeded rates (or on demand) turns some of
//! them into faults that a real server cannot be made to produce at will:
//!
//! - `503 SlowDown` answered without forwarding (throttling);
//! - `500` answered *after* the request took effect upstream (a PUT or DeleteObjects that
//!   succeeded but looks failed; for SQS, a ReceiveMessage whose answer is lost);
//! - the connection cut mid-response (after the request took effect);
//! - a GET body with one byte flipped (only where the response carries a CRC32C the client checks);
//! - added latency, and responses held back for a set time (to widen a window for a SIGKILL);
//! - refused connections while "down" (a dead store or queue server; moto cannot be restarted
//!   without losing its state, so this stands in for its restart).
//!
//! Every injected fault is counted ([`FaultCounts`]) so a test can print what it survived.

mod plan;
mod proxy;

pub use plan::{Fault, FaultCounts, FaultPlan, Op};
pub use proxy::FaultProxy;
