//! create, start and run.

use super::error::{Error, Result};
use super::state::{self, Dir, Proc, State, Status};
use crate::cgroups::Cgroup;
use crate::launch::{self, hooks, plan};
use crate::trace;
use oci_spec::runtime::Spec;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    /// Keep the caller's session keyring (runc's `--no-new-keyring`).
    pub no_new_keyring: bool,
    /// Socket activation fds passed to mica ([`crate::launch::ListenFds`]): they come
    /// first, the `preserve_fds` after them.
    pub listen: Option<crate::launch::ListenFds>,
}

/// Read and check `config.json`: one clear line for malformed JSON, a wrong
/// type or an unsupported version.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data =
        std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let v = spec.version();
    let ok = ["1.0.", "1.1.", "1.2.", "1.3."]
        .iter()
        .any(|p| v.starts_with(p));
    if !ok {
        return Err(Error::Config(format!(
            "{}: unsupported ociVersion {v:?} (mica runs 1.0.x to 1.3.x)",
            path.display()
        )));
    }
    Ok(spec)
}

pub fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::io(format!("connect console socket {}", path.display()), e))?;
    Ok(OwnedFd::from(s))
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_relative() {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    state::write_atomic(&abs, pid.to_string().as_bytes(), 0o666)
}

/// A created container: its init is blocked on the exec fifo.
pub struct Created {
    pub dir: Dir,
    pub state: State,
    pub spawned: launch::Spawned,
    pub spec: Spec,
}

/// Everything `create` made, undone in reverse when a later step fails.
fn undo(dir: &Dir, state: Option<&State>, spawned: Option<&launch::Spawned>) {
    if let Some(s) = spawned {
        s.kill();
    }
    if let Some(cg) = state.and_then(|s| s.cgroup.as_ref()) {
        let _ = cg.destroy();
    }
    let _ = dir.remove();
}

pub fn create(root: &Path, id: &str, opts: &CreateOptions) -> Result<Created> {
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| Error::io(format!("bundle {}", opts.bundle.display()), e))?;
    let spec = load_spec(&bundle)?;
    trace::phase("config parse");
    let console = opts
        .console_socket
        .as_deref()
        .map(connect_console)
        .transpose()?;
    create_with(root, id, opts, bundle, spec, console, false)
}

