//! Running the built `openova` binary against a test server, as a user would.

use crate::support::S3Server;
use std::path::Path;
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `openova ARGS` with the server's credentials in the environment (nothing from the machine's).
pub fn openova_cmd(s3: Option<&S3Server>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openova"));
    cmd.args(args)
        .env_remove("OPENOVA_S3_ENDPOINT")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(s3) = s3 {
        s3.apply_env(&mut cmd);
    }
    cmd
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `openova ARGS` with the server's credentials in the environment.
pub fn openova(s3: Option<&S3Server>, args: &[&str]) -> Run {
    openova_cmd(s3, args).output().expect("run openova").into()
}

/// Writes a policy file for a PostgreSQL server archived into `s3`.
pub fn postgres_policy(dir: &Path, s3: &S3Server, server: &str, window: &str, rpo: &str) -> String {
    let text = format!(
        "kind: PostgresPolicy\nname: {server}\ncluster: {{ namespace: databases, name: {server} }}\n\
         serverName: {server}\nbaseBackupSchedule: \"0 0 1 1 *\"\nrecoveryWindow: {window}\nrpo: {rpo}\n\
         storage: {{ url: \"{}\", endpoint: \"{}\" }}\n",
        s3.url("cnpg"),
        s3.endpoint()
    );
    let path = dir.join(format!("{server}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}
