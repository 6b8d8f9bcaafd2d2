//! Integration tests: one test binary, real servers started by `tests/support` (an S3 server,
//! PostgreSQL with barman-cloud archiving). Store-facing tests run on every installed S3 server.

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod harness;
mod catalog;
mod cli;
mod store;
mod velero;
mod capture;
mod errors;
