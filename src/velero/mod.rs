//! The Velero catalog, read from the object store alone (`PREFIX/backups/NAME/...`), and the
//! inspection of a backup tarball. Velero's own layout is documented in DESIGN.md; this module
//! reads it tolerantly (unknown fields are ignored: Velero adds fields over time).

pub mod backup;
pub mod tarball;

pub use backup::{VeleroBackup, load};
pub use tarball::{ResourceCount, inspect_tarball};
