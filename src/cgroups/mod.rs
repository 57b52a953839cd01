//! cgroups: one [`Cgroup`] type over cgroup v1, cgroup v2 and hybrid hosts.
//!
//! The layout is discovered from `/proc/self/mountinfo` (entries of type
//! `cgroup` and `cgroup2`, their mount points and super options), never
//! from hardcoded paths (mounts covered by later ones are skipped: they are
//! listed but cannot be reached). Every resource controller is routed to the
//! hierarchy that actually has it: a v1 hierarchy if one is mounted with
//! that controller, else the cgroup2 hierarchy if the controller is listed
//! in the container dir's `cgroup.controllers`. That one rule covers pure
//! v1, pure v2 and hybrid hosts (e.g. everything on v1 but `hugetlb` on v2).
//!
//! The v1 specifics live in `v1.rs`, the v2 specifics in `v2.rs`; the
//! statistics `mica events` prints are described in `stats.rs`, their v1
//! and v2 readers are in `v1.rs` and `v2.rs`.

pub(crate) mod at;
mod devices;
pub mod stats;
mod v1;
mod v2;

pub use stats::Stats;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use serde::{Deserialize, Serialize};

const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// Upper bound for waiting on the kernel (freezing, processes dying).
const WAIT: Duration = Duration::from_secs(2);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(10);

/// Errors of the cgroups layer. Every variant names the file, path or value
/// concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, creating, listing or removing a cgroup file or directory failed.
    #[error("cgroup: cannot {op} {}: {err}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// The kernel refused a value written to a cgroup file.
    #[error("cgroup: writing {value:?} to {} failed: {err}", .path.display())]
    Write {
        path: PathBuf,
        value: String,
        err: io::Error,
    },
    /// A kernel-provided file (mountinfo, /proc/self/cgroup, cgroup.procs ...)
    /// had unexpected content.
    #[error("cgroup: cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    /// `linux.cgroupsPath` (or a recorded path) is unusable.
    #[error("cgroup: invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// A value from `linux.resources` is out of range or inconsistent.
    #[error("cgroup: invalid value {value} for {field}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },
    /// The configuration needs a controller this host / cgroup does not offer.
    #[error("cgroup: the {controller} controller is not available: {reason}")]
    ControllerMissing { controller: String, reason: String },
    /// The request cannot be honoured on this cgroup version / kernel.
    #[error("cgroup: not supported: {0}")]
    Unsupported(String),
    /// The kernel did not reach the expected state in time.
    #[error("cgroup: timed out waiting for {what} ({})", .path.display())]
    Timeout { what: String, path: PathBuf },
    /// Sending SIGKILL to a process of the cgroup failed.
    #[error("cgroup: cannot SIGKILL pid {pid} (in {}): {err}", .path.display())]
    Kill {
        pid: i32,
        path: PathBuf,
        err: nix::errno::Errno,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

// ---------------------------------------------------------------------------
// Layout discovery
// ---------------------------------------------------------------------------

/// A mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub mount_point: PathBuf,
    /// The cgroup (inside the hierarchy) that is mounted there, usually "/".
    pub root: String,
    /// Controllers from the super options, e.g. ["cpu", "cpuacct"], or a
    /// named hierarchy such as ["name=systemd"].
    pub controllers: Vec<String>,
}

/// The mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Mount {
    pub mount_point: PathBuf,
    pub root: String,
}

/// How cgroups are set up on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V1 {
        hierarchies: Vec<V1Mount>,
    },
    V2 {
        unified: V2Mount,
    },
    Hybrid {
        hierarchies: Vec<V1Mount>,
        unified: V2Mount,
    },
}

/// Reads /proc/self/mountinfo and reports the cgroup layout.
pub fn layout() -> Result<Layout> {
    parse_layout(&read(Path::new(MOUNTINFO))?)
}

fn parse_layout(mountinfo: &str) -> Result<Layout> {
    let m = parse_mountinfo(mountinfo)?;
    match (m.v1.is_empty(), m.v2) {
        (true, None) => Err(no_cgroupfs()),
        (true, Some(unified)) => Ok(Layout::V2 { unified }),
        (false, None) => Ok(Layout::V1 { hierarchies: m.v1 }),
        (false, Some(unified)) => Ok(Layout::Hybrid {
            hierarchies: m.v1,
            unified,
        }),
    }
}

fn no_cgroupfs() -> Error {
    Error::Unsupported(format!(
        "no cgroup or cgroup2 filesystem is mounted (none listed in {MOUNTINFO})"
    ))
}

struct Mounts {
    v1: Vec<V1Mount>,
    v2: Option<V2Mount>,
}

/// Mount options of v1 cgroup mounts that are not controllers.
fn is_v1_flag(opt: &str) -> bool {
    matches!(
        opt,
        "rw" | "ro"
            | "none"
            | "noprefix"
            | "xattr"
            | "clone_children"
            | "cpuset_v2_mode"
            | "favordynmods"
            | "nofavordynmods"
            | "all"
    ) || (opt.contains('=') && !opt.starts_with("name="))
}

/// Undo the octal escaping of mountinfo fields (`\040` for a space ...).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of mountinfo, as far as cgroup discovery needs it.
struct MountLine<'a> {
    id: u64,
    parent: u64,
    /// As mountinfo escapes it (`\040` for a space ...): compared only with
    /// others escaped alike, unescaped for the cgroup mounts alone.
    mount_point: &'a str,
    /// The cgroup mounted there, or None for any other filesystem.
    cgroup: Option<CgroupMount>,
}

