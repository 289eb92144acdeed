//! The one error type of the public API.

use crate::diag::Diagnostics;
use crate::request::RequestError;

/// Everything the public API can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy set is invalid: every error (and warning) found, each at `file:line:col` with a stable code.
    #[error("invalid policy set:\n{0}")]
    Invalid(Diagnostics),
    /// A request is invalid; the error names the field.
    #[error("invalid request: {0}")]
    Request(RequestError),
    /// A SQL table mapping for [`crate::Plan::to_sql`] is invalid; the error names the field.
    #[error("{0}")]
    SqlMapping(#[from] crate::plan::sql::SqlMappingError),
}

impl Error {
    /// The diagnostics of an invalid policy set.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            Error::Invalid(d) => Some(d),
            Error::Request(_) | Error::SqlMapping(_) => None,
        }
    }
}
