//! The launch path: what happens between clone and exec.
//!
//! The parent builds a [`Plan`] (everything pre-computed), clones once with
//! every new-namespace flag (into the cgroup2 dir), writes id maps while the
//! child joins its v1 cgroups itself, then lets it go. The child runs
//! [`child::run`], a linear sequence of syscalls ending in execve. A second
//! fork happens only to join a pid namespace or make a time namespace.

mod child;
pub mod error;
pub mod hooks;
mod idmap;
pub mod plan;
mod solo;
mod sync;
mod sys;

pub use error::{Error, Result};
pub use plan::{Kind, Options, Plan};
pub use sync::Step;

use crate::cgroups::Cgroup;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 (into the cgroup when given), falling back to clone; returns like fork.
fn clone(flags: u64, cgroup_fd: Option<i32>) -> std::result::Result<(libc::pid_t, bool), Errno> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc >= 0 {
        return Ok((rc as libc::pid_t, cgroup_fd.is_some()));
    }
    let e = Errno::last();
    if cgroup_fd.is_some() && e != Errno::ENOSYS {
        // The kernel refused CLONE_INTO_CGROUP (e.g. a domain-invalid cgroup): join afterwards.
        return clone(flags, None);
    }
    if e != Errno::ENOSYS {
        return Err(e);
    }
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok((rc as libc::pid_t, false))
    }
}

/// A child that has been cloned and is waiting for `go`.
pub struct Spawned {
    pid: i32,
    /// The child ran alone (`Plan::solo`): it has exec'd or exited by now,
    /// and this is what it reported (Ready, an error, or nothing if it died).
    solo: Option<sync::Msg>,
    sync: OwnedFd,
    second_fork: bool,
    /// The child waits for `Joined` (see `Plan::join_late`)...
    join_late: bool,
    /// ...after the parent put it into this cgroup2 dir.
    late_cgroup: Option<Cgroup>,
    /// Reaped already (it died during setup): its pid may be another's now.
    reaped: std::cell::Cell<bool>,
}

const STATE_BUF: usize = 64 * 1024;

/// systemd socket activation, passed on as runc passes it: when mica's
/// `LISTEN_PID` is mica itself, its `LISTEN_FDS` fds (3 onwards) go to the
/// container's process, the `--preserve-fds` ones follow them, and the
/// process's environment gets `LISTEN_FDS=N`, `LISTEN_PID=1` (and
/// `LISTEN_FDNAMES` when set).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenFds {
    pub count: i32,
    pub names: Option<String>,
}

impl ListenFds {
    /// From mica's own environment (`create` and `run`, as runc).
    pub fn from_env() -> Option<ListenFds> {
        let var = |k| std::env::var(k).ok();
        Self::parse(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES"),
            std::process::id(),
        )
    }

    fn parse(
        pid: Option<&str>,
        fds: Option<&str>,
        names: Option<String>,
        own: u32,
    ) -> Option<Self> {
        if pid?.trim().parse::<u32>().ok()? != own {
            return None; // meant for another process (an ancestor of ours)
        }
        let count = fds?.trim().parse::<i32>().ok()?;
        (1..=1 << 20)
            .contains(&count)
            .then_some(ListenFds { count, names })
    }

    /// The environment entries the container's process gets, replacing any
    /// the config has.
    pub fn apply(&self, env: &mut Vec<String>) {
        env.retain(|e| {
            !["LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="]
                .iter()
                .any(|p| e.starts_with(p))
        });
        env.push(format!("LISTEN_FDS={}", self.count));
        env.push("LISTEN_PID=1".into());
        if let Some(n) = &self.names {
            env.push(format!("LISTEN_FDNAMES={n}"));
        }
    }
}

/// The fds of `--preserve-fds N` (3..3+N) that were open when mica started:
/// the caller's. Only these are passed on; an fd of ours that landed in a
/// gap of the range (the state dir, the sync socket, a log file) stays
/// close-on-exec and never reaches the container.
static PRESERVED: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

/// Note which fds of `--preserve-fds n` are open; call before opening anything.
pub fn record_preserved_fds(n: i32) {
    let open = preserved_range(n)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .collect();
    let _ = PRESERVED.set(open);
}

/// The recorded fds, or (a library caller that recorded nothing) the range.
fn preserved_fds(n: i32) -> Vec<i32> {
    match PRESERVED.get() {
        Some(v) => v.clone(),
        None => preserved_range(n).collect(),
    }
}

