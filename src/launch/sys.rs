//! Raw, allocation-free syscall wrappers for the child between clone and exec.
//!
//! Everything here is async-signal-safe: no heap, no locks, only syscalls
//! and stack buffers. Errors are returned as `Errno`.

use libc::{c_char, c_int, c_ulong, c_void};
use nix::errno::Errno;

pub type SysResult<T> = Result<T, Errno>;

fn check(rc: libc::c_long) -> SysResult<libc::c_long> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

fn check_int(rc: c_int) -> SysResult<c_int> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// A NUL-terminated path built on the stack, of at most `N - 1` bytes.
pub struct CPath<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// Any path in the container.
pub type PathBuf = CPath<4096>;
/// "." or "/proc/self/fd/N" ([`FdPath::mount_target`]): small, so handing
/// one back by value copies 40 bytes, not 4 KiB (~20 per start).
pub type FdPath = CPath<32>;

impl<const N: usize> CPath<N> {
    pub const fn new() -> Self {
        CPath {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn push_bytes(&mut self, b: &[u8]) -> SysResult<()> {
        if self.len + b.len() >= self.buf.len() {
            return Err(Errno::ENAMETOOLONG);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        self.buf[self.len] = 0;
        Ok(())
    }
    pub fn push_num(&mut self, mut n: u64) -> SysResult<()> {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = tmp;
        self.push_bytes(&digits[i..])
    }
    pub fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }
}

impl FdPath {
    /// The path to mount onto for the resolved target `fd` (O_PATH): "."
    /// after a fchdir when it is a directory (a lookup of "." walks
    /// nothing), else "/proc/self/fd/N" (a walk through procfs that makes
    /// dentries and inodes each time). Changes the cwd.
    pub fn mount_target(fd: c_int) -> SysResult<Self> {
        match fchdir(fd) {
            Ok(()) => {
                let mut p = FdPath::new();
                p.push_bytes(b".")?;
                Ok(p)
            }
            // Not a directory (or not searchable in a user namespace).
            Err(_) => Self::proc_fd(fd),
        }
    }

    /// "/proc/self/fd/N" for an O_PATH fd: the way to mount onto a resolved target.
    pub fn proc_fd(fd: c_int) -> SysResult<Self> {
        let mut p = FdPath::new();
        p.push_bytes(b"/proc/self/fd/")?;
        p.push_num(fd as u64)?;
        Ok(p)
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2) with RESOLVE_IN_ROOT: `path` is resolved as if `root` were `/`,
/// so no `..` or symlink in a container-controlled tree can escape it.
pub fn open_in_root(root: c_int, path: *const c_char, flags: c_int) -> SysResult<c_int> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path,
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(rc).map(|fd| fd as c_int)
}

pub fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> SysResult<c_int> {
    check_int(unsafe { libc::open(path, flags | libc::O_CLOEXEC, mode) })
}

pub fn openat(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mode: libc::mode_t,
) -> SysResult<c_int> {
    check_int(unsafe { libc::openat(dir, path, flags | libc::O_CLOEXEC, mode) })
}

pub fn close(fd: c_int) {
    unsafe { libc::close(fd) };
}

pub fn mount(
    source: *const c_char,
    target: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_void,
) -> SysResult<()> {
    check_int(unsafe { libc::mount(source, target, fstype, flags, data) }).map(drop)
}

pub fn umount2(target: *const c_char, flags: c_int) -> SysResult<()> {
    check_int(unsafe { libc::umount2(target, flags) }).map(drop)
}

pub fn mkdirat(dir: c_int, name: *const c_char, mode: libc::mode_t) -> SysResult<()> {
    match check_int(unsafe { libc::mkdirat(dir, name, mode) }) {
        Ok(_) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn mknodat(
    dir: c_int,
    name: *const c_char,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> SysResult<()> {
    check_int(unsafe { libc::mknodat(dir, name, mode, dev) }).map(drop)
}

pub fn symlinkat(target: *const c_char, dir: c_int, name: *const c_char) -> SysResult<()> {
    match check_int(unsafe { libc::symlinkat(target, dir, name) }) {
        Ok(_) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn fchownat(
    dir: c_int,
    name: *const c_char,
    uid: u32,
    gid: u32,
    flags: c_int,
) -> SysResult<()> {
    check_int(unsafe { libc::fchownat(dir, name, uid, gid, flags) }).map(drop)
}

pub fn fchmodat(dir: c_int, name: *const c_char, mode: libc::mode_t) -> SysResult<()> {
    check_int(unsafe { libc::fchmodat(dir, name, mode, 0) }).map(drop)
}

pub fn fstatat(dir: c_int, name: *const c_char, flags: c_int) -> SysResult<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check_int(unsafe { libc::fstatat(dir, name, &mut st, flags) })?;
    Ok(st)
}

pub fn fstatfs_flags(fd: c_int) -> SysResult<c_ulong> {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check_int(unsafe { libc::fstatvfs(fd, &mut st) })?;
    Ok(st.f_flag)
}

/// mount_setattr(2) on the mount at `fd` and every mount below it.
pub fn mount_setattr_recursive(fd: c_int, set: u64, clr: u64) -> SysResult<()> {
    mount_setattr(fd, true, set, clr, 0, 0)
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr(2) on the mount (or detached tree) at `fd`; `propagation`
/// is 0 (unchanged) or one of MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE;
/// `userns` is the user namespace fd of MOUNT_ATTR_IDMAP.
pub fn mount_setattr(
    fd: c_int,
    recursive: bool,
    set: u64,
    clr: u64,
    propagation: u64,
    userns: u64,
) -> SysResult<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation,
        userns_fd: userns,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn sched_setattr(attr: &super::plan::SchedAttr) -> SysResult<()> {
    check(unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            attr as *const super::plan::SchedAttr,
            0,
        )
    })
    .map(drop)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self, prio).
pub fn ioprio_set(prio: c_int) -> SysResult<()> {
    check(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) }).map(drop)
}

const AT_RECURSIVE: c_int = 0x8000;

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at
/// `path` (and, `recursive`, the mounts below it), as an fd.
pub fn open_tree_clone(path: *const c_char, recursive: bool) -> SysResult<c_int> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | if recursive {
            AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path, flags) })
        .map(|fd| fd as c_int)
}

