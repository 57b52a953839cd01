//! Errors of the lifecycle layer. The messages use the words engines look
//! for ("does not exist", "container not running", ...).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '-', '.', '+'")]
    InvalidId(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("{0}")]
    Config(String),
    #[error("cannot {op} container {id} in state {status}")]
    WrongState {
        op: &'static str,
        id: String,
        status: super::state::Status,
    },
    #[error("container not running")]
    NotRunning,
    /// `events` of a stopped container (runc's words).
    #[error("container with id {0} is not running")]
    Stopped(String),
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("{0}")]
    Launch(#[from] crate::launch::Error),
    #[error("{0}")]
    Cgroup(#[from] crate::cgroups::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
