//! The child: one linear sequence from clone to exec.
//!
//! Runs in the forked process, so it only makes syscalls on data the parent
//! prepared (`Plan`): no allocation, no locks, no formatting. A failed step
//! becomes a fixed-size `Msg` sent to the parent, which turns it into words.

// Errors are fixed-size messages returned by value on purpose: boxing would
// allocate in the forked child.
#![allow(clippy::result_large_err)]

use super::plan::{HookCmd, Kind, MountOp, Plan};
use super::sync::{self, Msg, Step};
use super::sys::{self, FdPath, PathBuf};
use libc::{c_int, c_ulong};
use nix::errno::Errno;
use std::ffi::CStr;
use std::ptr::null;

type CResult<T> = Result<T, Msg>;

fn fail(step: Step, detail: &[u8]) -> impl FnOnce(Errno) -> Msg + '_ {
    move |e| Msg::error(step, e, detail)
}

const NO_DETAIL: &[u8] = b"";

/// Entry point of the cloned child. Never returns. `slot`: alone (see
/// `Plan::solo`), where the report goes instead of the socket.
pub fn run(plan: &Plan, sync_fd: c_int, state_buf: &mut [u8], mut slot: Option<&mut Msg>) -> ! {
    match setup(plan, sync_fd, state_buf) {
        Ok(path) => {
            // Alone: Ready until the exec says otherwise.
            if let Some(s) = slot.as_deref_mut() {
                *s = Msg::new(sync::Kind::Ready);
            }
            exec(plan, path, sync_fd, slot)
        }
        Err(msg) => {
            tell(sync_fd, &mut slot, &msg);
            sys::exit(1)
        }
    }
}

/// Report to the parent: alone, into its memory (nothing to allocate: a
/// memory cgroup at its limit refuses socket buffers, not this); else over
/// the socket. False when the socket refused it.
fn tell(sync_fd: c_int, slot: &mut Option<&mut Msg>, m: &Msg) -> bool {
    match slot {
        Some(s) => {
            **s = *m;
            true
        }
        None => sync::send(sync_fd, m).is_ok(),
    }
}