/// 3..3+n, up to the open-files limit (no fd at or above it can be open).
fn preserved_range(n: i32) -> std::ops::Range<i32> {
    if n <= 0 {
        return 3..3; // no getrlimit on every start that preserves nothing
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        i32::try_from(lim.rlim_cur).unwrap_or(i32::MAX)
    } else {
        i32::MAX
    };
    3..3i32.saturating_add(n).min(limit)
}

/// Clone the child, write its id maps, put it into `cgroup`. The child waits
/// for [`Spawned::go`]; if this process dies first, the child exits.
pub fn spawn(plan: Plan, cgroup: Option<&Cgroup>) -> Result<Spawned> {
    let mut fds = [0i32; 2];
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(error::sys("socketpair")(Errno::last()));
    }
    let parent_sock = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let child_sock = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    // Everything the child needs is allocated now. The state JSON comes
    // only for hooks the child runs: without them no buffer (64 KiB written
    // before the clone and freed after it were pages both processes share
    // copy-on-write, the parent's next allocations faulting on them).
    let mut state_buf = if plan.child_hooks() {
        vec![0u8; STATE_BUF]
    } else {
        Vec::new()
    };
    let cg_fd = match cgroup.and_then(|c| c.v2_dir()) {
        Some(dir) if !plan.user_ns => {
            crate::cgroups::at::open(dir, libc::O_RDONLY | libc::O_DIRECTORY)
                .ok()
                .map(OwnedFd::from)
        }
        _ => None,
    };
    let mut plan = plan;
    if let Some(cg) = cgroup {
        let nul = || Error::Protocol("NUL in a cgroup path".into());
        for path in cg.v1_tasks()? {
            let (dir, at) = crate::cgroups::at::split(&path).map_err(|_| nul())?;
            if dir != libc::AT_FDCWD {
                plan.cgroup_dir = dir;
            }
            let full = std::ffi::CString::new(path.into_os_string().into_encoded_bytes())
                .map_err(|_| nul())?;
            plan.cgroup_tasks.push((at, full));
        }
    }
    plan.keep_fds = keep_fds(&plan, child_sock.as_raw_fd());
    plan.preserved = preserved_fds(plan.preserve_fds);
    // The cgroup2 dir, when clone3 cannot join it: the parent joins late (in
    // `go`, while the child mounts) unless a second fork would create the
    // final process before the join.
    let v2_needs_join = cgroup.is_some_and(|cg| cg.v2_dir().is_some()) && cg_fd.is_none();
    plan.join_late = v2_needs_join && !plan.second_fork;
    // Alone (as `create` decided, by `Plan::may_run_solo`) only where clone3
    // puts it into its cgroup2 dir: it does not wait for us to do that.
    debug_assert!(!plan.solo || plan.may_run_solo());
    plan.solo = plan.solo && !v2_needs_join;
    let cg_raw = cg_fd.as_ref().map(|f| f.as_raw_fd());
    // Alone, the child reports here (blank: it died without a word).
    let mut report = sync::Msg::blank();
    let solo = plan.solo.then(|| {
        solo::clone(
            &plan,
            cg_raw,
            child_sock.as_raw_fd(),
            parent_sock.as_raw_fd(),
            &mut report,
        )
    });
    let (pid, joined_at_clone) = match solo {
        Some(Ok(pid)) => (pid, true),
        // Not alone after all (no clone3 here, or it refused the cgroup):
        // the usual way, which tells the child to wait for `Go`.
        _ => {
            plan.solo = false;
            let r = clone(plan.clone_flags, cg_raw).map_err(error::sys("clone"))?;
            if r.0 == 0 {
                unsafe { libc::close(parent_sock.as_raw_fd()) };
                child::run(&plan, child_sock.as_raw_fd(), &mut state_buf, None);
            }
            r
        }
    };
    drop(child_sock);
    drop(cg_fd);
    // The child joins its v1 cgroups itself; clone3 joined the cgroup2 dir
    // unless the kernel refused (then it is joined before `Go`).
    let late_cgroup = cgroup
        .filter(|cg| cg.v2_dir().is_some() && !joined_at_clone)
        .map(Cgroup::v2_only);
    let join_late = plan.join_late;
    let spawned = Spawned {
        pid,
        solo: plan.solo.then_some(report),
        sync: parent_sock,
        second_fork: plan.second_fork,
        join_late,
        late_cgroup: if join_late { late_cgroup.clone() } else { None },
        reaped: std::cell::Cell::new(false),
    };
    let setup = || -> Result<()> {
        if let Some(m) = &plan.uid_map {
            write_proc(pid, "uid_map", m)?;
        }
        if let Some(m) = &plan.gid_map {
            write_proc(pid, "gid_map", m)?;
        }
        if !join_late {
            if let Some(cg) = &late_cgroup {
                cg.add_process(pid)?;
            }
        }
        Ok(())
    };
    if let Err(e) = setup() {
        spawned.kill();
        return Err(e);
    }
    Ok(spawned)
}