/// move_mount(2) of the detached tree `from` onto the resolved target `to`.
pub fn move_mount(from: c_int, to: c_int) -> SysResult<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

pub fn chdir(path: *const c_char) -> SysResult<()> {
    check_int(unsafe { libc::chdir(path) }).map(drop)
}

/// Is the cwd below the root? The getcwd system call prefixes a path it
/// cannot reach from the root with "(unreachable)" (or fails: ENOENT).
pub fn cwd_is_reachable() -> bool {
    let mut buf = [0u8; 4096];
    let rc = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    // ERANGE: a path longer than PATH_MAX is still a path from the root.
    rc > 0 && buf[0] == b'/' || rc < 0 && Errno::last() == Errno::ERANGE
}

pub fn fchdir(fd: c_int) -> SysResult<()> {
    check_int(unsafe { libc::fchdir(fd) }).map(drop)
}

pub fn chroot(path: *const c_char) -> SysResult<()> {
    check_int(unsafe { libc::chroot(path) }).map(drop)
}

pub fn pivot_root(new_root: *const c_char, put_old: *const c_char) -> SysResult<()> {
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root, put_old) }).map(drop)
}

pub fn setns(fd: c_int, nstype: c_int) -> SysResult<()> {
    check_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: c_int) -> SysResult<()> {
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// Bring the network namespace's loopback interface up, as runc and crun
/// do for a namespace they create (a new one starts with `lo` down, so
/// 127.0.0.1 and ::1 are unreachable).
pub fn loopback_up() -> SysResult<()> {
    let s = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *c as c_char;
    }
    let r = (|| {
        check_int(unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req) })?;
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short == 0 {
            req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
            check_int(unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req) })?;
        }
        Ok(())
    })();
    close(s);
    r
}

/// Join (making it if missing) the session keyring `name`, then add
/// `perm_bits` to its permissions. A keyring of that name that another user
/// made (and left joinable, to squat it) is refused with EEXIST.
pub fn join_session_keyring(name: &std::ffi::CStr, perm_bits: u32) -> SysResult<()> {
    const JOIN_SESSION_KEYRING: libc::c_long = 1;
    const SETPERM: libc::c_long = 5;
    const DESCRIBE: libc::c_long = 6;
    let key =
        check(unsafe { libc::syscall(libc::SYS_keyctl, JOIN_SESSION_KEYRING, name.as_ptr()) })?;
    // "type;uid;gid;perm;description": uid decimal, perm hex.
    let mut buf = [0u8; 256];
    let n = check(unsafe {
        libc::syscall(libc::SYS_keyctl, DESCRIBE, key, buf.as_mut_ptr(), buf.len())
    })? as usize;
    let text = &buf[..n.min(buf.len())];
    let field = |i: usize, radix: u32| {
        text.split(|b| *b == b';').nth(i).and_then(|f| {
            f.iter().try_fold(0u32, |acc, b| {
                let d = (*b as char).to_digit(radix)?;
                acc.checked_mul(radix)?.checked_add(d)
            })
        })
    };
    if field(1, 10) != Some(unsafe { libc::geteuid() }) {
        return Err(Errno::EEXIST);
    }
    if perm_bits == 0 {
        return Ok(());
    }
    let perm = field(3, 16).ok_or(Errno::EINVAL)?;
    check(unsafe { libc::syscall(libc::SYS_keyctl, SETPERM, key, perm | perm_bits) }).map(drop)
}

