//! velero
