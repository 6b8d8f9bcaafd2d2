//! The `openova` binary: parses arguments, runs the library, maps the result to an exit code.

use clap::Parser;
use openova::cli::{self, Outcome};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    openova::report::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Outcome::Error as u8);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(Outcome::Error as u8)
        }
    }
}