/// The fds the child needs until exec.
fn keep_fds(plan: &Plan, sync: i32) -> Vec<i32> {
    let mut v: Vec<i32> = plan.join_ns.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
    v.push(sync);
    // Until the v1 cgroups are joined (the child closes it then).
    if plan.cgroup_dir != libc::AT_FDCWD {
        v.push(plan.cgroup_dir);
    }
    v.extend(plan.exec_fifo.as_ref().map(|f| f.as_raw_fd()));
    v.extend(plan.console_socket.as_ref().map(|f| f.as_raw_fd()));
    v.extend(
        plan.mounts
            .iter()
            .filter_map(|m| m.idmap.as_ref().map(|i| i.tree.as_raw_fd())),
    );
    v.sort_unstable();
    v
}

fn write_proc(pid: i32, file: &str, content: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, content).map_err(|e| Error::Io {
        what: format!("write {path}"),
        source: e,
    })
}

impl Spawned {
    /// The pid of the container process (after [`go`](Self::go), the final one).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child ran alone (see `Plan::solo`): it has exec'd or exited.
    pub fn solo(&self) -> bool {
        self.solo.is_some()
    }

    /// Let the child continue; after a second fork, learn the final pid.
    /// `state_json` is handed to the hooks the child runs itself.
    pub fn go(&mut self, state_json: impl FnOnce(i32) -> Vec<u8>) -> Result<()> {
        if self.solo.is_some() {
            return Ok(());
        }
        self.send(sync::Kind::Go)?;
        if self.second_fork {
            let m = self.recv()?;
            match m.kind() {
                Some(sync::Kind::Pid) => {
                    let middle = self.pid;
                    self.pid = m.value as i32;
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(middle), None);
                }
                _ => return Err(self.unexpected(m)),
            }
        }
        let state = state_json(self.pid);
        let mut m = sync::Msg::new(sync::Kind::State);
        m.value = state.len() as i64;
        if state.len() > STATE_BUF {
            return Err(Error::Protocol("state JSON too large".into()));
        }
        self.send_msg(&m)?;
        if !state.is_empty() {
            sync::send_payload(&self.sync, &state).map_err(error::sys("sync send"))?;
        }
        if self.join_late {
            if let Some(cg) = self.late_cgroup.take() {
                cg.add_process(self.pid)?;
            }
            self.send(sync::Kind::Joined)?;
        }
        Ok(())
    }

    /// Wait until the child is ready (blocked on the exec fifo for an init,
    /// about to exec for `exec`). `pre_pivot` runs when the child asks for the
    /// prestart/createRuntime hooks.
    pub fn wait_ready(&mut self, mut pre_pivot: impl FnMut() -> Result<()>) -> Result<()> {
        if let Some(m) = self.solo {
            return match m.kind() {
                Some(sync::Kind::Ready) => Ok(()),
                None => Err(Error::Protocol(self.died_in_setup())),
                // It said why, then exited (the caller's `kill` reaps it).
                _ => Err(self.unexpected(m)),
            };
        }
        loop {
            let m = self.recv()?;
            match m.kind() {
                Some(sync::Kind::Ready) => return Ok(()),
                Some(sync::Kind::PrePivot) => {
                    pre_pivot()?;
                    self.send(sync::Kind::Continue)?;
                }
                _ => return Err(self.unexpected(m)),
            }
        }
    }

    /// After [`wait_ready`](Self::wait_ready) of an `exec`: wait until the
    /// process has exec'd. Its end of the socket is close-on-exec and the
    /// kernel drops it on the way back to user space, so EOF means the
    /// execve went through (the process runs its command); a seccomp load
    /// or execve that failed reports over the socket instead.
    pub fn wait_exec(&self) -> Result<()> {
        // Alone, it exec'd before `wait_ready` (which had its report).
        if self.solo.is_some() {
            return Ok(());
        }
        match sync::recv(self.sync.as_raw_fd()) {
            Err(Errno::EPIPE) => Ok(()),
            Ok(m) => Err(self.unexpected(m)),
            Err(e) => Err(error::sys("sync receive")(e)),
        }
    }

    fn send(&self, kind: sync::Kind) -> Result<()> {
        self.send_msg(&sync::Msg::new(kind))
    }

    /// Send; when the child is gone, report what it said before exiting.
    fn send_msg(&self, m: &sync::Msg) -> Result<()> {
        match sync::send(self.sync.as_raw_fd(), m) {
            Ok(()) => Ok(()),
            Err(Errno::EPIPE) => Err(match self.recv() {
                Ok(m) => self.unexpected(m),
                Err(e) => e,
            }),
            Err(e) => Err(error::sys("sync send")(e)),
        }
    }

    fn recv(&self) -> Result<sync::Msg> {
        match sync::recv(self.sync.as_raw_fd()) {
            Ok(m) => Ok(m),
            Err(Errno::EPIPE) => Err(Error::Protocol(self.died_in_setup())),
            Err(e) => Err(error::sys("sync receive")(e)),
        }
    }

    /// The child closed the socket without a word: it died before exec.
    /// Say how, when it is our child (a second fork's process is not).
    fn died_in_setup(&self) -> String {
        let what = "the container process exited during setup";
        let mut status = 0;
        if unsafe { libc::waitpid(self.pid, &mut status, 0) } != self.pid {
            return what.into();
        }
        self.reaped.set(true);
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            let hint = if sig == libc::SIGKILL {
                " (out of memory? the memory limit may be too low to set the container up)"
            } else {
                ""
            };
            format!("the container process was killed by signal {sig} during setup{hint}")
        } else {
            format!("{what} (status {})", libc::WEXITSTATUS(status))
        }
    }

    fn unexpected(&self, m: sync::Msg) -> Error {
        if m.kind() == Some(sync::Kind::Error) {
            Error::Child {
                step: sync::Step::from_u32(m.step).unwrap_or(sync::Step::Sync),
                detail: String::from_utf8_lossy(m.detail()).into_owned(),
                errno: Errno::from_raw(m.errno),
            }
        } else {
            Error::Protocol(format!("unexpected message {}", m.kind))
        }
    }

    /// Kill the child (and reap it if it is ours).
    pub fn kill(&self) {
        if self.reaped.get() {
            return;
        }
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
    }
}

