//! Restore during an incident, from the object store alone. PostgreSQL: choose the base backup for
//! a target time, check it lies inside the recoverable window, download and extract the base
//! backup, write the recovery settings (`restore_command = openova wal-get ...`), and optionally
//! start a local PostgreSQL and wait until it reached the target. Planning is pure
//! ([`postgres::plan`]); the rest is I/O. Velero: offline ([`velero`], the objects as YAML files) or
//! into a cluster through Velero itself ([`into_cluster`]).

pub mod into_cluster;
pub mod postgres;
pub mod start;
pub mod velero;