enum CgroupMount {
    V1(V1Mount),
    V2(V2Mount),
}

fn parse_mountinfo(text: &str) -> Result<Mounts> {
    let lines = parse_mountinfo_lines(text)?;
    let mut v1: Vec<V1Mount> = Vec::new();
    let mut v2: Option<V2Mount> = None;
    for (i, line) in lines.iter().enumerate() {
        let Some(cgroup) = &line.cgroup else { continue };
        // A mount hidden by a later one over it or over a directory above
        // it (a fresh tmpfs mounted on /sys/fs/cgroup, say) is still listed
        // but cannot be reached by its path.
        if is_hidden(&lines, i) {
            continue;
        }
        match cgroup {
            CgroupMount::V1(m) => {
                // The same hierarchy may be mounted more than once (bind
                // mounts): keep one, preferring a mount of the hierarchy root.
                match v1.iter_mut().find(|x| x.controllers == m.controllers) {
                    Some(x) => {
                        if x.root != "/" && m.root == "/" {
                            *x = m.clone();
                        }
                    }
                    None => v1.push(m.clone()),
                }
            }
            CgroupMount::V2(m) => match &v2 {
                Some(x) if x.root == "/" || m.root != "/" => {}
                _ => v2 = Some(m.clone()),
            },
        }
    }
    Ok(Mounts { v1, v2 })
}

fn parse_mountinfo_lines(text: &str) -> Result<Vec<MountLine<'_>>> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: &str| Error::Parse {
            what: format!("{MOUNTINFO} line {}", n + 1),
            detail: format!("{detail}: {line:?}"),
        };
        let (pre, post) = line
            .split_once(" - ")
            .ok_or_else(|| bad("no \" - \" separator"))?;
        let pre: Vec<&str> = pre.split(' ').collect();
        if pre.len() < 6 {
            return Err(bad("too few fields before the separator"));
        }
        let (Ok(id), Ok(parent)) = (pre[0].parse(), pre[1].parse()) else {
            return Err(bad("mount id or parent id is not a number"));
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let super_opts = post.next().unwrap_or("");
        let root = || unescape_mountinfo(pre[3]);
        let mount_point = pre[4];
        let cgroup = match fstype {
            "cgroup" => {
                let mut controllers: Vec<String> = super_opts
                    .split(',')
                    .filter(|o| !o.is_empty() && !is_v1_flag(o))
                    .map(str::to_string)
                    .collect();
                controllers.sort();
                (!controllers.is_empty()).then(|| {
                    CgroupMount::V1(V1Mount {
                        mount_point: unescape_mountinfo(mount_point).into(),
                        root: root(),
                        controllers,
                    })
                })
            }
            "cgroup2" => Some(CgroupMount::V2(V2Mount {
                mount_point: unescape_mountinfo(mount_point).into(),
                root: root(),
            })),
            _ => None,
        };
        lines.push(MountLine {
            id,
            parent,
            mount_point,
            cgroup,
        });
    }
    Ok(lines)
}

/// Is mount `lines[i]` unreachable by its path? Walking from it up through
/// its parents: it is hidden when another mount sits on its own root, or
/// when a parent has another child mounted on that parent's root or on a
/// directory above the mount point of the child on our way (that one covers
/// the path). Mounts on the same parent at the same place are left be.
fn is_hidden(lines: &[MountLine], i: usize) -> bool {
    let x = &lines[i];
    if lines
        .iter()
        .any(|n| n.parent == x.id && n.id != x.id && n.mount_point == x.mount_point)
    {
        return true;
    }
    let mut on_way = x;
    // A mount table is a tree; the bound guards against a malformed one.
    for _ in 0..lines.len() {
        let p = on_way.parent;
        // The parent itself may be missing (outside our root).
        let a = lines.iter().find(|a| a.id == p && a.id != on_way.id);
        let covered = lines.iter().any(|n| {
            n.parent == p
                && n.id != on_way.id
                && n.id != p
                && (a.is_some_and(|a| n.mount_point == a.mount_point)
                    || is_below(on_way.mount_point, n.mount_point))
        });
        match a {
            _ if covered => return true,
            Some(a) => on_way = a,
            None => return false,
        }
    }
    false
}

/// Is path `p` strictly below directory `dir` (both absolute, as mountinfo
/// gives them)?
fn is_below(p: &str, dir: &str) -> bool {
    p.len() > dir.len()
        && p.starts_with(dir)
        && (dir.ends_with('/') || p.as_bytes()[dir.len()] == b'/')
}

/// The calling process's cgroups, from /proc/self/cgroup.
struct OwnCgroups {
    /// (controllers of the hierarchy, cgroup path)
    v1: Vec<(Vec<String>, String)>,
    v2: Option<String>,
}

impl OwnCgroups {
    fn v1_path(&self, controllers: &[String]) -> &str {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| controllers.contains(x)))
            .map(|(_, p)| p.as_str())
            .unwrap_or("/")
    }
}

fn parse_proc_cgroup(text: &str) -> Result<OwnCgroups> {
    let mut own = OwnCgroups {
        v1: Vec::new(),
        v2: None,
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Parse {
                what: format!("{PROC_SELF_CGROUP} line {}", n + 1),
                detail: format!("expected \"id:controllers:path\": {line:?}"),
            });
        };
        if id == "0" && ctrls.is_empty() {
            own.v2 = Some(path.to_string());
        } else {
            let c = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            own.v1.push((c, path.to_string()));
        }
    }
    Ok(own)
}

