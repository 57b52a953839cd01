//! The OCI lifecycle: the state directory and create / start / kill /
//! delete / exec / ps / pause / resume / events. Knows nothing about
//! mounts: the launch layer does everything between clone and exec.

pub mod create;
pub mod error;
pub mod events;
pub mod exec;
pub mod ops;
pub(crate) mod reuse;
pub mod state;
mod tty;

pub use create::{create, load_spec, run, run_keep, run_spec, start, CreateOptions};
pub use error::{Error, Result};
pub use events::{events, EventsOptions};
pub use exec::{exec, ExecOptions};
pub use ops::{
    delete, kill, list, pause, pids, remove_bundle, resume, state, update, BUNDLE_OWNED_ANNOTATION,
};
