#[path = "support/mod.rs"]
mod support;
#[path = "it/harness.rs"]
mod harness;
