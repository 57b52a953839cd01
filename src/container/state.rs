//! The state directory: `<root>/<id>/state.json`, written atomically under a
//! per-container lock. What is about to be created is recorded before it is
//! created, so `delete --force` can always undo it. Directories and files
//! are reused rather than made anew per container ([`super::reuse`]).

use super::error::{Error, Result};
use super::reuse;
use crate::cgroups::Cgroup;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// A process identified by pid and start time, so a reused pid is never
/// mistaken for ours.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    pub fn of(pid: i32) -> Proc {
        Proc {
            pid,
            start: proc_stat(pid).map(|s| s.1).unwrap_or(0),
        }
    }
    /// Alive and not a zombie, and the same process we recorded.
    pub fn alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some((state, start)) => {
                state != 'Z' && state != 'X' && (self.start == 0 || start == self.start)
            }
            None => false,
        }
    }
}

/// (state letter, start time) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = crate::kfile::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The stored phase; [`State::status`] derives the live one.
    pub phase: Status,
    /// The mica process creating the container (while `phase` is creating).
    pub creator: Proc,
    /// The container's init process (0 until cloned).
    pub init: Proc,
    pub cgroup: Option<Cgroup>,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    #[serde(default)]
    pub oci_version: String,
    /// Created with `--no-new-keyring`: its processes keep the caller's.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// The name of a container's session keyring (runc's).
pub fn session_keyring(id: &str) -> String {
    format!("_ses.{id}")
}

impl State {
    /// The live status: the stored phase checked against the processes.
    pub fn status(&self) -> Status {
        match self.phase {
            Status::Creating if self.creator.alive() => Status::Creating,
            Status::Creating => Status::Stopped,
            _ if !self.init.alive() => Status::Stopped,
            Status::Running => match &self.cgroup {
                Some(cg) if cg.is_frozen().unwrap_or(false) => Status::Paused,
                _ => Status::Running,
            },
            s => s,
        }
    }

    /// The OCI state as the runtime spec defines it.
    pub fn oci(&self) -> serde_json::Value {
        let status = self.status();
        let pid = match status {
            Status::Stopped => 0,
            _ => self.init.pid,
        };
        serde_json::json!({
            "ociVersion": if self.oci_version.is_empty() { "1.2.0" } else { &self.oci_version },
            "id": self.id,
            "status": status.to_string(),
            "pid": pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }

    /// The state passed to hooks: the OCI fields with an explicit status.
    pub fn hook_json(&self, status: Status, pid: i32) -> Vec<u8> {
        let mut v = self.oci();
        v["status"] = status.to_string().into();
        v["pid"] = pid.into();
        let o = v.as_object_mut().expect("object");
        o.remove("rootfs");
        o.remove("created");
        o.remove("owner");
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// The state directory of one container, locked while this value lives.
pub struct Dir {
    pub path: PathBuf,
    _lock: File,
}

pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl Dir {
    /// Make a new container's state dir; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        // Private, as runc's: states name bundles, pids, cgroups and hooks.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        }
        let path = root.join(id);
        match reuse::claim(root, &path) {
            Ok(lock) => Ok(Dir { path, _lock: lock }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::io(format!("create {}", path.display()), e)),
        }
    }

    /// Open and lock an existing container's state dir.
    pub fn open(root: &Path, id: &str) -> Result<Dir> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match reuse::lock_dir(&path, true) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("lock {}", path.display()), e)),
        };
        // It may have been deleted while we waited for the lock, and its
        // directory reused for another container.
        if !reuse::same_file(&lock, &path) {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(Dir { path, _lock: lock })
    }

    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    /// Read the state; `None` when it was never written (a create killed
    /// right after making or reusing the dir, or a delete killed while
    /// moving it to `@free`).
    pub fn load(&self) -> Result<Option<State>> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", p.display()), e)),
        }
    }

    /// Write the state atomically: the spare file is written, then swapped
    /// with `state.json`; it keeps the previous state, and the next save
    /// writes over it (see [`reuse`]: no inode made per save).
    pub fn save(&self, st: &State) -> Result<()> {
        let p = self.state_path();
        // Sized once: a state is a few KiB, and regrowing the buffer while
        // serializing showed in profiles.
        let mut data = Vec::with_capacity(8192);
        serde_json::to_writer(&mut data, st)
            .map_err(|e| Error::Corrupt(p.display().to_string(), e.to_string()))?;
        reuse::write_swap(&self.path, &p, &data)
            .map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// Remove the container's directory: kept for a later `create` when it
    /// holds state files only (see [`reuse`]), else removed. The lock is
    /// let go once the directory is no longer this container's.
    pub fn remove(&self) -> Result<()> {
        if reuse::retire(&self.path, reuse::STATE_FILES) {
            unsafe { libc::flock(self._lock.as_raw_fd(), libc::LOCK_UN) };
            return Ok(());
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", self.path.display()), e)),
        }
    }
}

/// Write `data` to `path` via a temp file in the same directory, swapped in
/// atomically; a new file gets `mode` (less the umask).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        // No fsync: the file describes processes, which a reboot ends anyway;
        // the swap alone makes the write atomic.
        reuse::write_over(&tmp, data, mode)?;
        if swap_in(&tmp, path)? {
            std::fs::remove_file(&tmp)?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

/// Put `new` in `path`'s place atomically. Exchanged rather than renamed
/// over: on ext4 a rename over an existing file starts writeback of the new
/// one (auto_da_alloc), a disk write per change. True: `new` now holds what
/// `path` held; false: nothing was there (or this filesystem cannot
/// exchange), `new` is gone.
pub(super) fn swap_in(new: &Path, path: &Path) -> std::io::Result<bool> {
    match renameat2(new, path, libc::RENAME_EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)) => {
            std::fs::rename(new, path).map(|()| false)
        }
        Err(e) => Err(e),
    }
}

/// renameat2(2) with `flags` (RENAME_EXCHANGE, RENAME_NOREPLACE).
pub(super) fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (a, b) = (c(a)?, c(b)?);
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// RFC 3339 UTC timestamp with nanoseconds, without a date crate.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// A created container's state, for tests.
#[cfg(test)]
pub(super) fn sample(id: &str) -> State {
    State {
        id: id.into(),
        bundle: PathBuf::from("/b"),
        rootfs: PathBuf::from("/b/rootfs"),
        phase: Status::Created,
        creator: Proc::default(),
        init: Proc::default(),
        cgroup: None,
        created: now_rfc3339(),
        annotations: HashMap::new(),
        poststop: Vec::new(),
        oci_version: String::new(),
        no_new_keyring: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_root_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("mica-state-perm-{}", std::process::id()));
        let root = base.join("root");
        let dir = Dir::create(&root, "c1").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700, "state root");
        dir.save(&sample("c1")).unwrap();
        assert_eq!(mode(&dir.state_path()), 0o600, "state file");
        drop(dir);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("mica-state-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        write_atomic(&p, b"first", 0o600).unwrap();
        write_atomic(&p, b"second, longer", 0o600).unwrap();
        write_atomic(&p, b"third", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"third");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timestamp_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    #[test]
    fn own_process_is_alive_and_pid_reuse_is_detected() {
        let me = Proc::of(std::process::id() as i32);
        assert!(me.alive());
        let other = Proc {
            start: me.start + 1,
            ..me
        };
        assert!(!other.alive());
        assert!(!Proc::default().alive());
    }
}