/// Everything up to exec; returns the index of the executable to run.
fn setup(plan: &Plan, sync_fd: c_int, state_buf: &mut [u8]) -> CResult<usize> {
    // Die with the parent while it is still setting us up.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
    // Alone, nothing of ours waits on the parent: one that died before the
    // line above (its end of the socket is closed then) is noticed here.
    if plan.solo && sys::peer_gone(sync_fd) {
        sys::exit(1)
    }
    if plan.kind == Kind::Exec {
        // Nothing in the container may reach into us through /proc.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    sys::reset_signals();
    unsafe { libc::umask(0) };
    // Every fd the caller leaked to us is closed at exec; only 0-2 and the
    // preserved ones reach the container process.
    sys::close_all_but(3 + plan.preserve_fds as u32, &plan.keep_fds)
        .map_err(fail(Step::Fds, NO_DETAIL))?;
    sys::close_range_cloexec(3 + plan.preserve_fds as u32).map_err(fail(Step::Fds, NO_DETAIL))?;
    // Our own namespaces now, while the parent makes the cgroups, unless
    // one we join must own them.
    let unshare_first = plan.join_ns.is_empty();
    if unshare_first {
        unshare_own(plan)?;
    }

    // Alone, the cgroups were made before the clone: nothing to wait for.
    if !plan.solo {
        expect(sync_fd, sync::Kind::Go)?;
    }
    // Into the v1 cgroups: "0" moves this (single) thread without the
    // kernel's grace-period wait that a cgroup.procs write of a pid costs.
    for (at, path) in &plan.cgroup_tasks {
        sys::write_file_at(plan.cgroup_dir, at.as_ptr(), b"0")
            .map_err(fail(Step::Cgroup, path.to_bytes()))?;
    }
    // That dir is the host's /sys/fs/cgroup: closed now, long before the
    // container's /proc could show it (a cwd of /proc/self/fd/N would lead
    // out of the rootfs).
    if plan.cgroup_dir != libc::AT_FDCWD {
        sys::close(plan.cgroup_dir);
    }
    if plan.user_ns {
        // The maps are written: become the namespace's root, so what we
        // create is owned by a mapped id (else EOVERFLOW).
        become_userns_root()?;
    }
    if let Some(v) = &plan.oom_score_adj {
        sys::write_file(c"/proc/self/oom_score_adj".as_ptr(), v.to_bytes())
            .map_err(fail(Step::OomScore, v.to_bytes()))?;
    }
    for ((fd, nstype), path) in plan.join_ns.iter().zip(&plan.join_ns_paths) {
        use std::os::fd::AsRawFd;
        sys::setns(fd.as_raw_fd(), *nstype).map_err(fail(Step::Setns, path.to_bytes()))?;
    }
    if plan.kind == Kind::Init && plan.join_ns.iter().any(|(_, t)| *t == libc::CLONE_NEWUSER) {
        become_userns_root()?;
    }
    if !unshare_first {
        unshare_own(plan)?;
    }
    if plan.second_fork {
        second_fork(plan, sync_fd)?;
    }
    // A network namespace clone made (a new user namespace owns it) gets
    // its lo up once we are that namespace's root.
    if plan.clone_flags & libc::CLONE_NEWNET as u64 != 0 {
        sys::loopback_up().map_err(fail(Step::Loopback, b"lo"))?;
    }
    if let Some(name) = &plan.session_keyring {
        // Searchable by its owner too, so an exec'd process can join it
        // (runc's permission change); a kernel without keys is fine.
        let search = if plan.kind == Kind::Init {
            0x0008_0000
        } else {
            0
        };
        match sys::join_session_keyring(name, search) {
            Ok(()) | Err(Errno::ENOSYS) => {}
            Err(Errno::EEXIST) => {
                return Err(Msg::error(
                    Step::Keyring,
                    Errno::EPERM,
                    b"(a keyring of that name was made by another user)",
                ))
            }
            Err(e) => return Err(Msg::error(Step::Keyring, e, name.to_bytes())),
        }
    }
    // The state JSON, for the hooks the child runs itself (alone, there
    // are none).
    let state_len = if plan.solo {
        0
    } else {
        recv_state(sync_fd, state_buf)?
    };
    let state = &state_buf[..state_len];

    let mut joined = false;
    if !plan.join_late {
        cgroup_joined(plan, sync_fd, &mut joined)?;
    }
    // A session of its own, as runc gives every process, exec'd or not: no
    // way back to the caller's controlling terminal (/dev/tty, TIOCSTI),
    // and the caller's hangup or Ctrl-C does not reach it.
    if unsafe { libc::setsid() } < 0 {
        return Err(Msg::error(Step::Setsid, Errno::last(), NO_DETAIL));
    }

    if plan.kind == Kind::Init {
        rootfs(plan, sync_fd, state, &mut joined)?;
    }
    cgroup_joined(plan, sync_fd, &mut joined)?;
    if plan.terminal {
        console(plan)?;
    }
    if plan.kind == Kind::Init {
        finish_rootfs(plan)?;
    }
    sys::chdir(plan.cwd.as_ptr()).map_err(fail(Step::Chdir, plan.cwd.to_bytes()))?;
    // A cwd through an fd of the host's (e.g. /proc/self/fd/N) would put
    // the process outside its root: the kernel's getcwd then says so.
    if !sys::cwd_is_reachable() {
        return Err(Msg::error(
            Step::Chdir,
            Errno::EPERM,
            b"(the directory is outside the container's root)",
        ));
    }
    if plan.exec_fifo.is_some() {
        // Before seccomp, which may refuse rt_sigaction.
        sys::exit_on_signals();
    }
    identity(plan)?;
    let exe = find_executable(plan)?;

    // The parent may exit once we are ready: we must outlive it.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
    if plan.kind == Kind::Init {
        // Alone, `run` says Ready (in the parent's memory).
        if !plan.solo {
            sync::send(sync_fd, &Msg::new(sync::Kind::Ready))
                .map_err(fail(Step::Sync, NO_DETAIL))?;
        }
        // Block until `start` writes a byte into the exec fifo.
        if let Some(fifo) = &plan.exec_fifo {
            use std::os::fd::AsRawFd;
            let mut b = [0u8; 1];
            loop {
                match sys::read(fifo.as_raw_fd(), &mut b) {
                    Ok(1) => break,
                    Ok(_) => sys::sleep_ms(1),
                    Err(e) => return Err(Msg::error(Step::Sync, e, b"exec fifo")),
                }
            }
        }
        // `run` (no exec fifo) waits on the socket until the exec; after
        // `start`, nobody does: report on stderr.
        for h in &plan.start_container_hooks {
            if let Err(e) = run_hook(h, state) {
                if plan.exec_fifo.is_none() {
                    return Err(Msg::error(Step::StartContainerHook, e, h.path.to_bytes()));
                }
                sys::report_stderr(&[
                    b"mica: startContainer hook ",
                    h.path.to_bytes(),
                    b" failed: ",
                    e.desc().as_bytes(),
                    b"\n",
                ]);
                sys::exit(1);
            }
        }
    } else {
        sync::send(sync_fd, &Msg::new(sync::Kind::Ready)).map_err(fail(Step::Sync, NO_DETAIL))?;
    }
    Ok(exe)
}

fn expect(sync_fd: c_int, kind: sync::Kind) -> CResult<Msg> {
    let m = sync::recv(sync_fd).map_err(|e| {
        // The parent is gone: nobody to report to.
        if e == Errno::EPIPE {
            sys::exit(1)
        }
        Msg::error(Step::Sync, e, NO_DETAIL)
    })?;
    if m.kind != kind as u32 {
        return Err(Msg::error(Step::Sync, Errno::EPROTO, NO_DETAIL));
    }
    Ok(m)
}

fn recv_state(sync_fd: c_int, buf: &mut [u8]) -> CResult<usize> {
    let m = expect(sync_fd, sync::Kind::State)?;
    if m.value == 0 {
        return Ok(0);
    }
    sync::recv_payload(sync_fd, buf).map_err(fail(Step::Sync, b"state"))
}

/// Make the namespaces `plan.unshare_child` names; a new network namespace
/// gets its lo up.
fn unshare_own(plan: &Plan) -> CResult<()> {
    if plan.unshare_child != 0 {
        sys::unshare(plan.unshare_child).map_err(fail(Step::Unshare, NO_DETAIL))?;
    }
    if plan.unshare_child & libc::CLONE_NEWNET != 0 {
        sys::loopback_up().map_err(fail(Step::Loopback, b"lo"))?;
    }
    Ok(())
}

/// Become root of the user namespace we are in (made or joined), so what we
/// create is owned by a mapped id.
fn become_userns_root() -> CResult<()> {
    if unsafe { libc::setresgid(0, 0, 0) } < 0 {
        return Err(Msg::error(
            Step::SetGid,
            Errno::last(),
            b"user namespace root",
        ));
    }
    if unsafe { libc::setresuid(0, 0, 0) } < 0 {
        return Err(Msg::error(
            Step::SetUid,
            Errno::last(),
            b"user namespace root",
        ));
    }
    Ok(())
}

/// Joining a pid namespace, or making a time namespace, only takes effect
/// for children: fork once more and let the middle process exit.
fn second_fork(plan: &Plan, sync_fd: c_int) -> CResult<()> {
    if plan.unshare_in_middle != 0 {
        sys::unshare(plan.unshare_in_middle).map_err(fail(Step::Unshare, b"pid/time"))?;
    }
    if let Some(off) = &plan.timens_offsets {
        sys::write_file(c"/proc/self/timens_offsets".as_ptr(), off.to_bytes())
            .map_err(fail(Step::TimeOffsets, NO_DETAIL))?;
    }
    let pid = sys::fork().map_err(fail(Step::Fork, NO_DETAIL))?;
    if pid > 0 {
        let mut m = Msg::new(sync::Kind::Pid);
        m.value = pid as i64;
        let _ = sync::send(sync_fd, &m);
        sys::exit(0);
    }
    // No parent-death signal here: our parent, the middle, exits right away.
    // If mica dies, the socket closes and we exit on EOF.
    Ok(())
}

/// Open `path` (absolute, container view) inside `root` without following
/// anything out of it, creating missing directories (and a final file when
/// `file`) on the way. Returns an O_PATH fd.
fn resolve_create(root: c_int, path: &CStr, file: bool, step: Step) -> CResult<c_int> {
    let bytes = path.to_bytes();
    let err = |e| Msg::error(step, e, bytes);
    match sys::open_in_root(root, path.as_ptr(), libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(err(e)),
    }
    // Walk component by component, creating what is missing.
    let mut prefix = PathBuf::new();
    let mut parent =
        sys::open_in_root(root, c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY).map_err(err)?;
    let comps = bytes
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".");
    let n = bytes
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .count();
    for (i, comp) in comps.enumerate() {
        prefix.push_bytes(b"/").map_err(err)?;
        prefix.push_bytes(comp).map_err(err)?;
        let last = i + 1 == n;
        let mut name = PathBuf::new();
        name.push_bytes(comp).map_err(err)?;
        let next = match sys::open_in_root(root, prefix.as_ptr(), libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                if last && file {
                    let fd =
                        sys::openat(parent, name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644)
                            .map_err(|e| {
                            sys::close(parent);
                            err(e)
                        })?;
                    sys::close(fd);
                } else {
                    sys::mkdirat(parent, name.as_ptr(), 0o755).map_err(|e| {
                        sys::close(parent);
                        err(e)
                    })?;
                }
                sys::open_in_root(root, prefix.as_ptr(), libc::O_PATH).map_err(err)?
            }
            Err(e) => {
                sys::close(parent);
                return Err(err(e));
            }
        };
        sys::close(parent);
        parent = next;
    }
    Ok(parent)
}