/// `create` with the config already loaded and the console socket (if any)
/// connected. With `exec_now` (for `run`) there is no exec fifo: the
/// process execs as soon as it is ready and the state goes straight from
/// "creating" to "running".
fn create_with(
    root: &Path,
    id: &str,
    opts: &CreateOptions,
    bundle: PathBuf,
    spec: Spec,
    console: Option<OwnedFd>,
    exec_now: bool,
) -> Result<Created> {
    state::validate_id(id)?;
    let cg_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    // Where the cgroup will be (nothing is created yet).
    let mut cg = Cgroup::resolve(cg_path.as_deref(), id)?;
    // The whole plan is checked before anything exists.
    let mut plan = plan::build(
        &spec,
        plan::Options {
            kind: plan::Kind::Init,
            bundle: &bundle,
            no_pivot: opts.no_pivot,
            console_socket: console,
            preserve_fds: opts
                .preserve_fds
                .saturating_add(opts.listen.as_ref().map_or(0, |l| l.count)),
            exec_fifo: None,
            join_pid: None,
            cgroup: Some(&cg),
            session_keyring: (!opts.no_new_keyring).then(|| state::session_keyring(id)),
            listen: opts.listen.as_ref(),
        },
    )?;
    trace::phase("plan");
    let hooks = spec.hooks().clone().unwrap_or_default();
    let some = |h: &Option<Vec<oci_spec::runtime::Hook>>| h.as_ref().is_some_and(|h| !h.is_empty());
    plan.prepivot_hooks = some(hooks.prestart()) || some(hooks.create_runtime());
    // A hook that runs while the container is being created may ask for its
    // state: then the pid is on disk as soon as it exists. Otherwise the
    // save that ends creation is the first with it (one state file fewer to
    // write per container; whatever a crash leaves is found by its cgroup).
    // The hooks the container process runs itself get the state from us.
    let container_hooks = plan.child_hooks();
    let early_pid = plan.prepivot_hooks || container_hooks;
    // `run` with nothing for us to do between clone and exec: the child
    // runs alone (see `Plan::solo`), so its cgroups are made and limited
    // before it exists.
    plan.solo = exec_now && plan.may_run_solo();

    let dir = Dir::create(root, id)?;
    let rootfs = {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(plan.rootfs.to_bytes()))
    };
    let mut st = State {
        id: id.to_string(),
        bundle: bundle.clone(),
        rootfs,
        phase: Status::Creating,
        creator: Proc::of(std::process::id() as i32),
        init: Proc::default(),
        cgroup: None,
        created: state::now_rfc3339(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
        oci_version: spec.version().clone(),
        no_new_keyring: opts.no_new_keyring,
    };
    // Record before creating: the cgroup, then the process. While the
    // cgroup's directories are made, `record_cgroup` keeps the record
    // current (it is told of every change to what this runtime made).
    st.cgroup = Some(cg.clone());
    if let Err(e) = plan.bind_own_cgroups(&cg) {
        undo(&dir, None, None);
        return Err(e.into());
    }
    let mut steps = |st: &mut State, mut plan: plan::Plan| -> Result<launch::Spawned> {
        dir.save(st)?;
        trace::phase("state dir");
        // Only the cgroup2 dir before clone (clone3 joins it); the v1 dirs
        // are made while the child makes its namespaces.
        cg.create_v2(&mut |c| record_cgroup(&dir, st, c))?;
        if !exec_now {
            let fifo = dir.fifo_path();
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| Error::io(format!("mkfifo {}", fifo.display()), e.into()))?;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .map_err(|e| Error::io(format!("open {}", fifo.display()), e))?;
            plan.exec_fifo = Some(OwnedFd::from(f));
        }
        let cgroups_first = plan.solo;
        let cgroups = |st: &mut State, cg: &mut Cgroup| -> Result<()> {
            cg.create_v1(&mut |c| record_cgroup(&dir, st, c))?;
            if let Some(linux) = spec.linux() {
                apply_resources(cg, linux)?;
            }
            trace::phase("cgroup");
            Ok(())
        };
        if cgroups_first {
            cgroups(st, &mut cg)?;
        }
        let mut spawned = launch::spawn(plan, Some(&cg))?;
        trace::phase(if spawned.solo() {
            "clone, container setup (namespaces, mounts, pivot, identity, seccomp), exec: the child alone"
        } else {
            "clone"
        });
        st.init = Proc::of(spawned.pid());
        let r = (|| {
            if early_pid {
                dir.save(st)?;
            }
            if !cgroups_first {
                cgroups(st, &mut cg)?;
            }
            spawned.go(|pid| {
                if container_hooks {
                    st.hook_json(Status::Creating, pid)
                } else {
                    Vec::new()
                }
            })?;
            if spawned.pid() != st.init.pid {
                // A second fork: the container process is the grandchild.
                st.init = Proc::of(spawned.pid());
                if early_pid {
                    dir.save(st)?;
                }
            }
            let pid = spawned.pid();
            spawned.wait_ready(|| {
                // What runc and the conformance suite expect prestart to see.
                let json = st.hook_json(Status::Created, pid);
                hooks::run_all(hooks.prestart().as_ref(), &json, &st.bundle)?;
                hooks::run_all(hooks.create_runtime().as_ref(), &json, &st.bundle)
            })?;
            if !spawned.solo() {
                trace::phase("container setup (namespaces, mounts, pivot, identity, seccomp)");
            }
            st.phase = if exec_now {
                Status::Running
            } else {
                Status::Created
            };
            dir.save(st)?;
            if let Some(p) = &opts.pid_file {
                write_pid_file(p, spawned.pid())?;
            }
            Ok(())
        })();
        match r {
            Ok(()) => Ok(spawned),
            Err(e) => {
                spawned.kill();
                Err(e)
            }
        }
    };
    match steps(&mut st, plan) {
        Ok(spawned) => Ok(Created {
            dir,
            state: st,
            spawned,
            spec,
        }),
        Err(e) => {
            // Undo exactly what was made: a hierarchy not reached yet
            // made nothing, whatever the record saved for a crash says.
            cg.forget_unsettled();
            st.cgroup = Some(cg);
            undo(&dir, Some(&st), None);
            Err(e)
        }
    }
}

