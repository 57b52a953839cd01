//! cgroupfs paths walked from an fd of `/sys/fs/cgroup`, not from `/`.
//!
//! kernfs (sysfs and cgroupfs) cannot revalidate a dentry under RCU, so a
//! path walk through `/sys/fs/...` takes each kernfs root's lock once per
//! component. The `fs` component is sysfs's, and sysfs's lock is held for
//! writing whenever another container's network namespace registers or
//! drops its `lo`: concurrent starts waited on each other there. Walking
//! from an fd of `/sys/fs/cgroup`, opened once per process, skips `sys`
//! and `fs`; what is left is the hierarchy's own components.
//!
//! Paths elsewhere (a host that mounts its cgroups somewhere else, tests'
//! fake trees) are walked as they are: the same files, only slower.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

const BASE: &str = "/sys/fs/cgroup";

/// The fd of [`BASE`] (O_PATH, close-on-exec), or None when it cannot be
/// opened. Lives as long as the process.
fn base() -> Option<RawFd> {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| {
        let path = CString::new(BASE).expect("no NUL");
        // SAFETY: a valid C string; the fd is owned below.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        // SAFETY: a new fd that nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .as_ref()
    .map(|fd| fd.as_raw_fd())
}

/// `p` as a directory fd and a path for the `*at` calls: relative to
/// `/sys/fs/cgroup` when below it, else `AT_FDCWD` and `p` itself.
pub(crate) fn split(p: &Path) -> io::Result<(RawFd, CString)> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a cgroup path"))
    };
    match p.strip_prefix(BASE) {
        Ok(rel) if !rel.as_os_str().is_empty() => match base() {
            Some(fd) => Ok((fd, c(rel)?)),
            None => Ok((libc::AT_FDCWD, c(p)?)),
        },
        _ => Ok((libc::AT_FDCWD, c(p)?)),
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// open(2) of a cgroup file or directory (close-on-exec).
pub(crate) fn open(p: &Path, flags: libc::c_int) -> io::Result<File> {
    let (dir, path) = split(p)?;
    // SAFETY: valid fd and C string.
    let fd = check(unsafe { libc::openat(dir, path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// mkdir(2) of a cgroup (mode 0777, as runc; the umask applies).
pub(crate) fn mkdir(p: &Path) -> io::Result<()> {
    let (dir, path) = split(p)?;
    // SAFETY: valid fd and C string.
    check(unsafe { libc::mkdirat(dir, path.as_ptr(), 0o777) }).map(drop)
}

/// rmdir(2) of a cgroup.
pub(crate) fn rmdir(p: &Path) -> io::Result<()> {
    let (dir, path) = split(p)?;
    // SAFETY: valid fd and C string.
    check(unsafe { libc::unlinkat(dir, path.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
}

/// The whole text of a cgroup file (see `kfile`).
pub(crate) fn read_to_string(p: &Path) -> io::Result<String> {
    crate::kfile::read_file(open(p, libc::O_RDONLY)?)
}

// Real cgroupfs through the base (mkdir, limits, tasks, rmdir) is what the
// `host` tests in cgroups/tests.rs do; these check the split itself.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_base_is_relative_elsewhere_absolute() {
        let (fd, p) = split(Path::new("/sys/fs/cgroup/memory/x/tasks")).unwrap();
        if base().is_some() {
            assert_ne!(fd, libc::AT_FDCWD);
            assert_eq!(p.as_bytes(), b"memory/x/tasks");
        }
        for outside in [
            "/sys/fs/cgroup",
            "/sys/fs/cgroupx/a",
            "/tmp/cg/memory/tasks",
        ] {
            let (fd, p) = split(Path::new(outside)).unwrap();
            assert_eq!(fd, libc::AT_FDCWD, "{outside}");
            assert_eq!(p.as_bytes(), outside.as_bytes());
        }
        assert!(split(Path::new("/sys/fs/cgroup/a\0b")).is_err());
    }

    #[test]
    fn relative_and_absolute_reach_the_same_file() {
        let dir = std::env::temp_dir().join(format!("mica-at-{}", std::process::id()));
        mkdir(&dir).unwrap();
        assert_eq!(
            mkdir(&dir).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        std::fs::write(dir.join("f"), "v").unwrap();
        assert_eq!(read_to_string(&dir.join("f")).unwrap(), "v");
        std::fs::remove_file(dir.join("f")).unwrap();
        rmdir(&dir).unwrap();
        assert!(!dir.exists());
        // Below the base: the same text as the path read from /.
        let controllers = Path::new("/sys/fs/cgroup/unified/cgroup.controllers");
        let p = if controllers.exists() {
            controllers
        } else {
            Path::new("/sys/fs/cgroup/cgroup.controllers")
        };
        if p.exists() {
            assert_eq!(
                read_to_string(p).unwrap(),
                std::fs::read_to_string(p).unwrap()
            );
        }
    }
}