pub fn prctl(op: c_int, a: c_ulong, b: c_ulong, c: c_ulong, d: c_ulong) -> SysResult<c_int> {
    check_int(unsafe { libc::prctl(op, a, b, c, d) })
}

pub fn write_all(fd: c_int, mut data: &[u8]) -> SysResult<()> {
    while !data.is_empty() {
        let n = unsafe { libc::write(fd, data.as_ptr() as *const c_void, data.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Open `path` for writing and write `data` (for /proc and /sys knobs).
pub fn write_file(path: *const c_char, data: &[u8]) -> SysResult<()> {
    write_file_at(libc::AT_FDCWD, path, data)
}

pub fn write_file_at(dir: c_int, path: *const c_char, data: &[u8]) -> SysResult<()> {
    let fd = openat(dir, path, libc::O_WRONLY, 0)?;
    let r = write_all(fd, data);
    close(fd);
    r
}

pub fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut c_void, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

pub fn fork() -> SysResult<libc::pid_t> {
    // The raw syscall: no atfork handlers, nothing but the kernel's copy.
    check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })
    .map(|p| p as libc::pid_t)
}

pub fn waitpid(pid: libc::pid_t, flags: c_int) -> SysResult<(libc::pid_t, c_int)> {
    let mut status = 0;
    loop {
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc >= 0 {
            return Ok((rc, status));
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Has the other end of the socket `fd` been closed (its process gone)?
pub fn peer_gone(fd: c_int) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLHUP != 0
}

pub fn exit(code: c_int) -> ! {
    unsafe { libc::_exit(code) }
}

pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) with 64-bit masks (version 3).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) })
        .map(drop)
}

/// Close every fd from `first` up, except those in `keep` (sorted).
pub fn close_all_but(first: u32, keep: &[i32]) -> SysResult<()> {
    let mut from = first;
    for &k in keep {
        let k = k as u32;
        if k < from {
            continue;
        }
        if k > from {
            check(unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0u32) })?;
        }
        from = k + 1;
    }
    check(unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) }).map(drop)
}

pub fn close_range_cloexec(first: u32) -> SysResult<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })
        .map(drop)
}

pub fn clear_cloexec(fd: c_int) -> SysResult<()> {
    check_int(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

pub fn dup2(old: c_int, new: c_int) -> SysResult<()> {
    check_int(unsafe { libc::dup2(old, new) }).map(drop)
}

/// Reset every signal disposition to default and unblock all signals
/// (the parent may ignore SIGPIPE or block signals it forwards).
pub fn reset_signals() {
    // Raw syscalls: libc's sigaction refuses its own internal real-time
    // signals (32-34), and an ignored signal survives execve, so every one
    // of 1..=64 goes back to SIG_DFL. The kernel's struct for SIG_DFL with
    // no flags, restorer or mask is all zeros on every architecture.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
    let empty = 0u64;
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

extern "C" fn exit_of_signal(sig: c_int) {
    unsafe { libc::_exit(128 + sig) }
}

/// Make every signal whose default action ends a process end this one,
/// though it is a pid namespace's init (which the kernel spares from
/// signals it has no handler for): a created container waiting for
/// `start` then dies of `kill ID TERM` as runc's does. execve puts the
/// handlers back to SIG_DFL. Best effort: a seccomp profile may refuse.
pub fn exit_on_signals() {
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = exit_of_signal as *const () as usize;
    let spared = [
        libc::SIGKILL,
        libc::SIGSTOP,
        // Our own write to a startContainer hook that left early.
        libc::SIGPIPE,
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    for sig in 1..=64 {
        if !spared.contains(&sig) {
            // libc refuses its internal real-time signals: they stay spared.
            unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        }
    }
}

/// Write a message straight to fd 2 (used only when nobody else can report).
pub fn report_stderr(parts: &[&[u8]]) {
    for p in parts {
        let _ = write_all(2, p);
    }
}
