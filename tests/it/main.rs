//! Integration tests: one test binary, real servers started by `tests/support` (an S3 server,
//! PostgreSQL with barman-cloud archiving). Store-facing tests run on every installed S3 server.

#[path = "../support/mod.rs"]
mod support;

mod capture;
mod catalog;
mod cli;
mod cluster_apply;
mod cluster_cnpg;
mod cluster_drill;
mod cluster_velero;
mod drill;
mod drill_page;
mod errors;
mod faults;
mod golden_archive;
mod harness;
mod kube;
mod render;
mod restore;
mod restore_base;
mod restore_velero;
mod retention;
mod retention_safety;
mod store;
mod velero;
mod wal_get;
mod wal_records;
