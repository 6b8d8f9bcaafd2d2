//! openova: backup and disaster-recovery tool of the openova platform.
//!
//! Velero backs up the Kubernetes objects, CloudNativePG (through Barman Cloud) backs up
//! PostgreSQL; both write to an S3-compatible store (Cloudflare R2 in production). openova reads
//! what they wrote, from the object store alone, and judges whether it is restorable.

pub mod backup;
pub mod barman;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod cron;
pub mod drill;
pub mod location;
pub mod policy;
pub mod render;
pub mod report;
pub mod restore;
pub mod retention;
pub mod sparse;
pub mod status;
pub mod store;
pub mod velero;
pub mod wal;
