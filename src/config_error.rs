//! A problem in the config files, named by file, key and reason
//! (`routes/caac.yaml: operations.contacts.get.path: must contain {member_id}`).
//!
//! Every part that checks its own block of the files returns these: the loader
//! ([`crate::config`]), the `events:` and `cluster:` settings, the TLS block of a connection.
//! They live apart from the loader so that those parts, which the loader builds on, do not
//! import it back.

use std::path::{Path, PathBuf};

/// A config problem: the file, the dotted key (empty for the whole file) and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {key}: {reason}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A config that loads but deserves a look (an expiring client certificate, a CA that has
/// expired): printed by `switchboard check`, logged at start and on every reload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {key}: {reason}", file.display())]
pub struct ConfigWarning {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}
