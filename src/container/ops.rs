//! kill, delete, state, list, ps, pause, resume.

use super::error::{Error, Result};
use super::state::{Dir, State, Status};
use crate::launch::hooks;
use std::path::Path;
use std::time::{Duration, Instant};

/// "TERM", "SIGTERM", "15", "RTMIN+1" -> signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        // 0 sends nothing and only checks that the process is there, as
        // kill(2) and runc's `kill ID 0` do.
        if (0..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Signal(s.to_string()));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up.clone()
    } else {
        format!("SIG{up}")
    };
    if let Some(rest) = name.strip_prefix("SIGRTMIN+") {
        if let Ok(n) = rest.parse::<i32>() {
            if libc::SIGRTMIN() + n <= libc::SIGRTMAX() {
                return Ok(libc::SIGRTMIN() + n);
            }
        }
    }
    if let Some(rest) = name.strip_prefix("SIGRTMAX-") {
        if let Ok(n) = rest.parse::<i32>() {
            if libc::SIGRTMAX() - n >= libc::SIGRTMIN() {
                return Ok(libc::SIGRTMAX() - n);
            }
        }
    }
    match name.as_str() {
        "SIGRTMIN" => return Ok(libc::SIGRTMIN()),
        "SIGRTMAX" => return Ok(libc::SIGRTMAX()),
        _ => {}
    }
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Signal(s.to_string()))
}

pub(super) fn load(dir: &Dir, id: &str) -> Result<State> {
    dir.load()?.ok_or_else(|| Error::NotFound(id.to_string()))
}

pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let dir = Dir::open(root, id)?;
    let st = load(&dir, id)?;
    match st.status() {
        Status::Stopped => return Err(Error::NotRunning),
        Status::Creating => {
            return Err(Error::WrongState {
                op: "kill",
                id: id.to_string(),
                status: Status::Creating,
            })
        }
        _ => {}
    }
    if all {
        if let Some(cg) = &st.cgroup {
            for pid in cg.pids()? {
                unsafe { libc::kill(pid, sig) };
            }
            if sig == libc::SIGKILL {
                // A frozen process only dies once thawed.
                let _ = cg.thaw();
            }
            return Ok(());
        }
    }
    if unsafe { libc::kill(st.init.pid, sig) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Err(Error::Other("no such process".into()));
        }
        return Err(Error::io(format!("kill {}", st.init.pid), e));
    }
    Ok(())
}

