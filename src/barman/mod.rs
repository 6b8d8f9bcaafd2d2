//! The Barman Cloud catalog, as CNPG's barman-cloud tools write it under
//! `PREFIX/SERVER/{base,wals}/`: `backup.info` files, WAL names, timeline histories, and what they
//! make restorable (the recoverable window) or not (WAL gaps). Parsing and analysis are pure; only
//! [`catalog::load`] reads the store.

pub mod catalog;
pub mod info;
pub mod runs;
pub mod wal;
pub mod window;

pub use catalog::{BaseBackup, ServerCatalog, discover_servers, load, load_backups};
pub use info::{BackupInfo, BackupStatus};
pub use window::{Gap, Window, analyse};

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