/// Save the state with the cgroup's record as it is now (before a directory
/// it did not name yet is made).
fn record_cgroup(dir: &Dir, st: &mut State, cg: &Cgroup) -> std::io::Result<()> {
    st.cgroup = Some(cg.clone());
    dir.save(st)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Write `linux.resources` into the container's cgroup.
fn apply_resources(cg: &Cgroup, linux: &oci_spec::runtime::Linux) -> Result<()> {
    if let Some(r) = linux.resources() {
        let mut r = r.clone();
        // The devices the config creates are also allowed in the device cgroup, as runc does.
        if let Some(rules) = r.devices().clone() {
            let mut rules = rules;
            rules.extend(
                linux
                    .devices()
                    .iter()
                    .flatten()
                    .filter(|d| {
                        use oci_spec::runtime::LinuxDeviceType::*;
                        matches!(d.typ(), B | C | U)
                    })
                    .map(|d| {
                        let mut rule = oci_spec::runtime::LinuxDeviceCgroup::from(d);
                        // 'u' (unbuffered char) is a char device to the device cgroup.
                        if d.typ() == oci_spec::runtime::LinuxDeviceType::U {
                            rule.set_typ(Some(oci_spec::runtime::LinuxDeviceType::C));
                        }
                        rule
                    }),
            );
            r.set_devices(Some(rules));
        }
        cg.apply(&r)?;
    }
    Ok(())
}

/// Signal the init blocked on the exec fifo to exec the process. Returns a
/// read end of the fifo for [`wait_exec_fifo`], opened before our write end.
fn release(dir: &Dir) -> Result<std::fs::File> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fifo = dir.fifo_path();
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENXIO) | Some(libc::ENOENT) => Error::NotRunning,
                _ => Error::io(format!("open {}", fifo.display()), e),
            })
    };
    let watch = open(false)?;
    open(true)?
        .write_all(b"0")
        .map_err(|e| Error::io(format!("write {}", fifo.display()), e))?;
    let _ = std::fs::remove_file(&fifo);
    Ok(watch)
}

/// Wait until the init released by [`release`] has exec'd: like runc's,
/// `start` returns once the process runs.
///
/// The init reads the fifo through an O_RDWR descriptor that closes when it
/// execs (or dies). A read end opened before our write end sees POLLHUP once
/// no writer is left: our write end is closed already, so that is the
/// init's exec (or death). Poll asks for nothing else, so it sleeps until
/// then; we never read, so the byte can only go to the init. Still unread
/// at POLLHUP: the init died before it took it, not running.
fn wait_exec_fifo(watch: &std::fs::File) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fd = watch.as_raw_fd();
    loop {
        let mut p = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::io("poll the exec fifo", e));
        }
        if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            break;
        }
    }
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } == 0 && unread > 0 {
        return Err(Error::NotRunning);
    }
    Ok(())
}

/// The console socket end to hand the container's process, and ours when
/// mica itself holds the terminal: a terminal and nobody to hand it to (no
/// --console-socket, not detached) makes mica the other end, as runc does.
pub(super) fn console_ends(
    socket: Option<&Path>,
    terminal: bool,
    detach: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match socket {
        Some(p) => Ok((Some(connect_console(p)?), None)),
        None if terminal && !detach => {
            let (ours, theirs) =
                super::tty::socketpair().map_err(|e| Error::io("socketpair", e))?;
            Ok((Some(theirs), Some(ours)))
        }
        None => Ok((None, None)),
    }
}

/// The terminal's master, from the container process, when mica holds the
/// terminal (our end of [`console_ends`]).
pub(super) fn receive_terminal(own: Option<&OwnedFd>) -> Result<Option<OwnedFd>> {
    own.map(super::tty::recv_master)
        .transpose()
        .map_err(|e| Error::io("receive the terminal", e))
}

/// Wait for the process to exit; with the terminal's master (ours), proxy
/// it meanwhile. Returns its exit status as a shell reports it.
pub(super) fn wait_process(
    master: Option<OwnedFd>,
    pid: i32,
    mask: &nix::sys::signal::SigSet,
) -> i32 {
    match master {
        Some(m) => super::tty::proxy_wait(m, pid, mask),
        None => wait_forwarding(pid, mask),
    }
}

/// The poststart hooks, once the process runs.
fn poststart(st: &State, spec_hooks: Option<&oci_spec::runtime::Hooks>) {
    let list = spec_hooks
        .and_then(|h| h.poststart().as_deref())
        .unwrap_or_default();
    if list.is_empty() {
        return;
    }
    let json = st.hook_json(Status::Running, st.init.pid);
    for hook in list {
        // The spec: a failing poststart hook is a warning, not an error.
        if let Err(e) = hooks::run(hook, &json, &st.bundle) {
            crate::log::warn(&format!("poststart hook: {e}"));
        }
    }
}

pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let mut st = dir.load()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
    let status = st.status();
    if status != Status::Created {
        return Err(Error::WrongState {
            op: "start",
            id: id.to_string(),
            status,
        });
    }
    let spec = load_spec(&st.bundle).ok();
    // Under the lock: the go-ahead, and the state says running (as runc's
    // does once the fifo is gone).
    let watch = release(&dir)?;
    st.phase = Status::Running;
    dir.save(&st)?;
    // Not under it: the exec may wait on startContainer hooks, or on an
    // init someone stopped; kill, delete, state and list go on meanwhile.
    drop(dir);
    wait_exec_fifo(&watch)?;
    poststart(&st, spec.as_ref().and_then(|s| s.hooks().as_ref()));
    Ok(())
}