/// Wait (bounded) until the recorded process is gone.
fn wait_gone(st: &State, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while st.init.alive() {
        if Instant::now() > end {
            return false;
        }
        // Reap it if it is our child (`run`).
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(st.init.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Undo everything a container has: its processes, its cgroup, its state.
/// Works on whatever a crashed `create` left.
pub fn destroy(dir: &Dir, st: &State) -> Result<()> {
    if st.init.alive() {
        unsafe { libc::kill(st.init.pid, libc::SIGKILL) };
        if let Some(cg) = &st.cgroup {
            let _ = cg.thaw();
        }
        wait_gone(st, Duration::from_secs(5));
    }
    if let Some(cg) = &st.cgroup {
        cg.destroy()?;
    }
    dir.remove()?;
    // A bundle mica made for this container (`mica launch`) goes with it.
    if st
        .annotations
        .get(BUNDLE_OWNED_ANNOTATION)
        .map(String::as_str)
        == Some("true")
    {
        remove_bundle(&st.bundle);
    }
    Ok(())
}

/// Remove a bundle `mica launch` wrote. `<root>/.bundles` stays, as the
/// state root itself does: making and removing it was a directory created
/// and removed on ext4 per launch (~0.15 ms here).
pub fn remove_bundle(bundle: &Path) {
    // Usually a directory holding config.json alone: kept for the next
    // launch (see `reuse`).
    if super::reuse::retire(bundle, super::reuse::BUNDLE_FILES) {
        return;
    }
    let _ = std::fs::remove_file(bundle.join("config.json"));
    if std::fs::remove_dir(bundle).is_err() {
        let _ = std::fs::remove_dir_all(bundle);
    }
}

/// Set by `mica launch` on the bundles it writes: `delete` removes them.
pub const BUNDLE_OWNED_ANNOTATION: &str = "org.mica.bundle.owned";

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match Dir::open(root, id) {
        Ok(dir) => dir,
        // As runc: `delete --force` of a container that is already gone
        // succeeds (engines call it to clean up after a failed create).
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = match dir.load() {
        Ok(Some(st)) => st,
        // Killed before its first state write: nothing else exists yet.
        Ok(None) => return dir.remove(),
        Err(e) if force => {
            crate::log::warn(&format!("{e}; removing the state dir"));
            return dir.remove();
        }
        Err(e) => return Err(e),
    };
    let status = st.status();
    match status {
        Status::Stopped => {}
        Status::Creating | Status::Created | Status::Running | Status::Paused if force => {}
        s => {
            return Err(Error::Other(format!(
                "cannot delete container {id} that is not stopped: {s}"
            )))
        }
    }
    destroy(&dir, &st)?;
    if status != Status::Creating && !st.poststop.is_empty() {
        let json = st.hook_json(Status::Stopped, 0);
        for h in &st.poststop {
            // poststop failures are warnings (runtime spec).
            if let Err(e) = hooks::run(h, &json, &st.bundle) {
                crate::log::warn(&format!("poststop hook: {e}"));
            }
        }
    }
    Ok(())
}

pub fn state(root: &Path, id: &str) -> Result<serde_json::Value> {
    let dir = Dir::open(root, id)?;
    Ok(with_owner(load(&dir, id)?.oci(), &dir, &host_passwd()))
}

fn host_passwd() -> String {
    std::fs::read_to_string("/etc/passwd").unwrap_or_default()
}

/// The OCI state with `owner` filled in as runc does: the user owning the
/// container's state directory, by name from the host's /etc/passwd
/// (`passwd`), else `#UID`.
fn with_owner(mut v: serde_json::Value, dir: &Dir, passwd: &str) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(&dir.path) {
        let uid = m.uid().to_string();
        let name = crate::spec::passwd_entry(passwd, 2, &uid)
            .map(|f| f[0].to_string())
            .unwrap_or_else(|| format!("#{uid}"));
        v["owner"] = name.into();
    }
    v
}

/// Every container under `root` (unreadable ones are skipped).
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("read {}", root.display()), e)),
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    // Read once for the whole list.
    let passwd = host_passwd();
    for id in ids {
        if let Ok(dir) = Dir::open(root, &id) {
            if let Ok(Some(st)) = dir.load() {
                out.push(with_owner(st.oci(), &dir, &passwd));
            }
        }
    }
    Ok(out)
}

pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let dir = Dir::open(root, id)?;
    let st = load(&dir, id)?;
    match &st.cgroup {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(if st.init.alive() {
            vec![st.init.pid]
        } else {
            vec![]
        }),
    }
}

/// Write new cgroup limits for a created, running or paused container
/// (runc's `update`); only what `r` sets changes, and only what runc's update
/// changes: memory, cpu, cpuset, pids (0 leaves it), the block IO weight and
/// unified. Device rules, hugepages, network and rdma in `r` (containerd
/// sends the spec's whole resources) are left as they are: rewriting a v1
/// device list cuts a running container's device access for a moment.
pub fn update(root: &Path, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = load(&dir, id)?;
    let mut r = r.clone();
    r.set_devices(None)
        .set_hugepage_limits(None)
        .set_network(None)
        .set_rdma(None);
    if r.pids().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
        let mut b = oci_spec::runtime::LinuxBlockIo::default();
        b.set_weight(Some(weight));
        r.set_block_io(Some(b));
    } else {
        r.set_block_io(None);
    }
    match (st.status(), &st.cgroup) {
        (Status::Created | Status::Running | Status::Paused, Some(cg)) => {
            // A swap limit alone pairs with the memory limit in force (as
            // runc's update takes it), which the check needs.
            if let Some(mut m) = *r.memory() {
                if m.swap().is_some() && m.limit().is_none() {
                    m.set_limit(Some(cg.memory_limit()?));
                    r.set_memory(Some(m));
                }
            }
            Ok(cg.apply(&r)?)
        }
        (status, _) => Err(Error::WrongState {
            op: "update",
            id: id.to_string(),
            status,
        }),
    }
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = load(&dir, id)?;
    match (st.status(), &st.cgroup) {
        (Status::Running, Some(cg)) => Ok(cg.freeze()?),
        (status, _) => Err(Error::WrongState {
            op: "pause",
            id: id.to_string(),
            status,
        }),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let st = load(&dir, id)?;
    match (st.status(), &st.cgroup) {
        (Status::Paused, Some(cg)) => Ok(cg.thaw()?),
        (status, _) => Err(Error::WrongState {
            op: "resume",
            id: id.to_string(),
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("99").is_err());
    }
}
