//! DR drills, the main job: restore every point a drill names for real, check it, measure RTO
//! and RPO, and keep the record in the bucket so that it survives the loss of the cluster.
//!
//! - [`def`]: drill definitions (`restore-drills/*.yaml`) and their validation;
//! - [`points`]: `oldest`, `random`, `latest` resolved against the recoverable window (pure);
//! - [`check`]: SQL checks through `psql` on a restored server;
//! - [`run`]: the runner and the private workspace it cleans up;
//! - [`report`]: the JSON report (`openova.drill/v1`), Markdown and JUnit XML;
//! - [`record`]: the reports and the evidence bundle in the bucket, and `drill history`.
//!
//! It does not decide what a restore is (that is `restore`) nor read the catalog itself (`catalog`).

pub mod check;
pub mod def;
pub mod history;
pub mod in_cluster;
pub mod points;
pub mod record;
pub mod report;
pub mod run;

pub use def::{Drill, Loaded};
pub use report::Report;
