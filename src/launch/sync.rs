//! The parent <-> child protocol over one SOCK_SEQPACKET socketpair.
//!
//! Every message is a fixed-size record, so the child sends and receives
//! without allocating. The child blocks on the socket; when the parent dies
//! the child reads EOF and exits, so a killed `mica create` never leaves a
//! process waiting forever.

use super::sys;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd};

pub const DETAIL_LEN: usize = 512;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// parent -> child: id maps written, cgroups joined; go on.
    Go = 1,
    /// middle -> parent: the pid of the real container process (second fork).
    Pid = 2,
    /// child -> parent: mounts done, about to pivot: run createRuntime hooks.
    PrePivot = 3,
    /// parent -> child: hooks done, continue.
    Continue = 4,
    /// child -> parent: set up, waiting for `start`.
    Ready = 5,
    /// child -> parent: a step failed.
    Error = 6,
    /// parent -> child: state JSON for hooks run by the child follows in the payload buffer.
    State = 7,
    /// parent -> child: the cgroups are joined (sent after `Go` when the
    /// parent joins them while the child already sets up its mounts).
    Joined = 8,
}

/// Declares `Step` and `Step::ALL` from one list, so they cannot drift apart.
macro_rules! steps {
    ($($name:ident),* $(,)?) => {
        /// Which step of the child failed; the parent turns it into words.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Step {
            $($name),*
        }

        impl Step {
            const ALL: &'static [Step] = &[$(Step::$name),*];
        }
    };
}

steps!(
    Sync,
    Setns,
    Unshare,
    TimeOffsets,
    Fork,
    MakePrivate,
    BindRootfs,
    Mount,
    Mountpoint,
    Device,
    Symlink,
    CreateContainerHook,
    Pivot,
    Propagation,
    Sysctl,
    Console,
    MaskPath,
    ReadonlyPath,
    ReadonlyRoot,
    Hostname,
    Domainname,
    Chdir,
    Rlimit,
    Personality,
    Capabilities,
    Groups,
    SetUid,
    SetGid,
    NoNewPrivs,
    Seccomp,
    ExecNotFound,
    ExecPermission,
    ExecLookup,
    Umask,
    Setsid,
    OomScore,
    Fds,
    Cgroup,
    Loopback,
    Keyring,
    MountAttr,
    Scheduler,
    IoPriority,
    StartContainerHook,
);

impl Step {
    pub fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    pub fn describe(self) -> &'static str {
        use Step::*;
        match self {
            Sync => "sync with parent",
            Setns => "join namespace",
            Unshare => "create namespace",
            TimeOffsets => "write time namespace offsets",
            Fork => "fork into the pid namespace",
            MakePrivate => "make mounts private",
            BindRootfs => "bind-mount rootfs",
            Mount => "mount",
            Mountpoint => "create mountpoint",
            Device => "create device",
            Symlink => "create /dev symlink",
            CreateContainerHook => "createContainer hook",
            Pivot => "pivot_root",
            Propagation => "set rootfs propagation",
            Sysctl => "write sysctl",
            Console => "set up console",
            MaskPath => "mask path",
            ReadonlyPath => "make path read-only",
            ReadonlyRoot => "make rootfs read-only",
            Hostname => "set hostname",
            Domainname => "set domainname",
            Chdir => "chdir to cwd",
            Rlimit => "set rlimit",
            Personality => "set personality",
            Capabilities => "set capabilities",
            Groups => "set additional groups",
            SetUid => "set uid",
            SetGid => "set gid",
            NoNewPrivs => "set no_new_privs",
            Seccomp => "load seccomp filter",
            ExecNotFound => "exec",
            ExecPermission => "exec",
            ExecLookup => "exec",
            Umask => "set umask",
            Setsid => "setsid",
            OomScore => "set oom_score_adj",
            Fds => "prepare file descriptors",
            Cgroup => "join cgroup",
            Loopback => "bring up loopback",
            Keyring => "join session keyring",
            MountAttr => "set recursive mount attributes (mount_setattr)",
            Scheduler => "set the scheduling policy (sched_setattr)",
            IoPriority => "set the I/O priority (ioprio_set)",
            StartContainerHook => "run startContainer hook",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Msg {
    pub kind: u32,
    pub step: u32,
    pub errno: i32,
    pub value: i64,
    pub detail_len: u32,
    pub detail: [u8; DETAIL_LEN],
}

impl Msg {
    pub const fn new(kind: Kind) -> Msg {
        Msg {
            kind: kind as u32,
            step: 0,
            errno: 0,
            value: 0,
            detail_len: 0,
            detail: [0; DETAIL_LEN],
        }
    }

    /// No message (kind 0): a slot nothing was written into.
    pub const fn blank() -> Msg {
        let mut m = Msg::new(Kind::Go);
        m.kind = 0;
        m
    }

    pub fn error(step: Step, errno: Errno, detail: &[u8]) -> Msg {
        let mut m = Msg::new(Kind::Error);
        m.step = step as u32;
        m.errno = errno as i32;
        let n = detail.len().min(DETAIL_LEN);
        m.detail[..n].copy_from_slice(&detail[..n]);
        m.detail_len = n as u32;
        m
    }

    pub fn kind(&self) -> Option<Kind> {
        use Kind::*;
        [Go, Pid, PrePivot, Continue, Ready, Error, State, Joined]
            .into_iter()
            .find(|k| *k as u32 == self.kind)
    }

    pub fn detail(&self) -> &[u8] {
        &self.detail[..(self.detail_len as usize).min(DETAIL_LEN)]
    }
}

/// Send a fixed-size message (async-signal-safe).
pub fn send(fd: i32, msg: &Msg) -> Result<(), Errno> {
    let p = msg as *const Msg as *const u8;
    let bytes = unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<Msg>()) };
    // send(MSG_NOSIGNAL): a peer that is gone is EPIPE, not a SIGPIPE.
    loop {
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr() as *const _,
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EPIPE => return Err(Errno::EPIPE),
            // The container's seccomp profile, loaded before the capability
            // drop when noNewPrivileges is off, may deny sendto/sendmsg (an
            // allow-list without them): write(2) sends the same record.
            _ => return sys::write_all(fd, bytes),
        }
    }
}