/// `linux.cgroupsPath` -> (is absolute, path components below the base).
fn parse_cgroups_path(cgroups_path: Option<&str>, id: &str) -> Result<(bool, Vec<String>)> {
    let Some(p) = cgroups_path.filter(|p| !p.is_empty()) else {
        if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
            return Err(Error::InvalidValue {
                field: "container id".into(),
                value: format!("{id:?}"),
                reason: "cannot be used as a cgroup directory name".into(),
            });
        }
        return Ok((false, vec![format!("mica-{id}")]));
    };
    let invalid = |reason: &str| Error::InvalidPath {
        path: p.to_string(),
        reason: reason.to_string(),
    };
    if !p.contains('/') && p.split(':').count() == 3 {
        return Err(invalid(
            "this is systemd \"slice:prefix:name\" syntax; the systemd cgroup driver is not \
             supported, use a cgroupfs path such as \"/mica/<id>\"",
        ));
    }
    if p.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let absolute = p.starts_with('/');
    let mut comps = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid("\"..\" components are not allowed")),
            c => comps.push(c.to_string()),
        }
    }
    if comps.is_empty() {
        return Err(invalid(if absolute {
            "resolves to the root cgroup"
        } else {
            "resolves to the runtime's own cgroup"
        }));
    }
    Ok((absolute, comps))
}

/// Components of the process's own cgroup path relative to the mount's root.
fn own_components(own: &str, mount_root: &str) -> Result<Vec<String>> {
    let split = |s: &str| -> Vec<String> {
        s.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect()
    };
    let own_c = split(own);
    if own_c.iter().any(|c| c == "..") {
        return Err(Error::Unsupported(format!(
            "the runtime's cgroup {own:?} is outside its cgroup namespace; use an absolute cgroupsPath"
        )));
    }
    let root_c = split(mount_root);
    if own_c.starts_with(&root_c) {
        Ok(own_c[root_c.len()..].to_vec())
    } else {
        Ok(own_c)
    }
}

// ---------------------------------------------------------------------------
// The container's cgroup
// ---------------------------------------------------------------------------

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HierarchyDir {
    /// v1: the hierarchy's controllers (e.g. ["cpu", "cpuacct"] or
    /// ["name=systemd"]). v2: empty; the available controllers are read from
    /// the dir's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted.
    pub mount: PathBuf,
    /// The container's cgroup directory.
    pub dir: PathBuf,
    /// The topmost directory (an ancestor of, or equal to, `dir`) that this
    /// runtime made; `destroy` removes up to and including it and never
    /// anything above. None: `dir` already existed, nothing is removed.
    /// Until [`Cgroup::create`] has been through it, it is `dir` itself
    /// (nothing is looked up in advance: mkdir tells), so a record saved
    /// before the directories exist names at most the container's own
    /// cgroup. (A crash right after a mkdir found that directory existing,
    /// before the record saying so is saved, leaves it named: a `delete`
    /// then removes it, as runc's always does.)
    pub created_top: Option<PathBuf>,
    /// `created_top` says what was made (not a guess): `create` has been
    /// through this hierarchy.
    #[serde(skip)]
    settled: bool,
}