/// Flags of the mount at `fd` that a bind remount must keep (they may be
/// locked when the mount came from a more privileged namespace).
fn locked_flags(fd: c_int) -> c_ulong {
    let f = sys::fstatfs_flags(fd).unwrap_or(0);
    f & (libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME)
}

fn remount_bind(target: &FdPath, fd: c_int, flags: c_ulong) -> Result<(), Errno> {
    let keep = locked_flags(fd);
    sys::mount(
        null(),
        target.as_ptr(),
        null(),
        libc::MS_BIND
            | libc::MS_REMOUNT
            | (flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT))
            | keep,
        null(),
    )
}

/// Once: wait until the parent has put us in our cgroups (when it does so
/// late), then make the cgroup namespace, whose root is the cgroup we are in.
fn cgroup_joined(plan: &Plan, sync_fd: c_int, joined: &mut bool) -> CResult<()> {
    if *joined {
        return Ok(());
    }
    if plan.join_late {
        expect(sync_fd, sync::Kind::Joined)?;
    }
    if plan.new_cgroupns {
        sys::unshare(libc::CLONE_NEWCGROUP).map_err(fail(Step::Unshare, b"cgroup"))?;
    }
    *joined = true;
    Ok(())
}

fn rootfs(plan: &Plan, sync_fd: c_int, state: &[u8], joined: &mut bool) -> CResult<()> {
    // First of all: nothing we do may propagate to the host.
    sys::mount(
        null(),
        c"/".as_ptr(),
        null(),
        libc::MS_REC | libc::MS_PRIVATE,
        null(),
    )
    .map_err(fail(Step::MakePrivate, NO_DETAIL))?;
    let rootfs = plan.rootfs.as_ptr();
    let rdetail = plan.rootfs.to_bytes();
    if let Some(data) = &plan.rootfs_overlay {
        // An image's layers, stacked read-only: overlayfs with no upper dir
        // cannot be written, even by a remount.
        sys::mount(
            c"overlay".as_ptr(),
            rootfs,
            c"overlay".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const _,
        )
        .map_err(fail(Step::BindRootfs, b"overlay of the image layers"))?;
    }
    sys::mount(rootfs, rootfs, null(), libc::MS_BIND | libc::MS_REC, null())
        .map_err(fail(Step::BindRootfs, rdetail))?;
    let root = sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(fail(Step::BindRootfs, rdetail))?;
    if plan.readonly_root {
        // Read-only from the start: anything that would write into the
        // image (a missing mountpoint) fails with EROFS, naming the path.
        let p = FdPath::mount_target(root).map_err(fail(Step::BindRootfs, rdetail))?;
        remount_bind(&p, root, libc::MS_RDONLY).map_err(fail(Step::ReadonlyRoot, rdetail))?;
    }
    if plan.dev_tmpfs {
        let fd =
            sys::open_in_root(root, c"/dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY).map_err(
                fail(Step::Mountpoint, b"/dev (a read-only rootfs must have it)"),
            )?;
        let p = FdPath::mount_target(fd).map_err(fail(Step::Mount, b"/dev"))?;
        sys::mount(
            c"tmpfs".as_ptr(),
            p.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            c"mode=755,size=65536k".as_ptr() as *const _,
        )
        .map_err(fail(Step::Mount, b"/dev"))?;
        sys::close(fd);
    }
    for m in &plan.mounts {
        if !m.cgroup_v1.is_empty() || m.cgroup2 {
            // A cgroup mount shows the cgroup namespace: it must exist by now.
            cgroup_joined(plan, sync_fd, joined)?;
        }
        mount_one(root, m)?;
    }
    // Hooks (and everything after) see the container in its cgroups; this
    // also keeps `Joined` ahead of the PrePivot/Continue exchange.
    cgroup_joined(plan, sync_fd, joined)?;
    if plan.setup_dev {
        devices(plan, root)?;
    }
    if plan_needs_prepivot(plan) {
        sync::send(sync_fd, &Msg::new(sync::Kind::PrePivot))
            .map_err(fail(Step::Sync, NO_DETAIL))?;
        expect(sync_fd, sync::Kind::Continue)?;
    }
    // In the rootfs: where runc runs createContainer hooks, and what pivots.
    sys::fchdir(root).map_err(fail(Step::Pivot, rdetail))?;
    for h in &plan.create_container_hooks {
        run_hook(h, state).map_err(fail(Step::CreateContainerHook, h.path.to_bytes()))?;
    }
    if plan.no_pivot {
        sys::mount(c".".as_ptr(), c"/".as_ptr(), null(), libc::MS_MOVE, null())
            .map_err(fail(Step::Pivot, b"move"))?;
        sys::chroot(c".".as_ptr()).map_err(fail(Step::Pivot, b"chroot"))?;
    } else {
        sys::pivot_root(c".".as_ptr(), c".".as_ptr()).map_err(fail(Step::Pivot, NO_DETAIL))?;
        // The old root is stacked under the new one: detach it.
        sys::umount2(c".".as_ptr(), libc::MNT_DETACH)
            .map_err(fail(Step::Pivot, b"detach old root"))?;
    }
    sys::chdir(c"/".as_ptr()).map_err(fail(Step::Pivot, NO_DETAIL))?;
    sys::close(root);
    if plan.rootfs_propagation != 0 {
        sys::mount(
            null(),
            c"/".as_ptr(),
            null(),
            plan.rootfs_propagation,
            null(),
        )
        .map_err(fail(Step::Propagation, NO_DETAIL))?;
    }
    for (path, value) in &plan.sysctls {
        sys::write_file(path.as_ptr(), value.to_bytes())
            .map_err(fail(Step::Sysctl, path.to_bytes()))?;
    }
    if let Some(h) = &plan.hostname {
        if unsafe { libc::sethostname(h.as_ptr(), h.to_bytes().len()) } < 0 {
            return Err(Msg::error(Step::Hostname, Errno::last(), h.to_bytes()));
        }
    }
    if let Some(d) = &plan.domainname {
        if unsafe { libc::setdomainname(d.as_ptr(), d.to_bytes().len()) } < 0 {
            return Err(Msg::error(Step::Domainname, Errno::last(), d.to_bytes()));
        }
    }
    Ok(())
}

