//! The `openova` binary: parses arguments, runs the library, maps the result to an exit code.

use clap::Parser;
use openova::cli::{self, Outcome};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        // A restore_command that cannot even be parsed must not read as "WAL not found" (which
        // would end recovery early): wal-get fails with its error code instead.
        Err(e) if std::env::args().nth(1).as_deref() == Some("wal-get") && e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(Outcome::WalError.code());
        }
        Err(e) => e.exit(),
    };
    openova::report::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Outcome::Error.code());
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(Outcome::Error.code())
        }
    }
}
