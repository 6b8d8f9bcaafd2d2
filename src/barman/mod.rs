//! barman