impl HierarchyDir {
    fn new(
        controllers: Vec<String>,
        mount: &Path,
        base: &[String],
        comps: &[String],
    ) -> HierarchyDir {
        // The base (mount root, or the process's own cgroup) exists.
        let mut dir = mount.to_path_buf();
        dir.extend(base);
        dir.extend(comps);
        HierarchyDir {
            controllers,
            mount: mount.to_path_buf(),
            created_top: Some(dir.clone()),
            dir,
            settled: false,
        }
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// Was `p` created by us (at or below `created_top`)?
    fn is_ours(&self, p: &Path) -> bool {
        self.created_top.as_ref().is_some_and(|t| p.starts_with(t))
    }

    /// Reject recorded paths that could make us touch anything outside the
    /// hierarchy (a state file is data, not trusted).
    fn check(&self) -> Result<()> {
        let bad = |reason: &str| Error::InvalidPath {
            path: self.dir.display().to_string(),
            reason: reason.to_string(),
        };
        if !self.mount.is_absolute() {
            return Err(bad("mount point is not absolute"));
        }
        let rel = self
            .dir
            .strip_prefix(&self.mount)
            .map_err(|_| bad("not below the hierarchy's mount point"))?;
        if rel.as_os_str().is_empty() {
            return Err(bad("is the hierarchy's root"));
        }
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("contains \".\" or \"..\" components"));
        }
        if let Some(top) = &self.created_top {
            let top_rel = top.strip_prefix(&self.mount).map_err(|_| {
                bad("recorded created_top is not below the hierarchy's mount point")
            })?;
            if top_rel.as_os_str().is_empty() || !self.dir.starts_with(top) {
                return Err(bad(
                    "recorded created_top is not an ancestor of the cgroup dir",
                ));
            }
        }
        Ok(())
    }

    /// The topmost directory on the way down to `dir` that does not exist.
    fn first_missing(&self) -> Result<Option<PathBuf>> {
        let rel = self.dir.strip_prefix(&self.mount).unwrap_or(Path::new(""));
        let mut p = self.mount.clone();
        for c in rel.components() {
            p.push(c);
            match p.symlink_metadata() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(p)),
                Err(err) => {
                    return Err(Error::Io {
                        op: "look up cgroup directory",
                        path: p,
                        err,
                    })
                }
            }
        }
        Ok(None)
    }

    /// mkdir `top` (just recorded), then each directory down to `dir`.
    /// False: look again — `top` exists by now (another container made it),
    /// or a directory above one to make vanished (another container's
    /// teardown removed the shared parent it had made).
    fn mkdirs_from(&self, top: &Path) -> Result<bool> {
        if !matches!(mkdir(top)?, Mkdir::Made) {
            return Ok(false);
        }
        let mut p = top.to_path_buf();
        for c in self
            .dir
            .strip_prefix(top)
            .unwrap_or(Path::new(""))
            .components()
        {
            p.push(c);
            if matches!(mkdir(&p)?, Mkdir::ParentMissing) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// rmdir the sub-cgroups of `dir`, `dir` and its created ancestors.
    fn remove(&self, deadline: Instant) -> Result<()> {
        let Some(top) = &self.created_top else {
            return Ok(());
        };
        rmdir_tree(&self.dir, deadline)?;
        self.remove_ancestors(top)
    }

    /// The quick way out: one rmdir of a dir we created that is empty now
    /// (no processes, no sub-cgroups), then its created ancestors. False
    /// when the full [`Cgroup::destroy`] is needed.
    fn remove_if_empty(&self) -> bool {
        let Some(top) = &self.created_top else {
            return false;
        };
        match at::rmdir(&self.dir) {
            Ok(()) => self.remove_ancestors(top).is_ok(),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    fn remove_ancestors(&self, top: &Path) -> Result<()> {
        let mut p = self.dir.parent();
        while let Some(d) = p {
            if !d.starts_with(top) {
                break;
            }
            match at::rmdir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Someone else put a cgroup below an ancestor we created
                // (e.g. a sibling container): leave it.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
                    break
                }
                Err(err) => {
                    return Err(Error::Io {
                        op: "remove cgroup directory",
                        path: d.to_path_buf(),
                        err,
                    })
                }
            }
            p = d.parent();
        }
        Ok(())
    }
}

/// What one mkdir of a cgroup directory found.
enum Mkdir {
    Made,
    Existed,
    ParentMissing,
}

/// mkdir one cgroup directory. No lookup before it: a path walk through
/// cgroupfs is not cheap, and contends with other containers' mkdir and rmdir.
fn mkdir(p: &Path) -> Result<Mkdir> {
    let io_err = |err| Error::Io {
        op: "create cgroup directory",
        path: p.to_path_buf(),
        err,
    };
    match at::mkdir(p) {
        Ok(()) => Ok(Mkdir::Made),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if p.is_dir() {
                Ok(Mkdir::Existed)
            } else {
                Err(io_err(io::Error::other("exists and is not a directory")))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Mkdir::ParentMissing),
        Err(err) => Err(io_err(err)),
    }
}

/// Depth-first rmdir of a cgroup and its sub-cgroups; missing is fine.
/// EBUSY is retried until `deadline` (a cgroup stays populated briefly after
/// its last process was killed).
fn rmdir_tree(dir: &Path, deadline: Instant) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(|err| Error::Io {
                    op: "list cgroup directory",
                    path: dir.to_path_buf(),
                    err,
                })?;
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path(), deadline)?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(Error::Io {
                op: "list cgroup directory",
                path: dir.to_path_buf(),
                err,
            })
        }
    }
    loop {
        match at::rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(POLL)
            }
            Err(err) => {
                return Err(Error::Io {
                    op: "remove cgroup directory",
                    path: dir.to_path_buf(),
                    err,
                })
            }
        }
    }
}

/// Where one container's cgroup lives in every hierarchy. Serializable: the
/// runtime records it before creating anything so that `destroy` can always
/// clean up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cgroup {
    /// One entry per mounted v1 hierarchy (including named ones such as
    /// name=systemd). Empty on pure v2 hosts.
    pub v1: Vec<HierarchyDir>,
    /// The cgroup2 dir, if cgroup2 is mounted (pure v2 or hybrid).
    pub v2: Option<HierarchyDir>,
}

/// Saves a cgroup's record (see [`Cgroup::create`]).
pub type Record<'a> = &'a mut dyn FnMut(&Cgroup) -> io::Result<()>;