/// Whether the parent asked to run hooks between mounts and pivot. The
/// parent sets this through `Plan::prepivot_hooks`.
fn plan_needs_prepivot(plan: &Plan) -> bool {
    plan.prepivot_hooks
}

fn mount_one(root: c_int, m: &MountOp) -> CResult<()> {
    let tdetail = m.target.to_bytes();
    let tfd = resolve_create(root, &m.target, m.file_target, Step::Mountpoint)?;
    let target = FdPath::mount_target(tfd).map_err(fail(Step::Mount, tdetail))?;
    let src = m.source.as_ref().map(|s| s.as_ptr()).unwrap_or(null());
    let data = m
        .data
        .as_ref()
        .map(|d| d.as_ptr() as *const libc::c_void)
        .unwrap_or(null());
    // tmpcopyup: an fd of the directory the tmpfs is about to cover.
    let below = if m.copyup {
        match sys::open_in_root(root, m.target.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => Some(fd),
            Err(e) => {
                sys::close(tfd);
                return Err(Msg::error(Step::Mount, e, tdetail));
            }
        }
    } else {
        None
    };
    let r = if m.bind {
        mount_bind(root, m, src, &target, tfd)
    } else if !m.cgroup_v1.is_empty() || m.cgroup2 {
        mount_cgroup(root, m, &target)
    } else {
        let fstype = m.fstype.as_ref().map(|s| s.as_ptr()).unwrap_or(null());
        match sys::mount(src, target.as_ptr(), fstype, m.flags, data) {
            // sysfs needs a new net namespace; without one, bind the host's read-only, as runc does.
            Err(Errno::EPERM) if m.fstype.as_deref() == Some(c"sysfs") => sys::mount(
                c"/sys".as_ptr(),
                target.as_ptr(),
                null(),
                libc::MS_BIND | libc::MS_REC,
                null(),
            )
            .and_then(|_| {
                let fd = sys::open_in_root(root, m.target.as_ptr(), libc::O_PATH)?;
                let p = FdPath::mount_target(fd)?;
                let r = remount_bind(&p, fd, libc::MS_RDONLY | m.flags);
                sys::close(fd);
                r
            }),
            r => r,
        }
    };
    sys::close(tfd);
    let r = match below {
        Some(fd) => {
            let r = r.and_then(|_| copy_up(root, m, fd));
            sys::close(fd);
            r
        }
        None => r,
    };
    r.map_err(fail(Step::Mount, tdetail))?;
    if m.propagation != 0 {
        let fd = sys::open_in_root(root, m.target.as_ptr(), libc::O_PATH)
            .map_err(fail(Step::Mount, tdetail))?;
        let p = FdPath::mount_target(fd).map_err(fail(Step::Mount, tdetail))?;
        let r = sys::mount(null(), p.as_ptr(), null(), m.propagation, null());
        sys::close(fd);
        r.map_err(fail(Step::Propagation, tdetail))?;
    }
    if let Some(a) = &m.attr {
        let fd = sys::open_in_root(root, m.target.as_ptr(), libc::O_PATH)
            .map_err(fail(Step::Mount, tdetail))?;
        let r = sys::mount_setattr_recursive(fd, a.set, a.clr);
        sys::close(fd);
        r.map_err(fail(Step::MountAttr, tdetail))?;
    }
    Ok(())
}