/// Receive one message; EOF (the peer is gone) is `Err(EPIPE)`.
pub fn recv(fd: i32) -> Result<Msg, Errno> {
    let mut msg = Msg::new(Kind::Go);
    let p = &mut msg as *mut Msg as *mut u8;
    let buf = unsafe { std::slice::from_raw_parts_mut(p, std::mem::size_of::<Msg>()) };
    // A peer that exits with a message of ours unread resets the socket,
    // and the reset is reported before what it sent last (its error
    // report): the reset is cleared once reported, so read again.
    let n = match sys::read(fd, buf) {
        Err(Errno::ECONNRESET) => sys::read(fd, buf)?,
        r => r?,
    };
    if n == 0 {
        return Err(Errno::EPIPE);
    }
    if n != buf.len() {
        return Err(Errno::EPROTO);
    }
    Ok(msg)
}

/// Receive a variable-length payload into a preallocated buffer.
pub fn recv_payload(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    let n = sys::read(fd, buf)?;
    if n == 0 {
        return Err(Errno::EPIPE);
    }
    Ok(n)
}

/// Send a payload (parent side).
pub fn send_payload(fd: &OwnedFd, data: &[u8]) -> Result<(), Errno> {
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr() as *const _,
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Send an fd over a unix socket with SCM_RIGHTS (the console master), with
/// no allocation: the control buffer lives on the stack.
pub fn send_fd(sock: i32, fd: i32, name: &[u8]) -> Result<(), Errno> {
    #[repr(C)]
    union Cmsg {
        hdr: libc::cmsghdr,
        buf: [u8; 64],
    }
    let mut cbuf = Cmsg { buf: [0; 64] };
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut _,
        iov_len: name.len().max(1),
    };
    let one = [0u8; 1];
    if name.is_empty() {
        iov.iov_base = one.as_ptr() as *mut _;
    }
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = unsafe { cbuf.buf.as_mut_ptr() } as *mut _;
    mh.msg_controllen = space as _;
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::copy_nonoverlapping(&fd as *const i32 as *const u8, libc::CMSG_DATA(c), 4);
    }
    let rc = unsafe { libc::sendmsg(sock, &mh, libc::MSG_NOSIGNAL) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_the_wire_number() {
        for s in Step::ALL {
            assert_eq!(Step::from_u32(*s as u32), Some(*s));
        }
        assert_eq!(Step::from_u32(Step::ALL.len() as u32), None);
    }

    #[test]
    fn error_messages_carry_step_errno_and_detail() {
        let m = Msg::error(Step::Mount, Errno::ENOENT, b"/x");
        assert_eq!(m.kind(), Some(Kind::Error));
        assert_eq!(Step::from_u32(m.step), Some(Step::Mount));
        assert_eq!(m.detail(), b"/x");
        let long = vec![b'a'; DETAIL_LEN + 10];
        assert_eq!(
            Msg::error(Step::Mount, Errno::ENOENT, &long).detail().len(),
            DETAIL_LEN
        );
    }
}