/// Where a controller's files are for this container.
pub(super) enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl Cgroup {
    /// Compute (without creating anything) where the container's cgroup is.
    ///
    /// `cgroups_path` is `linux.cgroupsPath`. Absolute ("/a/b"): relative to
    /// each hierarchy's mount root. Relative ("a/b") or None: below the
    /// cgroup the calling process is in, per hierarchy (on cgroup2: below
    /// that cgroup's parent, as runc, see below); None means "mica-<id>".
    /// ".." components and systemd "slice:prefix:name" paths are rejected.
    ///
    /// Nothing below the mounts is looked at: which directories this
    /// runtime makes (and `destroy` removes) is settled by
    /// [`create`](Self::create).
    pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let mountinfo = read(Path::new(MOUNTINFO))?;
        let own = read(Path::new(PROC_SELF_CGROUP))?;
        Self::resolve_from(&mountinfo, &own, cgroups_path, id)
    }

    /// `resolve` on given /proc/self/mountinfo and /proc/self/cgroup text.
    fn resolve_from(
        mountinfo: &str,
        proc_cgroup: &str,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup> {
        let (absolute, comps) = parse_cgroups_path(cgroups_path, id)?;
        let mounts = parse_mountinfo(mountinfo)?;
        if mounts.v1.is_empty() && mounts.v2.is_none() {
            return Err(no_cgroupfs());
        }
        let own = parse_proc_cgroup(proc_cgroup)?;
        let mut v1 = Vec::with_capacity(mounts.v1.len());
        for m in &mounts.v1 {
            let base = if absolute {
                Vec::new()
            } else {
                own_components(own.v1_path(&m.controllers), &m.root)?
            };
            v1.push(HierarchyDir::new(
                m.controllers.clone(),
                &m.mount_point,
                &base,
                &comps,
            ));
        }
        let v2 = match &mounts.v2 {
            None => None,
            Some(m) => {
                let base = if absolute {
                    Vec::new()
                } else {
                    // As runc: on cgroup2 a relative path goes below the
                    // PARENT of the process's own cgroup. The own cgroup
                    // holds this very process, and the "no internal
                    // processes" rule forbids enabling controllers in its
                    // cgroup.subtree_control, so a child of it could never
                    // get memory/cpu/... limits. (Same dir when the process
                    // is in the root cgroup.)
                    let mut b = own_components(own.v2.as_deref().unwrap_or("/"), &m.root)?;
                    b.pop();
                    b
                };
                Some(HierarchyDir::new(Vec::new(), &m.mount_point, &base, &comps))
            }
        };
        Ok(Cgroup { v1, v2 })
    }

    fn all(&self) -> impl Iterator<Item = &HierarchyDir> {
        self.v1.iter().chain(self.v2.iter())
    }

    fn check(&self) -> Result<()> {
        self.all().try_for_each(HierarchyDir::check)
    }

    fn v1_with(&self, controller: &str) -> Option<&HierarchyDir> {
        self.v1.iter().find(|h| h.has(controller))
    }

    /// mkdir the dirs in all hierarchies; v1 cpuset: fill cpuset.cpus/mems of
    /// new dirs from their parent; v2: enable controllers down the tree.
    /// Records in each hierarchy what was made (`created_top`); on an error,
    /// a hierarchy not reached yet records nothing made. `record` is told
    /// the cgroup before any directory its record does not name is made, and
    /// when the container's directory turns out to exist already (then it is
    /// joined, not ours): the caller saves it, so that whatever a crash leaves
    /// is what the saved record names. The usual case, a new directory below
    /// one that exists, is the record made before `create`: no call.
    pub fn create(&mut self, record: Record) -> Result<()> {
        let made = self
            .create_v2(&mut *record)
            .and_then(|()| self.create_v1(record));
        if made.is_err() {
            self.forget_unsettled();
        }
        made
    }

    /// The cgroup2 part of [`create`](Self::create) (what clone3 joins).
    pub fn create_v2(&mut self, record: Record) -> Result<()> {
        if self.v2.is_none() {
            return Ok(());
        }
        self.make(None, record)?;
        v2::enable_controllers(self.slot(None))
    }

    /// The v1 part of [`create`](Self::create) (what the process joins itself).
    /// On an error, hierarchies not reached yet still carry the record made
    /// for a crash: the caller undoes after [`forget_unsettled`](Self::forget_unsettled).
    pub fn create_v1(&mut self, record: Record) -> Result<()> {
        for i in 0..self.v1.len() {
            self.make(Some(i), &mut *record)?;
            let h = &self.v1[i];
            if h.has("cpuset") {
                v1::init_cpuset(h)?;
            }
        }
        Ok(())
    }

    /// The v1 hierarchy `Some(i)`, or cgroup2 (`None`).
    fn slot(&mut self, at: Option<usize>) -> &mut HierarchyDir {
        match at {
            Some(i) => &mut self.v1[i],
            None => self.v2.as_mut().expect("cgroup2 is mounted"),
        }
    }

    /// Make one hierarchy's directory (see [`create`](Self::create)); its
    /// `created_top` then says what was made.
    fn make(&mut self, at: Option<usize>, record: Record) -> Result<()> {
        let made = self.make_dir(at, record);
        self.slot(at).settled = true;
        made
    }

    fn make_dir(&mut self, at: Option<usize>, record: Record) -> Result<()> {
        let h = self.slot(at);
        if let Err(e) = h.check() {
            h.created_top = None;
            return Err(e);
        }
        // A few rounds: a shared parent can vanish, or appear, between a
        // lookup and a mkdir (other containers' creation and teardown).
        for round in 0..8 {
            let h = self.slot(at);
            let found = match mkdir(&h.dir) {
                Ok(f) => f,
                Err(e) => {
                    if round == 0 {
                        h.created_top = None;
                    }
                    return Err(e);
                }
            };
            match found {
                // The record saved before `create` names just this.
                Mkdir::Made if round == 0 => return Ok(()),
                // The parents are another container's by now.
                Mkdir::Made => {
                    h.created_top = Some(h.dir.clone());
                    return self.record(at, &mut *record);
                }
                Mkdir::Existed => {
                    h.created_top = None;
                    return self.record(at, &mut *record);
                }
                Mkdir::ParentMissing => {
                    let Some(top) = h.first_missing()? else {
                        continue;
                    };
                    let before = h.created_top.replace(top.clone());
                    if let Err(e) = self.record(at, &mut *record) {
                        // Nothing more was made.
                        self.slot(at).created_top = if round == 0 { None } else { before };
                        return Err(e);
                    }
                    if self.slot(at).mkdirs_from(&top)? {
                        return Ok(());
                    }
                }
            }
        }
        Err(Error::Io {
            op: "create cgroup directory",
            path: self.slot(at).dir.clone(),
            err: io::Error::other("its parent directories keep appearing and disappearing"),
        })
    }

    /// Hierarchies `create` has not been through record nothing made (a
    /// failed create undoes exactly what it did).
    pub fn forget_unsettled(&mut self) {
        for h in self.v1.iter_mut().chain(self.v2.iter_mut()) {
            if !h.settled {
                h.created_top = None;
            }
        }
    }

    fn record(&mut self, at: Option<usize>, record: Record) -> Result<()> {
        record(self).map_err(|err| Error::Io {
            op: "record in the state the cgroup directory",
            path: self.slot(at).dir.clone(),
            err,
        })
    }

    /// Find where `controller` (v1 name; `v2_name` on cgroup2) is handled.
    fn route<'a>(
        &'a self,
        v2_controllers: &Option<BTreeSet<String>>,
        controller: &str,
        v2_name: Option<&str>,
    ) -> Result<Target<'a>> {
        if let Some(h) = self.v1_with(controller) {
            return Ok(Target::V1(&h.dir));
        }
        if let (Some(h), Some(avail), Some(name)) = (&self.v2, v2_controllers, v2_name) {
            if avail.contains(name) {
                return Ok(Target::V2(&h.dir));
            }
        }
        let reason = match (&self.v2, v2_name) {
            (Some(h), Some(name)) => format!(
                "no cgroup v1 hierarchy has it and {name:?} is not in {} (the parent's \
                 cgroup.subtree_control must enable it)",
                h.dir.join("cgroup.controllers").display()
            ),
            (Some(_), None) => {
                "no cgroup v1 hierarchy has it and it does not exist on cgroup v2".to_string()
            }
            (None, _) => "no cgroup v1 hierarchy has it mounted".to_string(),
        };
        Err(Error::ControllerMissing {
            controller: controller.to_string(),
            reason,
        })
    }

    /// Apply `linux.resources`. Only what the configuration sets is written.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        self.check()?;
        let v2c = match &self.v2 {
            Some(h) => Some(v2::controllers(&h.dir)?),
            None => None,
        };

        // Route every requested controller first, so that a missing one is
        // reported before anything is written.
        let memory = match r.memory() {
            Some(m) if memory_requested(m) => {
                Some((m, self.route(&v2c, "memory", Some("memory"))?))
            }
            _ => None,
        };
        let cpu = match r.cpu() {
            Some(c) if cpu_requested(c) => Some((c, self.route(&v2c, "cpu", Some("cpu"))?)),
            _ => None,
        };
        let cpus = r
            .cpu()
            .as_ref()
            .and_then(|c| c.cpus().as_deref())
            .filter(|s| !s.is_empty());
        let mems = r
            .cpu()
            .as_ref()
            .and_then(|c| c.mems().as_deref())
            .filter(|s| !s.is_empty());
        let cpuset = if cpus.is_some() || mems.is_some() {
            Some(self.route(&v2c, "cpuset", Some("cpuset"))?)
        } else {
            None
        };
        let pids = match r.pids() {
            Some(p) => Some((p.limit(), self.route(&v2c, "pids", Some("pids"))?)),
            None => None,
        };
        let blkio = match r.block_io() {
            Some(b) if blkio_requested(b) => Some((b, self.route(&v2c, "blkio", Some("io"))?)),
            _ => None,
        };
        let hugetlb = match r.hugepage_limits() {
            Some(l) if !l.is_empty() => Some((l, self.route(&v2c, "hugetlb", Some("hugetlb"))?)),
            _ => None,
        };
        let (classid, prios) = match r.network() {
            Some(n) => (
                n.class_id(),
                n.priorities().as_ref().filter(|p| !p.is_empty()),
            ),
            None => (None, None),
        };
        let net_cls = match classid {
            Some(id) => Some((id, self.route(&v2c, "net_cls", None)?)),
            None => None,
        };
        let net_prio = match prios {
            Some(p) => Some((p, self.route(&v2c, "net_prio", None)?)),
            None => None,
        };
        let rdma = match r.rdma() {
            Some(m) if !m.is_empty() => Some((m, self.route(&v2c, "rdma", Some("rdma"))?)),
            _ => None,
        };
        let devices = match r.devices() {
            Some(d) if !d.is_empty() => match (self.v1_with("devices"), &self.v2) {
                (Some(h), _) => Some((d, Target::V1(&h.dir), Vec::new())),
                // cgroup2: an eBPF program, compiled now (a bad rule fails
                // before anything is written).
                (None, Some(h)) => Some((d, Target::V2(&h.dir), v1::device_rules_v2(d)?)),
                (None, None) => {
                    return Err(Error::ControllerMissing {
                        controller: "devices".into(),
                        reason: "no cgroup v1 hierarchy has it mounted".into(),
                    })
                }
            },
            _ => None,
        };
        let unified = match r.unified() {
            Some(u) if !u.is_empty() => match &self.v2 {
                Some(h) => Some((u, &h.dir)),
                None => {
                    return Err(Error::Unsupported(
                        "linux.resources.unified needs cgroup v2, which is not mounted".into(),
                    ))
                }
            },
            _ => None,
        };

        if let Some((m, t)) = memory {
            match t {
                Target::V1(d) => v1::set_memory(d, m)?,
                Target::V2(d) => v2::set_memory(d, m)?,
            }
        }
        if let Some((c, t)) = cpu {
            match t {
                Target::V1(d) => v1::set_cpu(d, c)?,
                Target::V2(d) => v2::set_cpu(d, c)?,
            }
        }
        if let Some(Target::V1(d) | Target::V2(d)) = cpuset {
            // Same file names on v1 and v2.
            if let Some(v) = cpus {
                write(&d.join("cpuset.cpus"), v)?;
            }
            if let Some(v) = mems {
                write(&d.join("cpuset.mems"), v)?;
            }
        }
        if let Some((limit, Target::V1(d) | Target::V2(d))) = pids {
            write(&d.join("pids.max"), &pids_max(limit))?;
        }
        if let Some((b, t)) = blkio {
            match t {
                Target::V1(d) => v1::set_blkio(d, b)?,
                Target::V2(d) => v2::set_io(d, b)?,
            }
        }
        if let Some((l, t)) = hugetlb {
            match t {
                Target::V1(d) => v1::set_hugetlb(d, l)?,
                Target::V2(d) => v2::set_hugetlb(d, l)?,
            }
        }
        if let Some((id, Target::V1(d) | Target::V2(d))) = net_cls {
            write(&d.join("net_cls.classid"), &id.to_string())?;
        }
        if let Some((p, Target::V1(d) | Target::V2(d))) = net_prio {
            for prio in p {
                write(
                    &d.join("net_prio.ifpriomap"),
                    &format!("{} {}", prio.name(), prio.priority()),
                )?;
            }
        }
        if let Some((m, Target::V1(d) | Target::V2(d))) = rdma {
            set_rdma(d, m)?;
        }
        match devices {
            Some((rules, Target::V1(d), _)) => v1::set_devices(d, rules)?,
            Some((_, Target::V2(d), program_rules)) => devices::attach(d, &program_rules)?,
            None => {}
        }
        if let Some((u, d)) = unified {
            v2::set_unified(d, u, v2c.as_ref())?;
        }
        Ok(())
    }

    /// Move process `pid` into the container's cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        self.check()?;
        let pid = pid.to_string();
        self.all()
            .try_for_each(|h| write(&h.dir.join("cgroup.procs"), &pid))
    }

    /// Each v1 hierarchy's `tasks` file, for the container process to join
    /// itself by writing "0" (see `launch::child`). Moving the writer's own
    /// single thread skips the kernel's threadgroup rwsem, whose write side
    /// waits an RCU grace period (5-20 ms here) on every `cgroup.procs`
    /// write; a `tasks` write of "0" takes tens of microseconds.
    pub fn v1_tasks(&self) -> Result<Vec<PathBuf>> {
        self.check()?;
        Ok(self.v1.iter().map(|h| h.dir.join("tasks")).collect())
    }

    /// The cgroup2 part alone (what clone3 joins, or must be joined late).
    pub fn v2_only(&self) -> Cgroup {
        Cgroup {
            v1: Vec::new(),
            v2: self.v2.clone(),
        }
    }

    /// The cgroup2 dir (for clone3 CLONE_INTO_CGROUP); None on pure v1.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|h| h.dir.as_path())
    }

    /// All pids in the container's cgroup and its sub-cgroups, sorted.
    /// A missing cgroup yields an empty list.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let h = ["pids", "freezer", "memory"]
            .iter()
            .find_map(|c| self.v1_with(c))
            .or(self.v2.as_ref())
            .or(self.v1.first());
        let mut out = Vec::new();
        if let Some(h) = h {
            collect_pids(&h.dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Pids found in any hierarchy (a crashed add_process may have moved a
    /// process into only some of them).
    fn all_pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for h in self.all() {
            collect_pids(&h.dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Where `controller`'s files are: its v1 hierarchy, else cgroup2
    /// (where they are missing when the controller is not enabled there).
    fn files_of(&self, controller: &str) -> Option<Target<'_>> {
        match (self.v1_with(controller), &self.v2) {
            (Some(h), _) => Some(Target::V1(&h.dir)),
            (None, Some(h)) => Some(Target::V2(&h.dir)),
            (None, None) => None,
        }
    }

    fn freezer(&self) -> Result<Target<'_>> {
        self.files_of("freezer")
            .ok_or_else(|| Error::ControllerMissing {
                controller: "freezer".into(),
                reason: "no cgroup v1 hierarchy has it mounted and cgroup v2 is not mounted".into(),
            })
    }

    /// Freeze all processes; waits (bounded) until the kernel reports frozen,
    /// else thaws again and fails.
    pub fn freeze(&self) -> Result<()> {
        self.check()?;
        match self.freezer()? {
            Target::V1(d) => v1::freeze(d),
            Target::V2(d) => v2::freeze(d),
        }
    }

    pub fn thaw(&self) -> Result<()> {
        self.check()?;
        match self.freezer()? {
            Target::V1(d) => v1::thaw(d),
            Target::V2(d) => v2::thaw(d),
        }
    }

    /// The memory limit in force: bytes, or -1 for none (v1's page-rounded
    /// i64::MAX, v2's "max").
    pub fn memory_limit(&self) -> Result<i64> {
        let file = match (self.v1_with("memory"), &self.v2) {
            (Some(h), _) => h.dir.join("memory.limit_in_bytes"),
            (None, Some(h)) => h.dir.join("memory.max"),
            (None, None) => {
                return Err(Error::ControllerMissing {
                    controller: "memory".into(),
                    reason: "no hierarchy has it".into(),
                })
            }
        };
        let text = read(&file)?;
        let v = text.trim();
        if v == "max" {
            return Ok(-1);
        }
        let n: i128 = v.parse().map_err(|_| Error::Parse {
            what: file.display().to_string(),
            detail: format!("not a number: {v:?}"),
        })?;
        // v1 shows "unlimited" as i64::MAX rounded down to a page.
        Ok(if n >= i128::from(i64::MAX - (1 << 16)) {
            -1
        } else {
            n as i64
        })
    }

    /// Frozen (not merely freezing)? A missing cgroup is not frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        self.check()?;
        match self.freezer()? {
            Target::V1(d) => v1::is_frozen(d),
            Target::V2(d) => v2::is_frozen(d),
        }
    }

    /// Kill what is left, then remove exactly the dirs this cgroup created.
    /// Idempotent.
    pub fn destroy(&self) -> Result<()> {
        self.check()?;
        // Usually the container's processes are gone and one rmdir per
        // hierarchy does it; what that leaves takes the full way below.
        if self.all().all(HierarchyDir::remove_if_empty) {
            return Ok(());
        }
        let deadline = Instant::now() + WAIT;
        let me = std::process::id() as i32;
        let mut first = true;
        loop {
            let pids: Vec<i32> = self.all_pids()?.into_iter().filter(|&p| p != me).collect();
            if pids.is_empty() {
                break;
            }
            if first {
                if let Some(h) = &self.v2 {
                    let kill = h.dir.join("cgroup.kill");
                    if kill.exists() {
                        // Best effort: the per-pid SIGKILL below does the
                        // same thing where cgroup.kill is refused.
                        let _ = write(&kill, "1");
                    }
                }
            }
            for &pid in &pids {
                let res = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                match res {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(err) => {
                        return Err(Error::Kill {
                            pid,
                            path: self
                                .v1
                                .first()
                                .or(self.v2.as_ref())
                                .map(|h| h.dir.clone())
                                .unwrap_or_default(),
                            err,
                        })
                    }
                }
            }
            if first {
                // SIGKILL is not delivered to frozen tasks: thaw.
                self.thaw_for_destroy()?;
                first = false;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("processes {pids:?} to exit after SIGKILL"),
                    path: self.all().next().map(|h| h.dir.clone()).unwrap_or_default(),
                });
            }
            sleep(POLL);
        }
        let deadline = Instant::now() + WAIT / 2;
        let mut first_err = None;
        for h in self.all() {
            if let Err(e) = h.remove(deadline) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn thaw_for_destroy(&self) -> Result<()> {
        if let Some(h) = self.v1_with("freezer") {
            if v1::freezer_state(&h.dir)?.is_some_and(|s| s != "THAWED") {
                write(&h.dir.join("freezer.state"), "THAWED")?;
            }
        }
        if let Some(h) = &self.v2 {
            let f = h.dir.join("cgroup.freeze");
            if read_opt(&f)?.is_some_and(|s| s.trim() == "1") {
                write(&f, "0")?;
            }
        }
        Ok(())
    }
}

fn memory_requested(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
}

fn cpu_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
}

