//! Hooks the runtime runs itself (prestart, createRuntime, poststart,
//! poststop): the state JSON on stdin, in the bundle directory, killed at
//! their timeout.

use super::error::{Error, Result};
use oci_spec::runtime::Hook;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `hook` in `bundle` (as runc runs hooks) with only fds 0-2: none the
/// caller left open to mica reaches it.
pub fn run(hook: &Hook, state_json: &[u8], bundle: &Path) -> Result<()> {
    let path = hook.path();
    let mut cmd = Command::new(path);
    // The bundle may be gone by poststop (a removed launch bundle).
    cmd.current_dir(if bundle.is_dir() {
        bundle
    } else {
        Path::new("/")
    });
    // SAFETY: close_range is a plain syscall, async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            super::sys::close_range_cloexec(3)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    if let Some(args) = hook.args() {
        if let Some((first, rest)) = args.split_first() {
            use std::os::unix::process::CommandExt;
            cmd.arg0(first);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Hook(format!("{}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that doesn't read its stdin is fine.
        let _ = stdin.write_all(state_json);
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Error::Hook(format!("{}: {status}", path.display())));
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Hook(format!("{}: {e}", path.display()))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Hook(format!("{}: timed out", path.display())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Run a list of hooks in order, stopping at the first failure.
pub fn run_all(hooks: Option<&Vec<Hook>>, state_json: &[u8], bundle: &Path) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run(h, state_json, bundle)?;
    }
    Ok(())
}