#[cfg(test)]
mod tests {
    use super::ListenFds;

    #[test]
    fn listen_fds_only_for_this_pid() {
        let l = |pid, fds| ListenFds::parse(pid, fds, None, 42);
        assert_eq!(
            l(Some("42"), Some("3")),
            Some(ListenFds {
                count: 3,
                names: None
            })
        );
        assert_eq!(l(Some("41"), Some("3")), None, "another process's");
        assert_eq!(l(None, Some("3")), None);
        assert_eq!(l(Some("42"), None), None);
        assert_eq!(l(Some("42"), Some("0")), None);
        assert_eq!(l(Some("42"), Some("-1")), None);
        assert_eq!(l(Some("42"), Some("x")), None);
        assert_eq!(l(Some("42"), Some("99999999")), None, "beyond any fd table");
    }

    #[test]
    fn listen_fds_replace_the_configs_entries() {
        let mut env = vec![
            "PATH=/bin".to_string(),
            "LISTEN_FDS=9".to_string(),
            "LISTEN_PID=7".to_string(),
            "LISTEN_FDNAMES=old".to_string(),
        ];
        ListenFds {
            count: 2,
            names: Some("a:b".into()),
        }
        .apply(&mut env);
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "LISTEN_FDS=2",
                "LISTEN_PID=1",
                "LISTEN_FDNAMES=a:b"
            ]
        );
        let mut env = vec!["LISTEN_FDNAMES=old".to_string()];
        ListenFds {
            count: 1,
            names: None,
        }
        .apply(&mut env);
        assert_eq!(env, ["LISTEN_FDS=1", "LISTEN_PID=1"]);
    }
}