fn blkio_requested(b: &oci_spec::runtime::LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

/// OCI pids limit -> pids.max value ("max" for <= 0).
fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// OCI `Some(0)` means "not set" for the numeric limits runc treats that way.
fn nonzero<T: PartialEq + Default>(v: Option<T>) -> Option<T> {
    v.filter(|x| *x != T::default())
}

/// A hugepage size such as "2MB" / "1GB" / "64KB" (also a file name part).
fn check_page_size(size: &str) -> Result<()> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !matches!(unit, "KB" | "MB" | "GB" | "TB")
    {
        return Err(Error::InvalidValue {
            field: "linux.resources.hugepageLimits.pageSize".into(),
            value: format!("{size:?}"),
            reason: "expected <number><KB|MB|GB>, e.g. \"2MB\"".into(),
        });
    }
    Ok(())
}

/// rdma.max lines: "<device> hca_handle=N hca_object=M" (same on v1 and v2).
fn rdma_lines(m: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>) -> Vec<String> {
    let mut devs: Vec<_> = m.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    devs.into_iter()
        .filter_map(|(dev, l)| {
            let mut s = dev.clone();
            if let Some(h) = l.hca_handles() {
                s.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                s.push_str(&format!(" hca_object={o}"));
            }
            (s.len() > dev.len()).then_some(s)
        })
        .collect()
}

