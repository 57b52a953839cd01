//! Errors of the launch layer: a bad config, a failed syscall in the parent,
//! or a step the child reported.

use super::sync::Step;
use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: Errno },
    /// A step inside the container's setup failed.
    #[error("{}", child_message(*.step, .detail, *.errno))]
    Child {
        step: Step,
        detail: String,
        errno: Errno,
    },
    #[error("container setup: {0}")]
    Protocol(String),
    #[error("{0}")]
    Cgroup(#[from] crate::cgroups::Error),
    #[error("hook: {0}")]
    Hook(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> Error {
    let what = what.into();
    move |errno| Error::Sys { what, errno }
}

/// The wording engines look for: runc's for exec failures.
fn child_message(step: Step, detail: &str, errno: Errno) -> String {
    let desc = errno.desc().to_lowercase();
    match step {
        Step::ExecNotFound if detail.contains('/') => {
            format!("exec: \"{detail}\": stat {detail}: no such file or directory")
        }
        Step::ExecNotFound => format!("exec: \"{detail}\": executable file not found in $PATH"),
        Step::ExecPermission => format!("exec: \"{detail}\": permission denied"),
        // Inside its memory cgroup, at its limit (the kernel may also just
        // kill it: see `Spawned::died_in_setup`).
        _ if errno == Errno::ENOMEM => format!(
            "{}: {desc} (the memory limit may be too low to set the container up)",
            what(step, detail)
        ),
        _ => format!("{}: {desc}", what(step, detail)),
    }
}

fn what(step: Step, detail: &str) -> String {
    if detail.is_empty() {
        step.describe().to_string()
    } else {
        format!("{} {detail}", step.describe())
    }
}
