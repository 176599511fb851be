//! [`Error`]: why a broker could not be built or served.

/// The error type of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting the user gave is wrong (a key file that cannot be read, a bad broker URL).
    #[error("{0}")]
    Config(String),
    /// The broker refused a publication or subscription of the application (not a
    /// destination it takes, a budget crossed, a subscription the session refused).
    #[error("refused: {0}")]
    Refused(String),
    /// The listener failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