fn set_rdma(
    dir: &Path,
    m: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<()> {
    for line in rdma_lines(m) {
        write(&dir.join("rdma.max"), &line)?;
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_opt(&procs)? else {
        return Ok(());
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push(line.parse().map_err(|_| Error::Parse {
            what: procs.display().to_string(),
            detail: format!("not a pid: {line:?}"),
        })?);
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_gone(&e) => return Ok(()),
        Err(err) => {
            return Err(Error::Io {
                op: "list cgroup directory",
                path: dir.to_path_buf(),
                err,
            })
        }
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&e.path(), out)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// File helpers
// ---------------------------------------------------------------------------

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}

fn read(path: &Path) -> Result<String> {
    at::read_to_string(path).map_err(|err| Error::Io {
        op: "read",
        path: path.to_path_buf(),
        err,
    })
}

/// Like `read`, but a missing file (or removed cgroup) is `None`.
fn read_opt(path: &Path) -> Result<Option<String>> {
    match at::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(err) => Err(Error::Io {
            op: "read",
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// Write one value to an existing cgroup file, in a single write.
fn write(path: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    at::open(path, libc::O_WRONLY)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|err| write_error(path, value, err))
}

/// A `linux.resources` value the kernel would refuse (or misread).
fn invalid(field: &str, value: impl ToString, reason: &str) -> Error {
    Error::InvalidValue {
        field: format!("linux.resources.{field}"),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn write_error(path: &Path, value: &str, err: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        err,
    }
}

#[cfg(test)]
mod tests;