/// tmpcopyup: copy the covered directory `below` into the tmpfs just mounted
/// at `m.target`, with the covered directory's mode and owner, as runc does.
fn copy_up(root: c_int, m: &MountOp, below: c_int) -> Result<(), Errno> {
    let top = sys::open_in_root(root, m.target.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY)?;
    let r = (|| {
        copy_tree(below, top, 0)?;
        let st = sys::fstatat(below, c"".as_ptr(), libc::AT_EMPTY_PATH)?;
        if unsafe { libc::fchown(top, st.st_uid, st.st_gid) } < 0 {
            return Err(Errno::last());
        }
        if unsafe { libc::fchmod(top, st.st_mode & 0o7777) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    })();
    sys::close(top);
    r
}

/// Copy the entries of directory `src` into directory `dst` (both fds),
/// recursively, keeping modes and owners. No allocation: fixed buffers on
/// the stack, bounded depth.
fn copy_tree(src: c_int, dst: c_int, depth: u32) -> Result<(), Errno> {
    if depth > 64 {
        return Err(Errno::ELOOP);
    }
    crate::kfile::each_dirent(src, |name, _| copy_entry(src, dst, name, depth))
}

fn copy_entry(src: c_int, dst: c_int, name: &CStr, depth: u32) -> Result<(), Errno> {
    let st = sys::fstatat(src, name.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)?;
    let perm = st.st_mode & 0o7777;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            sys::mkdirat(dst, name.as_ptr(), 0o700)?;
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let s = sys::openat(src, name.as_ptr(), flags, 0)?;
            let d = match sys::openat(dst, name.as_ptr(), flags, 0) {
                Ok(d) => d,
                Err(e) => {
                    sys::close(s);
                    return Err(e);
                }
            };
            let r = copy_tree(s, d, depth + 1);
            sys::close(s);
            sys::close(d);
            r?;
        }
        libc::S_IFREG => {
            let s = sys::openat(src, name.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
            let d = match sys::openat(
                dst,
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            ) {
                Ok(d) => d,
                Err(e) => {
                    sys::close(s);
                    return Err(e);
                }
            };
            let mut left = st.st_size as usize;
            let mut r = Ok(());
            while left > 0 {
                let k = unsafe { libc::sendfile(d, s, std::ptr::null_mut(), left.min(1 << 30)) };
                if k < 0 {
                    if Errno::last() == Errno::EINTR {
                        continue;
                    }
                    r = Err(Errno::last());
                    break;
                }
                if k == 0 {
                    break;
                }
                left -= k as usize;
            }
            sys::close(s);
            sys::close(d);
            r?;
        }
        libc::S_IFLNK => {
            let mut target = [0u8; 4096];
            let k = unsafe {
                libc::readlinkat(
                    src,
                    name.as_ptr(),
                    target.as_mut_ptr() as *mut libc::c_char,
                    target.len() - 1,
                )
            };
            if k < 0 {
                return Err(Errno::last());
            }
            target[k as usize] = 0;
            sys::symlinkat(target.as_ptr() as *const libc::c_char, dst, name.as_ptr())?;
        }
        _ => sys::mknodat(dst, name.as_ptr(), st.st_mode, st.st_rdev)?,
    }
    sys::fchownat(
        dst,
        name.as_ptr(),
        st.st_uid,
        st.st_gid,
        libc::AT_SYMLINK_NOFOLLOW,
    )?;
    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
        // After chown, which clears set-id bits.
        sys::fchmodat(dst, name.as_ptr(), perm)?;
    }
    Ok(())
}

fn mount_bind(
    root: c_int,
    m: &MountOp,
    src: *const libc::c_char,
    target: &FdPath,
    tfd: c_int,
) -> Result<(), Errno> {
    match &m.idmap {
        // The parent's detached, idmapped copy of the source.
        Some(idmap) => {
            use std::os::fd::AsRawFd;
            sys::move_mount(idmap.tree.as_raw_fd(), tfd)?;
        }
        None => sys::mount(
            src,
            target.as_ptr(),
            null(),
            libc::MS_BIND | (m.flags & libc::MS_REC),
            null(),
        )?,
    }
    let extra = m.flags & !(libc::MS_BIND | libc::MS_REC);
    if extra != 0 {
        // The fd points below the new mount; reopen the mount itself.
        let fd = sys::open_in_root(root, m.target.as_ptr(), libc::O_PATH)?;
        let p = FdPath::mount_target(fd)?;
        let r = remount_bind(&p, fd, extra);
        sys::close(fd);
        r?;
    }
    Ok(())
}

