//! Turn an OCI config into a `Plan`: every string the child needs as a
//! CString, every flag computed, every fd opened — all before clone, so the
//! child does nothing but syscalls.

use super::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Mount, Spec};
use std::borrow::Cow;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What the launch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A container's init: new namespaces, rootfs, waits for `start`.
    Init,
    /// A process joining a running container (`mica exec`).
    Exec,
}

pub struct MountOp {
    pub source: Option<CString>,
    /// Absolute path inside the container.
    pub target: CString,
    pub fstype: Option<CString>,
    pub flags: libc::c_ulong,
    pub data: Option<CString>,
    pub propagation: libc::c_ulong,
    pub bind: bool,
    /// Bind of a non-directory: the mountpoint is a file.
    pub file_target: bool,
    /// v1 cgroup hierarchies to mount under a tmpfs at the target: (subdir,
    /// options, the container's own cgroup dir to bind instead of mounting
    /// the whole hierarchy — set by [`Plan::bind_own_cgroups`]).
    pub cgroup_v1: Vec<(CString, CString, Option<CString>)>,
    /// tmpfs with `tmpcopyup`: the target's contents are copied into the new tmpfs.
    pub copyup: bool,
    /// mount cgroup2 (pure v2 host, or the "unified" dir of a hybrid one).
    pub cgroup2: bool,
    /// Recursive mount attributes (`rro`, `rnosuid`, ...): set and cleared
    /// with mount_setattr(2) on the mount and every mount below it.
    pub attr: Option<MountAttr>,
    /// An idmapped bind mount (made by the parent, see `super::idmap`).
    pub idmap: Option<IdMap>,
}

/// See [`MountOp::idmap`].
pub struct IdMap {
    /// The source, idmapped already, detached: moved onto the target.
    pub tree: OwnedFd,
}

/// `struct mount_attr`'s set and clear masks (MOUNT_ATTR_*).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MountAttr {
    pub set: u64,
    pub clr: u64,
}

/// `struct sched_attr` (its first version, 48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// Settings of newer runtime-spec versions that mica does not implement:
/// refused with their names, never dropped silently.
fn refuse_unimplemented(
    linux: &oci_spec::runtime::Linux,
    process: &oci_spec::runtime::Process,
) -> Result<()> {
    let named = [
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "process.execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
        ),
    ];
    let set: Vec<&str> = named
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} not supported by mica",
        set.join(", ")
    )))
}

/// runtime-spec 1.2's `process.ioPriority`: (class << 13) | priority.
fn io_priority(p: &oci_spec::runtime::LinuxIOPriority) -> Result<i32> {
    use oci_spec::runtime::IOPriorityClass::*;
    let class = match p.class() {
        IoprioClassRt => 1,
        IoprioClassBe => 2,
        IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::Config(format!(
            "process.ioPriority.priority {} is out of range 0..7",
            p.priority()
        )));
    }
    Ok(class << 13 | p.priority() as i32)
}