/// The signals `run` and `exec` pass on to the container's process instead
/// of dying of them, as runc does: every one but SIGKILL and SIGSTOP (which
/// cannot be caught) and those a fault of mica's own raises (SEGV, BUS, FPE,
/// ILL, TRAP). Real-time signals included. SIGCHLD is among them: it wakes
/// the wait and is not passed on.
pub fn forwarded() -> u64 {
    let mut bits = u64::MAX;
    for s in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
    ] {
        bits &= !(1u64 << (s - 1));
    }
    bits
}

/// Wait for `pid` (our child, or adopted as subreaper), forwarding signals;
/// returns its exit status as a shell would (128+N for a signal).
pub fn wait_forwarding(pid: i32, mask: &nix::sys::signal::SigSet) -> i32 {
    loop {
        if let Some(code) = reap(pid) {
            return code;
        }
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigwaitinfo(mask.as_ref(), &mut info) };
        if sig > 0 && sig != libc::SIGCHLD && !self_raised(unsafe { info.si_pid() }) {
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// A signal mica raised itself (the SIGPIPE of a write to a hook that did
/// not read its stdin, or to a closed stderr): blocked, it was queued rather
/// than ignored, and is not the container's to get.
pub fn self_raised(sender: libc::pid_t) -> bool {
    sender == std::process::id() as libc::pid_t
}

/// Reap every exited child; `Some(status)` once `pid` is among them
/// (128+N for signal N; 255 when there is nothing left to wait for).
pub fn reap(pid: i32) -> Option<i32> {
    // libc's waitpid, not nix's: nix cannot name a real-time signal and
    // turns such a death into an error.
    loop {
        let mut status = 0;
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
            0 => return None,
            p if p == pid && libc::WIFEXITED(status) => return Some(libc::WEXITSTATUS(status)),
            p if p == pid && libc::WIFSIGNALED(status) => {
                return Some(128 + libc::WTERMSIG(status))
            }
            p if p > 0 => continue,
            _ if nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
            _ => return Some(255),
        }
    }
}

/// Block the [`forwarded`] signals (raw rt_sigprocmask: libc's wrappers
/// drop its internal real-time signals from the set) and return them as the
/// set to wait on.
pub fn block_signals() -> nix::sys::signal::SigSet {
    let bits = forwarded();
    // sigset_t is a bit array: signal N is bit N-1 of the first word.
    let mut raw: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { *(&mut raw as *mut libc::sigset_t as *mut u64) = bits };
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &bits as *const u64,
            std::ptr::null_mut::<u64>(),
            8,
        )
    };
    // Orphaned grandchildren (second fork) are reparented to us.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    unsafe { nix::sys::signal::SigSet::from_sigset_t_unchecked(raw) }
}

/// create + start; unless detached, wait for the process, delete the
/// container and return the process's exit status.
pub fn run(root: &Path, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
    run_keep(root, id, opts, detach, false)
}

/// `run`; with `keep`, a foreground container is left stopped instead of
/// deleted when its process exits (docker's default without `--rm`).
pub fn run_keep(
    root: &Path,
    id: &str,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
) -> Result<i32> {
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(|e| Error::io(format!("bundle {}", opts.bundle.display()), e))?;
    let spec = load_spec(&bundle)?;
    trace::phase("config parse");
    run_spec(root, id, opts, bundle, spec, detach, keep)
}

/// [`run_keep`] with the config already in hand (`mica launch` wrote it):
/// `bundle` is the canonical bundle path, `spec` its config.json.
pub fn run_spec(
    root: &Path,
    id: &str,
    opts: &CreateOptions,
    bundle: PathBuf,
    spec: Spec,
    detach: bool,
    keep: bool,
) -> Result<i32> {
    let mask = block_signals();
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (console, own_tty) = console_ends(opts.console_socket.as_deref(), terminal, detach)?;
    let Created {
        dir,
        state,
        spawned,
        spec,
    } = create_with(root, id, opts, bundle, spec, console, true)?;
    let pid = spawned.pid();
    // Once the process has exec'd (as runc's start waits for it): poststart
    // runs after the exec, and `run -d` returns with the process running.
    let master = match receive_terminal(own_tty.as_ref()).and_then(|m| {
        spawned.wait_exec()?;
        Ok(m)
    }) {
        Ok(m) => m,
        Err(e) => {
            spawned.kill();
            let _ = super::ops::destroy(&dir, &state);
            return Err(e);
        }
    };
    poststart(&state, spec.hooks().as_ref());
    drop(spawned);
    trace::phase("start");
    // Let `state`, `kill`, `ps` in while we wait.
    drop(dir);
    if detach {
        return Ok(0);
    }
    let code = wait_process(master, pid, &mask);
    trace::phase("process ran");
    if !keep {
        super::ops::delete(root, id, true)?;
        trace::phase("delete");
    }
    Ok(code)
}