fn mount_cgroup(root: c_int, m: &MountOp, target: &FdPath) -> Result<(), Errno> {
    let flags = m.flags & !(libc::MS_BIND | libc::MS_REC);
    if m.cgroup2 {
        return sys::mount(
            c"cgroup2".as_ptr(),
            target.as_ptr(),
            c"cgroup2".as_ptr(),
            flags,
            null(),
        );
    }
    // v1 / hybrid: a tmpfs holding one mount per hierarchy.
    sys::mount(
        c"tmpfs".as_ptr(),
        target.as_ptr(),
        c"tmpfs".as_ptr(),
        (flags & !libc::MS_RDONLY) | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        c"mode=755".as_ptr() as *const _,
    )?;
    let dir = sys::open_in_root(root, m.target.as_ptr(), libc::O_PATH | libc::O_DIRECTORY)?;
    let r = (|| {
        for (name, opts, bind) in &m.cgroup_v1 {
            sys::mkdirat(dir, name.as_ptr(), 0o755)?;
            let fd = sys::openat(dir, name.as_ptr(), libc::O_PATH | libc::O_DIRECTORY, 0)?;
            let p = FdPath::mount_target(fd)?;
            let r = match bind {
                // No cgroup namespace: only the container's own cgroup, as runc does.
                Some(src) => sys::mount(src.as_ptr(), p.as_ptr(), null(), libc::MS_BIND, null())
                    .and_then(|_| {
                        let mfd =
                            sys::openat(dir, name.as_ptr(), libc::O_PATH | libc::O_DIRECTORY, 0)?;
                        let r = FdPath::mount_target(mfd).and_then(|mp| {
                            remount_bind(
                                &mp,
                                mfd,
                                flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                            )
                        });
                        sys::close(mfd);
                        r
                    }),
                None => sys::mount(
                    c"cgroup".as_ptr(),
                    p.as_ptr(),
                    c"cgroup".as_ptr(),
                    flags,
                    opts.as_ptr() as *const _,
                ),
            };
            sys::close(fd);
            r?;
        }
        if flags & libc::MS_RDONLY != 0 {
            let p = FdPath::mount_target(dir)?;
            sys::mount(
                null(),
                p.as_ptr(),
                null(),
                libc::MS_REMOUNT | flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null(),
            )?;
        }
        Ok(())
    })();
    sys::close(dir);
    r
}

/// The devices, then the /dev symlinks. /dev is opened once: the default
/// devices are all right in it (only a config's own may be deeper).
fn devices(plan: &Plan, root: c_int) -> CResult<()> {
    let dev = resolve_create(root, c"/dev", false, Step::Device)?;
    let r = make_devices(plan, root, dev).and_then(|()| dev_symlinks(dev));
    sys::close(dev);
    r
}

fn make_devices(plan: &Plan, root: c_int, dev: c_int) -> CResult<()> {
    for d in &plan.devices {
        let path = d.path.to_bytes();
        let bad = |e| Msg::error(Step::Device, e, path);
        let i = path
            .iter()
            .rposition(|b| *b == b'/')
            .ok_or_else(|| bad(Errno::EINVAL))?;
        // The name: the path's tail, its NUL included.
        let name = CStr::from_bytes_with_nul(&d.path.as_bytes_with_nul()[i + 1..])
            .map_err(|_| bad(Errno::EINVAL))?;
        let pfd = if &path[..i] == b"/dev" {
            dev
        } else {
            let mut parent = PathBuf::new();
            parent
                .push_bytes(if i == 0 { b"/" } else { &path[..i] })
                .map_err(bad)?;
            let parent = unsafe { CStr::from_ptr(parent.as_ptr()) };
            resolve_create(root, parent, false, Step::Device)?
        };
        let r = make_node(d, pfd, name);
        if pfd != dev {
            sys::close(pfd);
        }
        r.map_err(bad)?;
    }
    Ok(())
}

/// Device node `name` in the dir `pfd`.
fn make_node(d: &super::plan::DeviceOp, pfd: c_int, name: &CStr) -> Result<(), Errno> {
    match sys::mknodat(pfd, name.as_ptr(), d.mode, d.dev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => {
            // In a user namespace mknod is refused: bind the host's node.
            let fd = sys::openat(pfd, name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644)?;
            sys::close(fd);
            let fd = sys::openat(pfd, name.as_ptr(), libc::O_PATH, 0)?;
            let p = FdPath::mount_target(fd)?;
            let r = sys::mount(
                d.host_path.as_ptr(),
                p.as_ptr(),
                null(),
                libc::MS_BIND,
                null(),
            );
            sys::close(fd);
            return r;
        }
        Err(e) => return Err(e),
    }
    // The umask is 0 here: mknod gave the node its permission bits.
    if d.mode & 0o7000 != 0 {
        sys::fchmodat(pfd, name.as_ptr(), d.mode & 0o7777)?;
    }
    sys::fchownat(pfd, name.as_ptr(), d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW)
}

fn dev_symlinks(dev: c_int) -> CResult<()> {
    let links: [(&CStr, &CStr); 6] = [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"/proc/kcore", c"core"),
        (c"pts/ptmx", c"ptmx"),
    ];
    for (target, name) in links {
        match sys::symlinkat(target.as_ptr(), dev, name.as_ptr()) {
            // Whatever is there already stays.
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Msg::error(Step::Symlink, e, name.to_bytes())),
        }
    }
    Ok(())
}

