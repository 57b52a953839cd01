//! Idmapped bind mounts (runtime-spec 1.1 `mounts[].uidMappings` and
//! `gidMappings`, runc's `idmap`/`ridmap` options). Idmapping a mount needs
//! CAP_SYS_ADMIN over the filesystem's user namespace, which the child of a
//! user-namespaced container lacks: so the parent makes the mount here,
//! before clone, as a detached tree (open_tree) idmapped with a user
//! namespace of the mappings, and the child only moves it onto its target
//! (move_mount), as runc does.

use super::error::{sys as sys_err, Error, Result};
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A detached copy of the mount at `src` (with the mounts below it when
/// `rbind`), idmapped with the maps of `userns` (the mounts below too when
/// `recursive`).
pub fn idmapped_tree(
    src: &std::path::Path,
    rbind: bool,
    recursive: bool,
    userns: BorrowedFd,
) -> Result<OwnedFd> {
    let what = || format!("idmapped mount of {}", src.display());
    let c = CString::new(src.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Config(format!("{}: NUL in the path", what())))?;
    let tree = super::sys::open_tree_clone(c.as_ptr(), rbind)
        .map_err(|e| sys_err(format!("{}: open_tree", what()))(e))?;
    let tree = unsafe { OwnedFd::from_raw_fd(tree) };
    // The copy is in the source's peer group: made private (all of it, in
    // a call of its own before the idmap one), nothing mounted under it in
    // the container propagates back to the host.
    super::sys::mount_setattr(tree.as_raw_fd(), true, 0, 0, libc::MS_PRIVATE, 0)
        .map_err(|e| sys_err(format!("{}: make it private", what()))(e))?;
    super::sys::mount_setattr(
        tree.as_raw_fd(),
        recursive,
        super::sys::MOUNT_ATTR_IDMAP,
        0,
        0,
        userns.as_raw_fd() as u64,
    )
    .map_err(|e| sys_err(format!("{}: mount_setattr", what()))(e))?;
    Ok(tree)
}

/// A user namespace with these maps ("ID HOST-ID COUNT" lines), as an fd: a
/// child is cloned into a new user namespace and waits while the maps are
/// written and the namespace opened, then exits.
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let mut p = [0i32; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(sys_err("pipe2")(Errno::last()));
    }
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(sys_err("clone a user namespace for an idmapped mount")(
            Errno::last(),
        ));
    }
    if pid == 0 {
        // Only async-signal-safe calls: wait for the write end to close.
        let mut b = [0u8; 1];
        unsafe {
            libc::close(p[1]);
            libc::read(p[0], b.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    let pid = pid as i32;
    let r = (|| {
        for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, map).map_err(|e| Error::Io {
                what: format!("write {path} ({map:?}) for an idmapped mount"),
                source: e,
            })?;
        }
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|e| Error::Io {
                what: format!("open {path}"),
                source: e,
            })
    })();
    drop(wr);
    drop(rd);
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    r
}

#[cfg(test)]
mod tests {
    /// The namespace has the maps: a child joins it and reads them back.
    #[test]
    fn userns_has_the_maps() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let fd = super::userns_with_maps("0 1000 1\n", "0 2000 5\n").unwrap();
        let raw = fd.as_raw_fd();
        let mut cmd = std::process::Command::new("cat");
        cmd.args(["/proc/self/uid_map", "/proc/self/gid_map"]);
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWUSER) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let fields: Vec<Vec<String>> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        assert_eq!(fields, [["0", "1000", "1"], ["0", "2000", "5"]]);
    }
}