/// runtime-spec 1.2's `process.scheduler`, as sched_setattr(2) takes it
/// (the kernel checks the combination: a priority only for FIFO/RR, a
/// runtime <= deadline <= period for DEADLINE).
fn sched_attr(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr> {
    use oci_spec::runtime::LinuxSchedulerFlag as F;
    use oci_spec::runtime::LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(Error::Config(
                "process.scheduler.policy SCHED_ISO is not implemented by Linux".into(),
            ))
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().try_fold(0u64, |acc, f| {
        Ok(acc
            | match f {
                F::SchedResetOnFork => 0x01,
                F::SchedFlagReclaim => 0x02,
                F::SchedFlagDLOverrun => 0x04,
                F::SchedFlagKeepPolicy => 0x08,
                F::SchedFlagKeepParams => 0x10,
                // They need the clamp values, which the spec has no field for.
                F::SchedFlagUtilClampMin | F::SchedFlagUtilClampMax => {
                    return Err(Error::Config(format!(
                        "process.scheduler.flags {} is not supported by mica",
                        serde_json::to_string(f).unwrap_or_else(|_| format!("{f:?}"))
                    )))
                }
            })
    })?;
    let priority = s.priority().unwrap_or(0);
    let priority = u32::try_from(priority)
        .map_err(|_| Error::Config(format!("process.scheduler.priority {priority} is negative")))?;
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

pub struct DeviceOp {
    pub path: CString,
    pub mode: libc::mode_t,
    pub dev: libc::dev_t,
    pub uid: u32,
    pub gid: u32,
    /// The host node to bind when mknod is not allowed (user namespace).
    pub host_path: CString,
}

pub struct HookCmd {
    pub path: CString,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub env: Vec<CString>,
    pub envp: Vec<*const libc::c_char>,
    pub timeout_ms: u64,
}

pub struct Caps {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub last_cap: u32,
}

pub struct Plan {
    pub kind: Kind,
    /// CLONE_NEW* flags given to clone itself.
    pub clone_flags: u64,
    /// Namespaces joined by path, in order: (fd, CLONE_NEW* type).
    pub join_ns: Vec<(OwnedFd, libc::c_int)>,
    pub join_ns_paths: Vec<CString>,
    /// Flags the middle process unshares before the second fork.
    pub unshare_in_middle: libc::c_int,
    /// The mount/net/ipc/uts namespaces the child makes itself (clone makes
    /// them only with a new user namespace, which must own them): first
    /// thing when it joins nothing, while the parent makes the cgroups and
    /// saves the state (the new network namespace alone takes about half a
    /// millisecond); else right after its setns, so that a user namespace
    /// joined by path owns them, as with runc.
    pub unshare_child: libc::c_int,
    pub second_fork: bool,
    /// The session keyring the process joins by name, as runc's do: none of
    /// the caller's keys reach the container.
    pub session_keyring: Option<CString>,
    pub new_cgroupns: bool,
    pub timens_offsets: Option<CString>,
    pub user_ns: bool,

    pub rootfs: CString,
    /// `lowerdir=A:B:...` when the root is an overlay of read-only image
    /// layers (top first), mounted on `rootfs` in the container's namespace.
    pub rootfs_overlay: Option<CString>,
    pub rootfs_propagation: libc::c_ulong,
    pub readonly_root: bool,
    pub no_pivot: bool,
    pub mounts: Vec<MountOp>,
    /// /dev is a tmpfs mica mounts itself (read-only root with no /dev mount).
    pub dev_tmpfs: bool,
    /// Create the default devices and /dev symlinks.
    pub setup_dev: bool,
    pub devices: Vec<DeviceOp>,
    pub masked_paths: Vec<CString>,
    pub readonly_paths: Vec<CString>,
    pub sysctls: Vec<(CString, CString)>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,

    pub cwd: CString,
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    pub personality: Option<libc::c_ulong>,
    pub terminal: bool,
    pub console_socket: Option<OwnedFd>,
    pub console_size: Option<(u16, u16)>,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<libc::gid_t>,
    pub umask: Option<libc::mode_t>,
    pub caps: Option<Caps>,
    pub no_new_privs: bool,
    pub seccomp: Option<crate::seccomp::Program>,
    pub oom_score_adj: Option<CString>,
    /// `process.ioPriority` as ioprio_set(2) takes it: class << 13 | level.
    pub io_priority: Option<i32>,
    /// `process.scheduler`, for sched_setattr(2).
    pub scheduler: Option<SchedAttr>,

    /// The executable as named in args[0], and the paths to try for it.
    pub arg0: CString,
    pub exec_candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub env: Vec<CString>,
    pub envp: Vec<*const libc::c_char>,

    pub preserve_fds: i32,
    /// The fds of the preserved range that were open when mica started
    /// (set by `spawn`): the ones passed on.
    pub preserved: Vec<i32>,
    /// O_RDWR fd of the exec fifo: the child blocks reading it until `start`.
    pub exec_fifo: Option<OwnedFd>,
    pub create_container_hooks: Vec<HookCmd>,
    pub start_container_hooks: Vec<HookCmd>,
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// Stop between mounts and pivot so the parent runs prestart and
    /// createRuntime hooks.
    pub prepivot_hooks: bool,
    /// The fds the child keeps (sorted); every other fd above the preserved
    /// ones is closed first thing — the parent's state-dir lock among them.
    pub keep_fds: Vec<i32>,
    /// The container's v1 `tasks` files, each as a path for openat from
    /// `cgroup_dir` (see `cgroups::at`) and the full path for errors: the
    /// child joins each by writing "0" once the parent has made them
    /// (`Cgroup::v1_tasks`).
    pub cgroup_tasks: Vec<(CString, CString)>,
    /// The host's /sys/fs/cgroup (or AT_FDCWD): what the relative
    /// `cgroup_tasks` paths start from (openat ignores it for absolute ones).
    pub cgroup_dir: libc::c_int,
    /// The parent joins the cgroup2 dir after `Go`, while the child mounts
    /// (when clone3 could not: a cgroup.procs write waits for an RCU grace
    /// period); the child waits for `Joined` before its cgroup namespace.
    pub join_late: bool,
    /// The child runs from clone to exec without a word from us (see
    /// [`Plan::may_run_solo`]): it shares our memory (CLONE_VM) while we
    /// sleep until its exec or exit (CLONE_VFORK), so nothing is copied or
    /// faulted in twice, and no message wakes either side. Set by `create`
    /// for `run`; `spawn` clears it when the kernel cannot do it.
    pub solo: bool,
}

impl Plan {
    /// Nothing between clone and exec needs the parent: no user namespace
    /// (id maps), no second fork (joining a pid namespace), no hooks (the
    /// parent runs some between mounts and pivot, and hands the child the
    /// state for the others), no terminal, and an init that execs at once
    /// (`run`: no exec fifo to wait on for `start`).
    pub fn may_run_solo(&self) -> bool {
        self.kind == Kind::Init
            && self.exec_fifo.is_none()
            && !self.user_ns
            && self.uid_map.is_none()
            && self.gid_map.is_none()
            && !self.second_fork
            && !self.prepivot_hooks
            && !self.child_hooks()
            && !self.terminal
            && self.console_socket.is_none()
    }

    /// The child runs createContainer or startContainer hooks: it is sent
    /// the state JSON for them (and only then has a buffer for it).
    pub fn child_hooks(&self) -> bool {
        !self.create_container_hooks.is_empty() || !self.start_container_hooks.is_empty()
    }

    /// Without a new cgroup namespace, a fresh mount of a v1 hierarchy would
    /// show the host's whole tree: bind the container's own directory of each
    /// hierarchy instead, as runc does, so its limits are what it sees at
    /// `/sys/fs/cgroup/<controller>/`.
    pub fn bind_own_cgroups(&mut self, cg: &crate::cgroups::Cgroup) -> Result<()> {
        if self.new_cgroupns {
            return Ok(());
        }
        for m in &mut self.mounts {
            for (name, _, bind) in &mut m.cgroup_v1 {
                let dir = cg
                    .v1
                    .iter()
                    .find(|h| h.mount.file_name().map(|n| n.as_bytes()) == Some(name.to_bytes()));
                if let Some(h) = dir {
                    *bind = Some(path_cstr(&h.dir, "cgroup dir")?);
                }
            }
        }
        Ok(())
    }
}

fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| Error::Config(format!("{what} contains a NUL byte")))
}

fn path_cstr(p: &Path, what: &str) -> Result<CString> {
    cstr(p.as_os_str().as_bytes(), what)
}