/// A pty whose master goes to the console socket; the slave becomes our
/// stdio and controlling terminal, and /dev/console in an init.
fn console(plan: &Plan) -> CResult<()> {
    use std::os::fd::AsRawFd;
    let err = |e| Msg::error(Step::Console, e, NO_DETAIL);
    let master = sys::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY, 0).map_err(err)?;
    let unlock: c_int = 0;
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(err(Errno::last()));
    }
    let mut n: libc::c_uint = 0;
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(err(Errno::last()));
    }
    let slave = unsafe {
        libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(err(Errno::last()));
    }
    if let Some((rows, cols)) = plan.console_size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    if plan.kind == Kind::Init {
        let mut pts = PathBuf::new();
        pts.push_bytes(b"/dev/pts/").map_err(err)?;
        pts.push_num(n as u64).map_err(err)?;
        // /dev/console: an empty file on /dev with the slave bound over it.
        match sys::open(
            c"/dev/console".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOCTTY,
            0o600,
        ) {
            Ok(fd) => {
                sys::close(fd);
                sys::mount(
                    pts.as_ptr(),
                    c"/dev/console".as_ptr(),
                    null(),
                    libc::MS_BIND,
                    null(),
                )
                .map_err(|e| Msg::error(Step::Console, e, b"/dev/console"))?;
            }
            Err(e) => return Err(Msg::error(Step::Console, e, b"/dev/console")),
        }
    }
    if let Some(sock) = &plan.console_socket {
        sync::send_fd(sock.as_raw_fd(), master, b"/dev/ptmx")
            .map_err(|e| Msg::error(Step::Console, e, b"console socket"))?;
    }
    sys::close(master);
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } < 0 {
        return Err(err(Errno::last()));
    }
    for fd in 0..3 {
        sys::dup2(slave, fd).map_err(err)?;
    }
    if slave > 2 {
        sys::close(slave);
    }
    Ok(())
}

/// After pivot: masked and read-only paths, then the read-only root.
fn finish_rootfs(plan: &Plan) -> CResult<()> {
    // Masked directories: the first gets an empty read-only tmpfs, the
    // others a bind mount of it (a superblock less to make and tear down
    // per directory; nothing can be written to it).
    let mut empty_dir: Option<&CStr> = None;
    for p in &plan.masked_paths {
        let st = match sys::fstatat(libc::AT_FDCWD, p.as_ptr(), 0) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Msg::error(Step::MaskPath, e, p.to_bytes())),
        };
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            match empty_dir {
                Some(first) => {
                    sys::mount(first.as_ptr(), p.as_ptr(), null(), libc::MS_BIND, null())
                }
                None => {
                    empty_dir = Some(p.as_c_str());
                    sys::mount(
                        c"tmpfs".as_ptr(),
                        p.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY,
                        null(),
                    )
                }
            }
        } else {
            sys::mount(
                c"/dev/null".as_ptr(),
                p.as_ptr(),
                null(),
                libc::MS_BIND,
                null(),
            )
        };
        r.map_err(fail(Step::MaskPath, p.to_bytes()))?;
    }
    for p in &plan.readonly_paths {
        match sys::mount(
            p.as_ptr(),
            p.as_ptr(),
            null(),
            libc::MS_BIND | libc::MS_REC,
            null(),
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Msg::error(Step::ReadonlyPath, e, p.to_bytes())),
        }
        let fd = sys::open(p.as_ptr(), libc::O_PATH, 0)
            .map_err(fail(Step::ReadonlyPath, p.to_bytes()))?;
        let pp = FdPath::mount_target(fd).map_err(fail(Step::ReadonlyPath, p.to_bytes()))?;
        let r = remount_bind(&pp, fd, libc::MS_RDONLY | libc::MS_REC);
        sys::close(fd);
        r.map_err(fail(Step::ReadonlyPath, p.to_bytes()))?;
    }
    if plan.readonly_root {
        let fd = sys::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(fail(Step::ReadonlyRoot, b"/"))?;
        let r = remount_bind(
            &FdPath::mount_target(fd).map_err(fail(Step::ReadonlyRoot, b"/"))?,
            fd,
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        );
        sys::close(fd);
        r.map_err(fail(Step::ReadonlyRoot, b"/"))?;
    }
    Ok(())
}

/// rlimits, personality, umask, groups, uid/gid, capabilities, no_new_privs,
/// and seccomp when it must come before the capability drop.
fn identity(plan: &Plan) -> CResult<()> {
    // Before the capabilities go: a real-time policy or class needs CAP_SYS_NICE
    // (CAP_SYS_ADMIN for the real-time I/O class).
    if let Some(attr) = &plan.scheduler {
        sys::sched_setattr(attr).map_err(fail(Step::Scheduler, NO_DETAIL))?;
    }
    if let Some(prio) = plan.io_priority {
        sys::ioprio_set(prio).map_err(fail(Step::IoPriority, NO_DETAIL))?;
    }
    for (res, soft, hard) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        if unsafe { libc::setrlimit(*res as _, &lim) } < 0 {
            return Err(Msg::error(Step::Rlimit, Errno::last(), NO_DETAIL));
        }
    }
    if let Some(p) = plan.personality {
        if unsafe { libc::personality(p) } < 0 {
            return Err(Msg::error(Step::Personality, Errno::last(), NO_DETAIL));
        }
    }
    unsafe { libc::umask(plan.umask.unwrap_or(0o022)) };
    if plan.no_new_privs {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            .map_err(fail(Step::NoNewPrivs, NO_DETAIL))?;
    }
    if !plan.no_new_privs {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it
        // while we still have it.
        if let Some(s) = &plan.seccomp {
            s.install().map_err(fail(Step::Seccomp, NO_DETAIL))?;
        }
    }
    let caps = plan.caps.as_ref();
    if caps.is_some() {
        sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)
            .map_err(fail(Step::Capabilities, b"keepcaps"))?;
    }
    if let Some(c) = caps {
        for cap in 0..=c.last_cap {
            if c.bounding & (1u64 << cap) == 0 {
                match sys::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) {
                    Ok(_) | Err(Errno::EINVAL) => {}
                    Err(e) => return Err(Msg::error(Step::Capabilities, e, b"bounding set")),
                }
            }
        }
    }
    // Never let mica's own supplementary groups reach the container.
    if unsafe { libc::setgroups(plan.additional_gids.len(), plan.additional_gids.as_ptr()) } < 0 {
        let e = Errno::last();
        // In a user namespace with setgroups denied there is nothing to drop.
        if !(plan.user_ns && e == Errno::EPERM && plan.additional_gids.is_empty()) {
            return Err(Msg::error(Step::Groups, e, NO_DETAIL));
        }
    }
    if unsafe { libc::setresgid(plan.gid, plan.gid, plan.gid) } < 0 {
        return Err(Msg::error(Step::SetGid, Errno::last(), NO_DETAIL));
    }
    if unsafe { libc::setresuid(plan.uid, plan.uid, plan.uid) } < 0 {
        return Err(Msg::error(Step::SetUid, Errno::last(), NO_DETAIL));
    }
    if let Some(c) = caps {
        sys::capset(c.effective, c.permitted, c.inheritable)
            .map_err(fail(Step::Capabilities, b"capset"))?;
        let _ = sys::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
            0,
            0,
            0,
        );
        for cap in 0..=c.last_cap {
            if c.ambient & (1u64 << cap) != 0 {
                // Ambient needs the cap in permitted and inheritable; skip otherwise, as runc does.
                let _ = sys::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as c_ulong,
                    cap as c_ulong,
                    0,
                    0,
                );
            }
        }
        sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0)
            .map_err(fail(Step::Capabilities, b"keepcaps"))?;
    }
    Ok(())
}

