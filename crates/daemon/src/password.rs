//! Where a key file's password comes from: a file named on the command line or in the account's
//! configuration, the `ENTENTE_PASSWORD` environment variable, or a prompt on the terminal. Never
//! the command line itself (it would show in the process list and the shell's history).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The environment variable a password may come from.
pub const PASSWORD_ENV: &str = "ENTENTE_PASSWORD";

/// Why no password could be had.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password file could not be read.
    #[error("password file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Nothing to read it from.
    #[error(
        "no password for {0}: give --password-file FILE, set {PASSWORD_ENV}, or run on a terminal to be asked"
    )]
    Unavailable(String),
    /// The two entries of a new password differ.
    #[error("the passwords do not match")]
    Mismatch,
    /// An empty password for a new key file.
    #[error("an empty password protects nothing; choose one")]
    Empty,
}

/// The places a password is looked for, in order.
#[derive(Debug, Clone, Default)]
pub struct PasswordSource {
    /// A file given on the command line.
    pub file: Option<PathBuf>,
    /// A file named in the account's configuration.
    pub account_file: Option<PathBuf>,
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, PasswordError> {
    let text = std::fs::read_to_string(path).map_err(|source| PasswordError::File {
        path: path.display().to_string(),
        source,
    })?;
    // One line: the trailing newline an editor or `echo` adds is not part of it.
    Ok(Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

impl PasswordSource {
    /// The password of an existing key file (`what` names it in a prompt).
    pub fn existing(&self, what: &str) -> Result<Zeroizing<String>, PasswordError> {
        if let Some(p) = self.file.as_deref().or(self.account_file.as_deref()) {
            return read_file(p);
        }
        if let Ok(p) = std::env::var(PASSWORD_ENV) {
            return Ok(Zeroizing::new(p));
        }
        rpassword::prompt_password(format!("Password for {what}: "))
            .map(Zeroizing::new)
            .map_err(|_| PasswordError::Unavailable(what.to_string()))
    }

    /// A password for a new key file: asked twice when prompted; never empty.
    pub fn new_password(&self, what: &str) -> Result<Zeroizing<String>, PasswordError> {
        let password =
            if self.file.is_some() || self.account_file.is_some() || std::env::var_os(PASSWORD_ENV).is_some()
            {
                self.existing(what)?
            } else {
                let first = rpassword::prompt_password(format!("New password for {what}: "))
                    .map(Zeroizing::new)
                    .map_err(|_| PasswordError::Unavailable(what.to_string()))?;
                let again = rpassword::prompt_password("Repeat it: ")
                    .map(Zeroizing::new)
                    .map_err(|_| PasswordError::Unavailable(what.to_string()))?;
                if *first != *again {
                    return Err(PasswordError::Mismatch);
                }
                first
            };
        if password.is_empty() {
            return Err(PasswordError::Empty);
        }
        Ok(password)
    }
}