pub fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// Mount option -> (set flags, clear flags, propagation).
fn mount_option(opt: &str) -> Option<(libc::c_ulong, libc::c_ulong, libc::c_ulong)> {
    use libc::*;
    Some(match opt {
        "ro" => (MS_RDONLY, 0, 0),
        "rw" => (0, MS_RDONLY, 0),
        "suid" => (0, MS_NOSUID, 0),
        "nosuid" => (MS_NOSUID, 0, 0),
        "dev" => (0, MS_NODEV, 0),
        "nodev" => (MS_NODEV, 0, 0),
        "exec" => (0, MS_NOEXEC, 0),
        "noexec" => (MS_NOEXEC, 0, 0),
        "sync" => (MS_SYNCHRONOUS, 0, 0),
        "async" => (0, MS_SYNCHRONOUS, 0),
        "dirsync" => (MS_DIRSYNC, 0, 0),
        "remount" => (MS_REMOUNT, 0, 0),
        "mand" => (MS_MANDLOCK, 0, 0),
        "nomand" => (0, MS_MANDLOCK, 0),
        "atime" => (0, MS_NOATIME, 0),
        "noatime" => (MS_NOATIME, 0, 0),
        "diratime" => (0, MS_NODIRATIME, 0),
        "nodiratime" => (MS_NODIRATIME, 0, 0),
        "bind" => (MS_BIND, 0, 0),
        "rbind" => (MS_BIND | MS_REC, 0, 0),
        "relatime" => (MS_RELATIME, 0, 0),
        "norelatime" => (0, MS_RELATIME, 0),
        "strictatime" => (MS_STRICTATIME, 0, 0),
        "nostrictatime" => (0, MS_STRICTATIME, 0),
        "silent" => (MS_SILENT, 0, 0),
        "loud" => (0, MS_SILENT, 0),
        "private" => (0, 0, MS_PRIVATE),
        "rprivate" => (0, 0, MS_PRIVATE | MS_REC),
        "shared" => (0, 0, MS_SHARED),
        "rshared" => (0, 0, MS_SHARED | MS_REC),
        "slave" => (0, 0, MS_SLAVE),
        "rslave" => (0, 0, MS_SLAVE | MS_REC),
        "unbindable" => (0, 0, MS_UNBINDABLE),
        "runbindable" => (0, 0, MS_UNBINDABLE | MS_REC),
        _ => return None,
    })
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime mode field: relatime (0), noatime, strictatime.
const MOUNT_ATTR_ATIME: u64 = 0x70;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The recursive mount options of runtime-spec 1.1 (runc's): option ->
/// (attributes set, attributes cleared). An atime mode clears the whole
/// atime field, as mount_setattr(2) requires, and sets its value.
pub const RECURSIVE_MOUNT_OPTIONS: [(&str, u64, u64); 18] = [
    ("rro", MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, MOUNT_ATTR_RDONLY),
    ("rnosuid", MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, MOUNT_ATTR_NOSUID),
    ("rnodev", MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, MOUNT_ATTR_NODEV),
    ("rnoexec", MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", 0, MOUNT_ATTR_ATIME),
    ("rnorelatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME),
    ("rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR_ATIME),
    ("ratime", 0, MOUNT_ATTR_ATIME),
    ("rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_ATIME),
    ("rnostrictatime", 0, MOUNT_ATTR_ATIME),
    ("rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Fold a recursive option into `attr`; false if `opt` is not one. A later
/// option wins over an earlier one for the same attribute.
fn recursive_mount_option(opt: &str, attr: &mut MountAttr) -> bool {
    let Some(&(_, set, clr)) = RECURSIVE_MOUNT_OPTIONS.iter().find(|(n, _, _)| *n == opt) else {
        return false;
    };
    let touched = set | clr;
    attr.set = (attr.set & !touched) | set;
    attr.clr = (attr.clr & !touched) | clr;
    true
}

pub fn propagation_flags(s: &str) -> Result<libc::c_ulong> {
    match mount_option(s) {
        Some((0, 0, p)) if p != 0 => Ok(p),
        _ => Err(Error::Config(format!("invalid rootfsPropagation {s:?}"))),
    }
}

/// The v1 hierarchies (dir name under the cgroup mount, mount options) and
/// whether cgroup2 is mounted, as the container's resolved cgroup found them
/// (no second reading of mountinfo).
fn cgroup_hierarchies(cg: Option<&crate::cgroups::Cgroup>) -> (Vec<(String, String)>, bool) {
    let Some(cg) = cg else {
        return (Vec::new(), false);
    };
    let v1 = cg
        .v1
        .iter()
        .filter_map(|h| {
            let name = h.mount.file_name()?.to_string_lossy().into_owned();
            Some((name, h.controllers.join(",")))
        })
        .collect();
    (v1, cg.v2.is_some())
}

/// A mount's destination, absolute: runtime-spec 1.1 lets older configs
/// give it relative, to be read as relative to "/" (runc does so too).
fn mount_destination(m: &Mount) -> PathBuf {
    Path::new("/").join(m.destination())
}

/// The user namespace an idmapped mount maps with: one made with these
/// maps, or the container's, joined by path.
#[derive(Clone)]
enum IdSource<'a> {
    Maps(Cow<'a, str>, Cow<'a, str>),
    Userns(BorrowedFd<'a>),
}

/// The user namespace of an idmapped mount: its own `uidMappings` and
/// `gidMappings`, or with runc's `idmap`/`ridmap` option alone the
/// container's (`container`: None when it has none). None: not idmapped.
fn idmap_maps<'a>(
    m: &Mount,
    container: Option<&IdSource<'a>>,
) -> Result<Option<(IdSource<'a>, bool)>> {
    let opts = m.options().clone().unwrap_or_default();
    let recursive = opts.iter().any(|o| o == "ridmap");
    let asked = recursive || opts.iter().any(|o| o == "idmap");
    let own = (id_map(m.uid_mappings()), id_map(m.gid_mappings()));
    let target = m.destination();
    let source = match own {
        (Some(u), Some(g)) => IdSource::Maps(u.into(), g.into()),
        (None, None) if !asked => return Ok(None),
        (None, None) => container.cloned().ok_or_else(|| {
            Error::Config(format!(
                "mount {target:?}: idmap without uidMappings/gidMappings needs the \
                 container's user namespace mappings"
            ))
        })?,
        _ => {
            return Err(Error::Config(format!(
                "mount {target:?}: uidMappings and gidMappings go together"
            )))
        }
    };
    Ok(Some((source, recursive)))
}

fn build_mount(
    m: &Mount,
    bundle: &Path,
    cg: &(Vec<(String, String)>, bool),
    container_userns: Option<&IdSource>,
) -> Result<MountOp> {
    if m.destination().as_os_str().is_empty() {
        return Err(Error::Config("a mount has an empty destination".into()));
    }
    let target = &mount_destination(m);
    let fstype = m.typ().clone().unwrap_or_default();
    let mut flags: libc::c_ulong = 0;
    let mut propagation: libc::c_ulong = 0;
    let mut data: Vec<String> = Vec::new();
    let mut copyup = false;
    let mut attr = MountAttr::default();
    for opt in m.options().iter().flatten() {
        match mount_option(opt) {
            Some((set, clear, prop)) => {
                flags = (flags | set) & !clear;
                propagation |= prop;
            }
            // runc's extension (podman --read-only uses it): fill the tmpfs with what it covers.
            None if opt == "tmpcopyup" && fstype == "tmpfs" => copyup = true,
            None if recursive_mount_option(opt, &mut attr) => {}
            None if opt == "idmap" || opt == "ridmap" => {}
            // crun's idmap=uids=...;gids=... form: the maps go in
            // uidMappings/gidMappings here, never to the filesystem as data.
            None if opt == "tmpcopyup"
                || opt.starts_with("idmap=")
                || opt.starts_with("ridmap=") =>
            {
                return Err(Error::Config(format!(
                    "mount {target:?}: option {opt:?} is not supported"
                )))
            }
            None => data.push(opt.clone()),
        }
    }
    let bind = fstype == "bind" || flags & libc::MS_BIND != 0;
    let mut source = m.source().clone();
    if bind {
        flags |= libc::MS_BIND;
        if let Some(s) = &source {
            if s.is_relative() {
                source = Some(bundle.join(s));
            }
        }
    }
    let src = source.clone().unwrap_or_else(|| PathBuf::from(&fstype));
    let file_target = bind
        && std::fs::metadata(&src)
            .map(|md| !md.is_dir())
            .unwrap_or(false);
    if bind && !src.exists() {
        return Err(Error::Config(format!(
            "mount {target:?}: source {src:?} does not exist"
        )));
    }
    let (cgroup_v1, cgroup2) = if fstype == "cgroup" || fstype == "cgroup2" {
        if cg.0.is_empty() {
            (Vec::new(), true)
        } else {
            let mut v = Vec::new();
            for (name, opts) in &cg.0 {
                v.push((
                    cstr(name, "cgroup name")?,
                    cstr(opts, "cgroup options")?,
                    None,
                ));
            }
            (v, false)
        }
    } else {
        (Vec::new(), false)
    };
    let data = if data.is_empty() {
        None
    } else {
        Some(cstr(data.join(","), "mount data")?)
    };
    Ok(MountOp {
        source: Some(path_cstr(&src, "mount source")?),
        target: path_cstr(target, "mount destination")?,
        fstype: if bind {
            None
        } else {
            Some(cstr(&fstype, "mount type")?)
        },
        flags,
        data,
        propagation,
        bind,
        file_target,
        cgroup_v1,
        cgroup2,
        copyup,
        attr: (attr != MountAttr::default()).then_some(attr),
        idmap: match idmap_maps(m, container_userns)? {
            None => None,
            Some(_) if !bind => {
                return Err(Error::Config(format!(
                    "mount {target:?}: an idmapped mount must be a bind mount"
                )))
            }
            Some((source, recursive)) => {
                let made;
                let userns = match source {
                    IdSource::Maps(u, g) => {
                        made = super::idmap::userns_with_maps(&u, &g)?;
                        made.as_fd()
                    }
                    IdSource::Userns(fd) => fd,
                };
                Some(IdMap {
                    tree: super::idmap::idmapped_tree(
                        &src,
                        flags & libc::MS_REC != 0,
                        recursive,
                        userns,
                    )?,
                })
            }
        },
    })
}

/// Is capability `cap` in our bounding set (None: the kernel does not know
/// it, or will not say)? One prctl: much cheaper than generating
/// /proc/self/status or /proc/sys/kernel/cap_last_cap to read them.
fn in_bounding(cap: u32) -> Option<bool> {
    // SAFETY: PR_CAPBSET_READ only reads.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    (rc >= 0).then_some(rc == 1)
}

/// Our own bounding set, up to `last_cap`: a capability outside it cannot
/// be granted. From /proc/self/status when prctl is refused (a seccomp
/// profile around us).
fn own_bounding(last_cap: u32) -> u64 {
    let mut set = 0u64;
    for c in 0..=last_cap.min(63) {
        match in_bounding(c) {
            Some(true) => set |= 1 << c,
            Some(false) => {}
            None => {
                return crate::kfile::read_to_string("/proc/self/status")
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("CapBnd:"))
                            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                    })
                    .unwrap_or(u64::MAX)
            }
        }
    }
    set
}

fn cap_mask(set: Option<&oci_spec::runtime::Capabilities>, last_cap: u32) -> Result<u64> {
    let mut mask = 0u64;
    for c in set.into_iter().flatten() {
        let name = c.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        match caps::Capability::from_str(&name) {
            Ok(cap) if (cap.index() as u32) <= last_cap => mask |= cap.bitmask(),
            // A capability this kernel does not know is skipped, as runc does.
            _ => {}
        }
    }
    Ok(mask)
}

/// The highest capability this kernel knows: PR_CAPBSET_READ is EINVAL
/// beyond it (a binary search), else what /proc/sys/kernel/cap_last_cap says.
pub fn last_cap() -> u32 {
    if in_bounding(0).is_none() {
        return crate::kfile::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
    }
    // Known: lo; unknown: hi.
    let (mut lo, mut hi) = (0u32, 64u32);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if in_bounding(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> libc::c_int {
    use oci_spec::runtime::PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Paths to try for args[0]: itself when it has a '/', else each PATH entry
/// of the container's environment (the container's, not mica's).
fn exec_candidates(arg0: &str, env: &[String]) -> Vec<String> {
    if arg0.contains('/') {
        return vec![arg0.to_string()];
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{}/{}", d.trim_end_matches('/'), arg0))
        .collect()
}

/// The container's /etc/passwd as its process will see it: the source of a
/// bind mount the config puts at /etc/passwd (or /etc), else the file in the
/// first of `roots` (the root, or the image layers top first) that has one,
/// resolved inside that root. `None` when there is none.
fn passwd_file(roots: &[PathBuf], mounts: &[MountOp]) -> Option<String> {
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    for m in mounts.iter().rev().filter(|m| m.bind) {
        let Some(src) = &m.source else { continue };
        let src = Path::new(std::ffi::OsStr::from_bytes(src.to_bytes()));
        let file = match m.target.to_bytes() {
            b"/etc/passwd" => src.to_path_buf(),
            b"/etc" => src.join("passwd"),
            _ => continue,
        };
        // As the mount resolved it (the config's author named it).
        use nix::fcntl::OFlag;
        let f = nix::fcntl::open(
            &file,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        return small_text(f);
    }
    for root in roots {
        let dir = std::fs::File::open(root).ok()?;
        match crate::image::sys::open_in_root(dir.as_fd(), b"etc/passwd", libc::O_PATH) {
            Ok(f) => return small_text(f),
            // A lower layer may have it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // A whiteout, a directory, ...: none.
            Err(_) => return None,
        }
    }
    None
}

/// The first MiB of the file `path` (an O_PATH fd) names, if it is a
/// regular one: only then is it opened for reading, so a FIFO, or a device
/// node a container planted, is never opened by mica.
fn small_text(path: std::os::fd::OwnedFd) -> Option<String> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let st = nix::sys::stat::fstat(&path).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let f = std::fs::File::open(format!("/proc/self/fd/{}", path.as_raw_fd())).ok()?;
    let mut bytes = Vec::new();
    f.take(1 << 20).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The home directory of `uid` in passwd text; "/" without one, as runc's.
fn home_of(passwd: &str, uid: u32) -> &str {
    crate::spec::passwd_entry(passwd, 2, &uid.to_string())
        .and_then(|f| f.get(5).copied())
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
}

pub fn build_hook(h: &oci_spec::runtime::Hook) -> Result<HookCmd> {
    let path = path_cstr(h.path(), "hook path")?;
    let args: Vec<String> = h
        .args()
        .clone()
        .unwrap_or_else(|| vec![h.path().to_string_lossy().into_owned()]);
    let argv = args
        .iter()
        .map(|a| cstr(a, "hook arg"))
        .collect::<Result<Vec<_>>>()?;
    let env = h
        .env()
        .iter()
        .flatten()
        .map(|a| cstr(a, "hook env"))
        .collect::<Result<Vec<_>>>()?;
    Ok(HookCmd {
        argv_ptrs: ptrs(&argv),
        envp: ptrs(&env),
        path,
        argv,
        env,
        timeout_ms: h.timeout().map(|t| t.max(1) as u64 * 1000).unwrap_or(0),
    })
}

fn id_map(m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>) -> Option<String> {
    let m = m.as_ref()?;
    if m.is_empty() {
        return None;
    }
    Some(
        m.iter()
            .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
            .collect(),
    )
}

/// Annotation naming the read-only layer dirs (top first, ':'-separated)
/// that make the root: `mica launch` sets it; the root is their overlay.
pub const LOWERDIRS_ANNOTATION: &str = "org.mica.rootfs.lowerdirs";

/// The image layer dirs the annotation names, top first.
fn layer_dirs(spec: &Spec) -> Option<Vec<&str>> {
    let dirs = spec.annotations().as_ref()?.get(LOWERDIRS_ANNOTATION)?;
    Some(dirs.split(':').filter(|d| !d.is_empty()).collect())
}

fn overlay_data(list: &[&str]) -> Result<CString> {
    if list.len() < 2 {
        return Err(Error::Config(format!(
            "{LOWERDIRS_ANNOTATION} needs at least two layer dirs (one layer is a plain root.path)"
        )));
    }
    for d in list {
        if !d.starts_with('/') || d.contains(',') || !Path::new(d).is_dir() {
            return Err(Error::Config(format!(
                "{LOWERDIRS_ANNOTATION}: layer dir {d:?} is not an absolute, existing directory"
            )));
        }
    }
    cstr(format!("lowerdir={}", list.join(":")), "layer dirs")
}

pub struct Options<'a> {
    pub kind: Kind,
    pub bundle: &'a Path,
    pub no_pivot: bool,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: i32,
    pub exec_fifo: Option<OwnedFd>,
    /// For exec: the pid of the container's init, whose namespaces are joined.
    pub join_pid: Option<i32>,
    /// The container's cgroup: its hierarchies are what cgroup mounts show.
    pub cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// The session keyring to join (made if missing); `None` keeps the caller's.
    pub session_keyring: Option<String>,
    /// Socket activation: its fds are counted in `preserve_fds` already.
    pub listen: Option<&'a super::ListenFds>,
}

/// Build the plan for `spec`. Checks everything that can be checked before
/// clone, so a bad config fails here with nothing created.
pub fn build(spec: &Spec, opts: Options) -> Result<Plan> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("config has no process".into()))?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Config("process.args must not be empty".into()));
    }
    let default_linux = oci_spec::runtime::Linux::default();
    let linux = spec.linux().as_ref().unwrap_or(&default_linux);
    refuse_unimplemented(linux, process)?;
    let cg = cgroup_hierarchies(opts.cgroup);

    // Namespaces.
    let mut clone_flags: u64 = 0;
    let mut join: Vec<(OwnedFd, libc::c_int, CString)> = Vec::new();
    let mut unshare_in_middle = 0;
    let mut second_fork = false;
    let mut new_cgroupns = false;
    let mut user_ns = false;
    let mut has_mount_ns = false;
    let mut time_new = false;
    let empty = Vec::new();
    let namespaces = if opts.kind == Kind::Exec {
        &empty
    } else {
        linux.namespaces().as_ref().unwrap_or(&empty)
    };
    let mut seen = Vec::new();
    for ns in namespaces {
        let flag = ns_flag(ns.typ());
        if seen.contains(&flag) {
            return Err(Error::Config(format!(
                "namespace {} listed twice",
                ns.typ()
            )));
        }
        seen.push(flag);
        if ns.typ() == LinuxNamespaceType::Mount {
            has_mount_ns = true;
        }
        match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                let f = std::fs::File::open(p).map_err(|e| Error::Io {
                    what: format!("open {} namespace path {}", ns.typ(), p.display()),
                    source: e,
                })?;
                if ns.typ() == LinuxNamespaceType::Pid || ns.typ() == LinuxNamespaceType::Time {
                    second_fork = true;
                }
                join.push((OwnedFd::from(f), flag, path_cstr(p, "namespace path")?));
            }
            _ => match ns.typ() {
                LinuxNamespaceType::Cgroup => new_cgroupns = true,
                LinuxNamespaceType::Time => time_new = true,
                LinuxNamespaceType::User => {
                    user_ns = true;
                    clone_flags |= flag as u64;
                }
                _ => clone_flags |= flag as u64,
            },
        }
    }
    if opts.kind == Kind::Init && !has_mount_ns {
        // mica never mounts in the host's namespace: a container always gets its own.
        clone_flags |= libc::CLONE_NEWNS as u64;
    }
    let mut timens_offsets = None;
    if time_new {
        second_fork = true;
        unshare_in_middle |= 0x80;
        let mut s = String::new();
        for (clock, off) in linux.time_offsets().iter().flatten() {
            s.push_str(&format!(
                "{} {} {}\n",
                clock,
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            ));
        }
        if !s.is_empty() {
            timens_offsets = Some(cstr(s, "time offsets")?);
        }
    } else if linux.time_offsets().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error::Config(
            "timeOffsets given without a new time namespace".into(),
        ));
    }
    let mut unshare_child = 0;
    if opts.kind == Kind::Init && !user_ns {
        let own = (libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS)
            as u64;
        unshare_child = (clone_flags & own) as libc::c_int;
        clone_flags &= !own;
        // A user namespace joined by path owns a new pid namespace too
        // (clone would give it to mica's own, where the container's root
        // could not mount its /proc): the middle process makes it.
        if join.iter().any(|(_, f, _)| *f == libc::CLONE_NEWUSER) {
            second_fork |= clone_flags & libc::CLONE_NEWPID as u64 != 0;
        }
    }
    if second_fork && clone_flags & libc::CLONE_NEWPID as u64 != 0 {
        // The middle unshares the pid namespace so the final process is its pid 1.
        clone_flags &= !(libc::CLONE_NEWPID as u64);
        unshare_in_middle |= libc::CLONE_NEWPID;
    }
    // Join the user namespace first: it grants the rights to join the rest.
    join.sort_by_key(|(_, f, _)| {
        if *f == libc::CLONE_NEWUSER {
            0
        } else if *f == libc::CLONE_NEWNS {
            2
        } else {
            1
        }
    });
    if opts.kind == Kind::Exec {
        let pid = opts
            .join_pid
            .ok_or_else(|| Error::Config("exec needs a running container".into()))?;
        for (name, flag) in [
            ("user", libc::CLONE_NEWUSER),
            ("ipc", libc::CLONE_NEWIPC),
            ("uts", libc::CLONE_NEWUTS),
            ("net", libc::CLONE_NEWNET),
            ("pid", libc::CLONE_NEWPID),
            ("cgroup", libc::CLONE_NEWCGROUP),
            ("time", 0x80),
            ("mnt", libc::CLONE_NEWNS),
        ] {
            let p = format!("/proc/{pid}/ns/{name}");
            let own = format!("/proc/self/ns/{name}");
            // Only join what differs from ours (joining our own user ns is EINVAL).
            if let (Ok(a), Ok(b)) = (std::fs::read_link(&p), std::fs::read_link(&own)) {
                if a == b {
                    continue;
                }
            }
            let Ok(f) = std::fs::File::open(&p) else {
                continue;
            };
            if flag == libc::CLONE_NEWPID || flag == 0x80 {
                second_fork = true;
            }
            join.push((OwnedFd::from(f), flag, cstr(&p, "ns path")?));
        }
    }
    let (join_ns, join_ns_paths): (Vec<_>, Vec<_>) =
        join.into_iter().map(|(f, t, p)| ((f, t), p)).unzip();

    // Root filesystem.
    let root = spec.root().as_ref();
    let root_path = root
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    let root_path = if root_path.is_relative() {
        opts.bundle.join(root_path)
    } else {
        root_path
    };
    let rootfs = if opts.kind == Kind::Init {
        let canon = std::fs::canonicalize(&root_path).map_err(|e| Error::Io {
            what: format!("rootfs {}", root_path.display()),
            source: e,
        })?;
        if !canon.is_dir() {
            return Err(Error::Config(format!(
                "rootfs {} is not a directory",
                canon.display()
            )));
        }
        canon
    } else {
        PathBuf::from("/")
    };
    let readonly_root = root.and_then(|r| r.readonly()).unwrap_or(false);
    let layers = layer_dirs(spec).filter(|_| opts.kind == Kind::Init);
    let rootfs_overlay = layers.as_deref().map(overlay_data).transpose()?;
    let rootfs_propagation = match linux.rootfs_propagation() {
        Some(p) if !p.is_empty() => propagation_flags(p)?,
        _ => 0,
    };

    let (uid_map, gid_map) = if user_ns {
        (id_map(linux.uid_mappings()), id_map(linux.gid_mappings()))
    } else {
        (None, None)
    };
    let joined_userns = join_ns.iter().find(|(_, f)| *f == libc::CLONE_NEWUSER);
    let container_userns = match (joined_userns, &uid_map, &gid_map) {
        (Some((fd, _)), ..) => Some(IdSource::Userns(fd.as_fd())),
        (None, Some(u), Some(g)) => Some(IdSource::Maps(u.into(), g.into())),
        _ => None,
    };
    let mut mounts = Vec::new();
    let mut has_dev_mount = false;
    if opts.kind == Kind::Init {
        for m in spec.mounts().iter().flatten() {
            if mount_destination(m) == Path::new("/dev") {
                has_dev_mount = true;
            }
            mounts.push(build_mount(m, opts.bundle, &cg, container_userns.as_ref())?);
        }
    }
    let dev_tmpfs = opts.kind == Kind::Init && !has_dev_mount && readonly_root;
    let setup_dev = opts.kind == Kind::Init;

    let mut devices = Vec::new();
    if opts.kind == Kind::Init {
        let defaults: [(&str, u64, u64); 6] = [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ];
        let listed: Vec<PathBuf> = linux
            .devices()
            .iter()
            .flatten()
            .map(|d| d.path().clone())
            .collect();
        for (p, maj, min) in defaults {
            if listed.iter().any(|l| l == Path::new(p)) {
                continue;
            }
            devices.push(DeviceOp {
                path: cstr(p, "device")?,
                mode: libc::S_IFCHR | 0o666,
                dev: libc::makedev(maj as u32, min as u32),
                uid: 0,
                gid: 0,
                host_path: cstr(p, "device")?,
            });
        }
        for d in linux.devices().iter().flatten() {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(Error::Config(format!(
                        "device {:?}: type 'a' cannot be created",
                        d.path()
                    )))
                }
            };
            if !d.path().is_absolute() {
                return Err(Error::Config(format!(
                    "device path {:?} is not absolute",
                    d.path()
                )));
            }
            devices.push(DeviceOp {
                path: path_cstr(d.path(), "device path")?,
                mode: kind | d.file_mode().unwrap_or(0o666) & 0o7777,
                dev: libc::makedev(d.major() as u32, d.minor() as u32),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
                host_path: path_cstr(d.path(), "device path")?,
            });
        }
    }

    // Absolute, as the spec requires: they are mounted one after another
    // from a cwd that moves, so a relative one would name nothing sure.
    let cs = |v: &Option<Vec<String>>, what: &str| -> Result<Vec<CString>> {
        v.iter()
            .flatten()
            .map(|p| {
                if !p.starts_with('/') {
                    return Err(Error::Config(format!(
                        "{what} {p:?}: must be an absolute path"
                    )));
                }
                cstr(p, what)
            })
            .collect()
    };
    let (masked_paths, readonly_paths) = if opts.kind == Kind::Init {
        (
            cs(linux.masked_paths(), "masked path")?,
            cs(linux.readonly_paths(), "readonly path")?,
        )
    } else {
        (Vec::new(), Vec::new())
    };

    let mut sysctls = Vec::new();
    if opts.kind == Kind::Init {
        let mut keys: Vec<_> = linux.sysctl().iter().flatten().collect();
        keys.sort();
        for (k, v) in keys {
            if k.contains("..") || k.contains('\0') {
                return Err(Error::Config(format!("invalid sysctl {k:?}")));
            }
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            sysctls.push((cstr(path, "sysctl")?, cstr(v, "sysctl value")?));
        }
    }
    let uts = opts.kind == Kind::Init
        && namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Uts);
    let hostname = match spec.hostname() {
        Some(h) if opts.kind == Kind::Init && !h.is_empty() => {
            if !uts {
                return Err(Error::Config(
                    "hostname set without a new uts namespace".into(),
                ));
            }
            Some(cstr(h, "hostname")?)
        }
        _ => None,
    };
    let domainname = match spec.domainname() {
        Some(h) if opts.kind == Kind::Init && !h.is_empty() => {
            if !uts {
                return Err(Error::Config(
                    "domainname set without a new uts namespace".into(),
                ));
            }
            Some(cstr(h, "domainname")?)
        }
        _ => None,
    };

    // The process.
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd {cwd:?} must be absolute"
        )));
    }
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if let Some(l) = opts.listen {
        l.apply(&mut env);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        // As runc does: the user's home from the container's /etc/passwd.
        let roots: Vec<PathBuf> = match (opts.kind, &layers) {
            (Kind::Exec, _) => opts
                .join_pid
                .map(|pid| PathBuf::from(format!("/proc/{pid}/root")))
                .into_iter()
                .collect(),
            (_, Some(l)) => l.iter().map(PathBuf::from).collect(),
            (_, None) => vec![rootfs.clone()],
        };
        let passwd = passwd_file(&roots, &mounts);
        env.push(format!(
            "HOME={}",
            home_of(passwd.as_deref().unwrap_or(""), process.user().uid())
        ));
    }
    let env_c = env
        .iter()
        .map(|e| cstr(e, "env"))
        .collect::<Result<Vec<_>>>()?;
    let argv = args
        .iter()
        .map(|a| cstr(a, "arg"))
        .collect::<Result<Vec<_>>>()?;
    let exec_candidates = exec_candidates(&args[0], &env)
        .into_iter()
        .map(|c| cstr(c, "exec path"))
        .collect::<Result<Vec<_>>>()?;

    let mut rlimits = Vec::new();
    for r in process.rlimits().iter().flatten() {
        if r.soft() > r.hard() {
            return Err(Error::Config(format!(
                "rlimit {:?}: soft limit above hard limit",
                r.typ()
            )));
        }
        rlimits.push((rlimit_resource(r.typ()), r.soft(), r.hard()));
    }
    let personality = match linux.personality() {
        Some(p) => {
            use oci_spec::runtime::LinuxPersonalityDomain::*;
            let d = match p.domain() {
                PerLinux => 0,
                PerLinux32 => 8,
            };
            Some(d as libc::c_ulong)
        }
        None => None,
    };

    let last_cap = last_cap();
    let own = own_bounding(last_cap);
    let caps = match process.capabilities() {
        Some(c) => {
            let wanted = cap_mask(c.bounding().as_ref(), last_cap)?
                | cap_mask(c.permitted().as_ref(), last_cap)?
                | cap_mask(c.effective().as_ref(), last_cap)?;
            let missing = wanted & !own;
            if missing != 0 {
                let names: Vec<String> = caps::all()
                    .into_iter()
                    .filter(|c| missing & c.bitmask() != 0)
                    .map(|c| c.to_string())
                    .collect();
                return Err(Error::Config(format!(
                    "capabilities {} are not in mica's own bounding set: this host does not grant them",
                    names.join(", ")
                )));
            }
            Some(Caps {
                bounding: cap_mask(c.bounding().as_ref(), last_cap)?,
                effective: cap_mask(c.effective().as_ref(), last_cap)?,
                permitted: cap_mask(c.permitted().as_ref(), last_cap)?,
                inheritable: cap_mask(c.inheritable().as_ref(), last_cap)?,
                ambient: cap_mask(c.ambient().as_ref(), last_cap)?,
                last_cap,
            })
        }
        None => Some(Caps {
            bounding: 0,
            effective: 0,
            permitted: 0,
            inheritable: 0,
            ambient: 0,
            last_cap,
        }),
    };
    let user = process.user();
    let seccomp = match linux.seccomp() {
        Some(s) => {
            Some(crate::seccomp::compile(s).map_err(|e| Error::Config(format!("seccomp: {e}")))?)
        }
        None => None,
    };
    let (create_container_hooks, start_container_hooks) = match (opts.kind, spec.hooks()) {
        (Kind::Init, Some(h)) => (
            h.create_container()
                .iter()
                .flatten()
                .map(build_hook)
                .collect::<Result<Vec<_>>>()?,
            h.start_container()
                .iter()
                .flatten()
                .map(build_hook)
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() {
        return Err(Error::Config(
            "process.terminal is true: a --console-socket is required".into(),
        ));
    }
    if let Some(fd) = &opts.console_socket {
        let _ = fd.as_raw_fd();
    }
    if user_ns && (uid_map.is_none() || gid_map.is_none()) {
        return Err(Error::Config(
            "a new user namespace needs uidMappings and gidMappings".into(),
        ));
    }

    Ok(Plan {
        kind: opts.kind,
        clone_flags,
        join_ns,
        join_ns_paths,
        unshare_in_middle,
        unshare_child,
        second_fork,
        session_keyring: opts
            .session_keyring
            .as_ref()
            .map(|k| cstr(k, "session keyring"))
            .transpose()?,
        new_cgroupns: new_cgroupns && opts.kind == Kind::Init,
        timens_offsets,
        user_ns,
        rootfs: path_cstr(&rootfs, "rootfs")?,
        rootfs_overlay,
        rootfs_propagation,
        readonly_root,
        no_pivot: opts.no_pivot,
        mounts,
        dev_tmpfs,
        setup_dev,
        devices,
        masked_paths,
        readonly_paths,
        sysctls,
        hostname,
        domainname,
        cwd: path_cstr(cwd, "cwd")?,
        rlimits,
        personality,
        terminal,
        console_socket: opts.console_socket,
        console_size: process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16)),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        caps,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        seccomp,
        oom_score_adj: process
            .oom_score_adj()
            .map(|v| cstr(v.to_string(), "oom"))
            .transpose()?,
        io_priority: process
            .io_priority()
            .as_ref()
            .map(io_priority)
            .transpose()?,
        scheduler: process.scheduler().as_ref().map(sched_attr).transpose()?,
        arg0: cstr(&args[0], "arg0")?,
        exec_candidates,
        argv_ptrs: ptrs(&argv),
        argv,
        envp: ptrs(&env_c),
        env: env_c,
        // Negative from a library caller: none (the CLI refuses it).
        preserve_fds: opts.preserve_fds.max(0),
        preserved: Vec::new(),
        exec_fifo: opts.exec_fifo,
        create_container_hooks,
        start_container_hooks,
        uid_map,
        gid_map,
        prepivot_hooks: false,
        keep_fds: Vec::new(),
        cgroup_tasks: Vec::new(),
        cgroup_dir: libc::AT_FDCWD,
        join_late: false,
        solo: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prctl probes agree with what the kernel shows in /proc.
    #[test]
    fn capability_probes_match_proc() {
        let file = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap();
        assert_eq!(last_cap(), file.trim().parse::<u32>().unwrap());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(own_bounding(last_cap()), bnd);
    }

    #[test]
    fn home_comes_from_passwd_or_is_root() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nx\nuser:x:1000:1000::/home/user:/bin/sh\nnohome:x:7:7:::\n";
        assert_eq!(home_of(passwd, 0), "/root");
        assert_eq!(home_of(passwd, 1000), "/home/user");
        assert_eq!(home_of(passwd, 7), "/");
        assert_eq!(home_of(passwd, 555), "/");
        assert_eq!(home_of("", 0), "/");
    }

    #[test]
    fn candidates_follow_container_path() {
        let env = vec!["PATH=/a:/b/".to_string()];
        assert_eq!(exec_candidates("ls", &env), vec!["/a/ls", "/b/ls"]);
        assert_eq!(exec_candidates("/bin/ls", &env), vec!["/bin/ls"]);
        assert_eq!(exec_candidates("./x", &[]), vec!["./x"]);
    }

    #[test]
    fn mount_options_map_to_flags() {
        assert_eq!(mount_option("ro"), Some((libc::MS_RDONLY, 0, 0)));
        assert_eq!(
            mount_option("rbind"),
            Some((libc::MS_BIND | libc::MS_REC, 0, 0))
        );
        assert_eq!(
            mount_option("rslave"),
            Some((0, 0, libc::MS_SLAVE | libc::MS_REC))
        );
        assert_eq!(mount_option("mode=755"), None);
        assert!(propagation_flags("rprivate").is_ok());
        assert!(propagation_flags("ro").is_err());
    }

    #[test]
    fn recursive_mount_options_fold_into_one_mount_attr() {
        let mut a = MountAttr::default();
        assert!(recursive_mount_option("rro", &mut a));
        assert!(recursive_mount_option("rnosuid", &mut a));
        assert_eq!(
            a,
            MountAttr {
                set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
                clr: 0
            }
        );
        // A later option wins for the same attribute.
        assert!(recursive_mount_option("rrw", &mut a));
        assert_eq!(
            a,
            MountAttr {
                set: MOUNT_ATTR_NOSUID,
                clr: MOUNT_ATTR_RDONLY
            }
        );
        // An atime mode clears the whole field (mount_setattr requires it)
        // and sets its value; the last mode wins.
        assert!(recursive_mount_option("rnoatime", &mut a));
        assert!(recursive_mount_option("rstrictatime", &mut a));
        assert_eq!(a.set & MOUNT_ATTR_ATIME, MOUNT_ATTR_STRICTATIME);
        assert_eq!(a.clr & MOUNT_ATTR_ATIME, MOUNT_ATTR_ATIME);
        assert!(recursive_mount_option("rrelatime", &mut a));
        assert_eq!(a.set & MOUNT_ATTR_ATIME, 0);
        assert_eq!(a.set, MOUNT_ATTR_NOSUID);
        // Not recursive options.
        for o in ["ro", "rbind", "rprivate", "rx"] {
            assert!(!recursive_mount_option(o, &mut a), "{o}");
        }
        // Every name in the table is distinct and starts with "r".
        let mut names: Vec<_> = RECURSIVE_MOUNT_OPTIONS.iter().map(|o| o.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RECURSIVE_MOUNT_OPTIONS.len());
        assert!(names
            .iter()
            .all(|n| n.starts_with('r') && mount_option(n).is_none()));
    }
}