/// Find args[0] as the container user sees it, before telling the parent
/// we're ready, so `create` fails (not `start`) for a missing command.
fn find_executable(plan: &Plan) -> CResult<usize> {
    let mut denied = None;
    for (i, c) in plan.exec_candidates.iter().enumerate() {
        match sys::fstatat(libc::AT_FDCWD, c.as_ptr(), 0) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                    return Ok(i);
                }
                denied.get_or_insert(i);
            }
            Ok(_) => {
                denied.get_or_insert(i);
            }
            Err(_) => {}
        }
    }
    match denied {
        Some(i) => Err(Msg::error(
            Step::ExecPermission,
            Errno::EACCES,
            plan.exec_candidates[i].to_bytes(),
        )),
        None => Err(Msg::error(
            Step::ExecNotFound,
            Errno::ENOENT,
            plan.arg0.to_bytes(),
        )),
    }
}

/// Load seccomp and exec. An `exec`'s caller still waits on the socket (its
/// end is close-on-exec: EOF means the execve went through), so a failure
/// here goes to it; an init's `start` does not wait, so it goes to stderr.
fn exec(plan: &Plan, exe: usize, sync_fd: c_int, mut slot: Option<&mut Msg>) -> ! {
    let path = &plan.exec_candidates[exe];
    // `code`: the exit status, as a shell gives (127: not found, 126: found
    // but not run); stderr when the socket cannot carry the report (a
    // seccomp profile that denies sendmsg), so it is never silent.
    let mut fail = |step: Step, e: Errno, detail: &[u8], code: c_int| -> ! {
        // `exec` and `run` wait on the socket until the exec; a started
        // container's `create` is gone.
        let waited = plan.kind == Kind::Exec || plan.exec_fifo.is_none();
        let sent = waited && tell(sync_fd, &mut slot, &Msg::error(step, e, detail));
        if !sent {
            let sep: &[u8] = if detail.is_empty() { b"" } else { b" " };
            sys::report_stderr(&[
                b"mica: ",
                step.describe().as_bytes(),
                sep,
                detail,
                b": ",
                e.desc().as_bytes(),
                b"\n",
            ]);
        }
        sys::exit(code)
    };
    if plan.no_new_privs {
        if let Some(s) = &plan.seccomp {
            if let Err(e) = s.install() {
                fail(Step::Seccomp, e, NO_DETAIL, 1);
            }
        }
    }
    // The caller's fds of the preserved range; one of ours in a gap of it
    // stays close-on-exec.
    for &fd in &plan.preserved {
        if !plan.keep_fds.contains(&fd) {
            let _ = sys::clear_cloexec(fd);
        }
    }
    unsafe { libc::execve(path.as_ptr(), plan.argv_ptrs.as_ptr(), plan.envp.as_ptr()) };
    // The file was found and executable (`find_executable`): what failed is
    // the exec itself (a missing ELF interpreter, E2BIG, ENOEXEC, ...).
    let e = Errno::last();
    let code = if e == Errno::ENOENT { 127 } else { 126 };
    fail(Step::ExecLookup, e, path.to_bytes(), code)
}

/// Run one hook from the child (createContainer, startContainer): fork,
/// state on stdin, wait with its timeout. Async-signal-safe.
fn run_hook(h: &HookCmd, state: &[u8]) -> Result<(), Errno> {
    let mut p = [0 as c_int; 2];
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Errno::last());
    }
    let pid = sys::fork()?;
    if pid == 0 {
        let _ = sys::dup2(p[0], 0);
        unsafe { libc::execve(h.path.as_ptr(), h.argv_ptrs.as_ptr(), h.envp.as_ptr()) };
        sys::exit(127);
    }
    sys::close(p[0]);
    let _ = sys::write_all(p[1], state);
    sys::close(p[1]);
    let mut waited = 0u64;
    loop {
        let (r, status) = sys::waitpid(pid, libc::WNOHANG)?;
        if r == pid {
            return if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(Errno::ECHILD)
            };
        }
        if h.timeout_ms > 0 && waited >= h.timeout_ms {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = sys::waitpid(pid, 0);
            return Err(Errno::ETIMEDOUT);
        }
        sys::sleep_ms(5);
        waited += 5;
    }
}
