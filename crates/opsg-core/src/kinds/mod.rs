//! The typed body of each record kind, in pipeline order.
//!
//! Each module owns one kind and mirrors `schemas/<kind>.schema.json`. Bodies are additive within a
//! major version: new optional members may appear, so readers do not deny unknown fields (tests
//! do, to catch unplanned ones). Types shared by several kinds (targets, actions, outcomes) live
//! where they are first produced and are re-exported here.

pub mod decision;
pub mod execution;
pub mod finding;
pub mod observation;
pub mod plan;
pub mod report;
pub mod verification;

pub use decision::DecisionBody;
pub use execution::ExecutionBody;
pub use finding::FindingBody;
pub use observation::ObservationBody;
pub use plan::PlanBody;
pub use report::ReportBody;
pub use verification::VerificationBody;
