//! The host side of a bench: where our cgroups are, the private mount
//! namespace crun runs in, what the machine is, and the clean-up.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One mounted cgroup hierarchy and our place in it.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    /// e.g. /sys/fs/cgroup/memory
    pub mount: PathBuf,
    /// cgroup2?
    pub v2: bool,
    /// Our own cgroup, relative to the hierarchy's root ("" for the root).
    pub own: String,
}

impl Hierarchy {
    pub fn own_dir(&self) -> PathBuf {
        join_rel(&self.mount, &self.own)
    }
}

fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// The cgroup hierarchies this process is in: the mounts from the cgroups
/// layer's reading of /proc/self/mountinfo, our place in each from
/// /proc/self/cgroup.
pub fn hierarchies() -> Vec<Hierarchy> {
    use crate::cgroups::{layout, Layout};
    let (v1, v2) = match layout() {
        Ok(Layout::V1 { hierarchies }) => (hierarchies, None),
        Ok(Layout::V2 { unified }) => (Vec::new(), Some(unified)),
        Ok(Layout::Hybrid {
            hierarchies,
            unified,
        }) => (hierarchies, Some(unified)),
        Err(_) => return Vec::new(),
    };
    let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for line in cg.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let found = if ctrls.is_empty() {
            v2.as_ref().map(|m| (&m.mount_point, &m.root, true))
        } else {
            v1.iter()
                .find(|m| {
                    ctrls
                        .split(',')
                        .all(|c| m.controllers.iter().any(|x| x == c))
                })
                .map(|m| (&m.mount_point, &m.root, false))
        };
        if let Some((mp, root, v2)) = found {
            let own = path
                .strip_prefix(root.as_str())
                .unwrap_or(path)
                .trim_matches('/')
                .to_string();
            out.push(Hierarchy {
                mount: mp.clone(),
                v2,
                own,
            });
        }
    }
    out
}

/// Where the bench's containers put their cgroups, and what to clean.
pub struct CgroupPlan {
    pub hierarchies: Vec<Hierarchy>,
    /// Relative parent, e.g. `mica-bench-1234` (beneath our own cgroup in
    /// every hierarchy for runtimes that read relative paths that way).
    pub rel_parent: String,
    /// Absolute parent beneath our deepest own cgroup, e.g.
    /// `/process_api/abc/mica-bench-1234`, for runtimes that read relative
    /// paths as relative to the hierarchy's root (crun).
    pub abs_parent: String,
    /// Dirs we created (to remove at the end, deepest first).
    created: Vec<PathBuf>,
}

impl Default for CgroupPlan {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupPlan {
    pub fn new() -> CgroupPlan {
        let hierarchies = hierarchies();
        let rel_parent = format!("mica-bench-{}", std::process::id());
        let deepest = hierarchies
            .iter()
            .filter(|h| !h.v2 || hierarchies.iter().all(|o| o.v2))
            .map(|h| h.own.clone())
            .max_by_key(|o| o.len())
            .unwrap_or_default();
        let abs_parent = if deepest.is_empty() {
            format!("/{rel_parent}")
        } else {
            format!("/{deepest}/{rel_parent}")
        };
        CgroupPlan {
            hierarchies,
            rel_parent,
            abs_parent,
            created: Vec::new(),
        }
    }

    /// Make the parents ourselves, so no runtime removes one while another
    /// container is being created beneath it.
    /// `absolute`: also the absolute parent (for crun, youki).
    pub fn prepare(&mut self, absolute: bool) {
        let mut dirs = Vec::new();
        for h in &self.hierarchies {
            dirs.push(join_rel(&h.own_dir(), &self.rel_parent));
            if absolute {
                dirs.push(join_rel(&h.mount, &self.abs_parent));
            }
        }
        for d in dirs {
            self.mkdir_p(&d);
        }
    }

    fn mkdir_p(&mut self, d: &Path) {
        let mut missing = Vec::new();
        let mut p = d.to_path_buf();
        while !p.exists() {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        for m in missing.into_iter().rev() {
            if std::fs::create_dir(&m).is_ok() {
                // v1 cpuset: a new cgroup starts with no cpus and mems, and
                // nothing can join it (or a child of it) until they are set.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let (Some(parent), true) = (m.parent(), m.join(f).exists()) {
                        if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                            let _ = std::fs::write(m.join(f), v.trim());
                        }
                    }
                }
                self.created.push(m);
            }
        }
    }

    /// The cgroupsPath for container `id`.
    pub fn path(&self, id: &str, absolute: bool) -> String {
        if absolute {
            format!("{}/{id}", self.abs_parent)
        } else {
            format!("{}/{id}", self.rel_parent)
        }
    }

    /// Remove everything beneath our parents and the dirs we made; returns a
    /// note per unexpected find (a runtime that left a cgroup, or put one at
    /// a hierarchy's root).
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut left = 0usize;
        let mut stray = Vec::new();
        for h in &self.hierarchies {
            let mine = [
                join_rel(&h.own_dir(), &self.rel_parent),
                join_rel(&h.mount, &self.abs_parent),
            ];
            for d in &mine {
                left += remove_children(d);
            }
            // A runtime that put a relative path at the hierarchy's root.
            let at_root = join_rel(&h.mount, &self.rel_parent);
            if !mine.contains(&at_root) && at_root.exists() {
                stray.push(at_root.display().to_string());
                remove_children(&at_root);
                let _ = std::fs::remove_dir(&at_root);
            }
        }
        self.created
            .sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in self.created.drain(..) {
            if let Err(e) = std::fs::remove_dir(&d) {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    notes.push(format!("could not remove cgroup {}: {e}", d.display()));
                }
            }
        }
        if left > 0 {
            notes.push(format!(
                "{left} container cgroup(s) were left behind by the runtimes and removed"
            ));
        }
        if !stray.is_empty() {
            notes.push(format!(
                "cgroups found at a hierarchy's root (outside our own cgroup), removed: {}",
                stray.join(", ")
            ));
        }
        notes
    }
}

/// rmdir every cgroup below `dir` (deepest first); how many there were.
fn remove_children(dir: &Path) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            n += 1 + remove_children(&e.path());
            // A cgroup with processes left: kill them first (v1 and v2).
            if std::fs::remove_dir(e.path()).is_err() {
                kill_cgroup(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
    n
}

fn kill_cgroup(dir: &Path) {
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Is this a hybrid host (cgroup2 mounted beside v1 hierarchies)? crun 1.8
/// refuses that layout.
pub fn hybrid(h: &[Hierarchy]) -> bool {
    h.iter().any(|x| x.v2) && h.iter().any(|x| !x.v2)
}

/// A process holding a private mount namespace whose /sys/fs/cgroup is a
/// fresh tmpfs with only the v1 hierarchies bind-mounted back: crun sees a
/// v1 host. Set up once per bench; the host's mounts are untouched.
pub struct V1Namespace {
    child: Child,
    ns: File,
}

const V1_SCRIPT: &str = r#"set -e
T="$1"
mount -t tmpfs -o mode=755,size=64k mica-bench-cgroup "$T"
for d in /sys/fs/cgroup/*; do
    n=${d##*/}
    if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$T/$n"; continue; fi
    if [ "$(stat -f -c %T "$d")" = cgroupfs ]; then mkdir "$T/$n"; mount --bind "$d" "$T/$n"; fi
done
mount --move "$T" /sys/fs/cgroup
echo ready
exec sleep 2147483647
"#;

impl V1Namespace {
    pub fn new(work: &Path) -> Result<V1Namespace, String> {
        let stage = work.join("cgroup-v1-stage");
        std::fs::create_dir_all(&stage).map_err(|e| format!("mkdir {}: {e}", stage.display()))?;
        let unshare = super::proc::which("unshare").ok_or("unshare not found (util-linux)")?;
        let mut cmd = Command::new(unshare);
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            V1_SCRIPT,
            "sh",
        ])
        .arg(&stage)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("unshare: {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("no stdout")?;
        let _ = BufReader::new(out).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "setting up the v1-only cgroup namespace failed: {}",
                err.trim()
            ));
        }
        let ns = File::open(format!("/proc/{}/ns/mnt", child.id()))
            .map_err(|e| format!("open mnt ns: {e}"))?;
        Ok(V1Namespace { child, ns })
    }

    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.ns.as_raw_fd()
    }
}

impl Drop for V1Namespace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The machine, for the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub os: String,
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub memory_mib: u64,
    /// v1, v2 or hybrid
    pub cgroups: String,
}

pub fn machine() -> Machine {
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    let kernel = if unsafe { libc::uname(&mut u) } == 0 {
        let s = |a: &[libc::c_char]| {
            unsafe { std::ffi::CStr::from_ptr(a.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
    } else {
        String::new()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_mib = meminfo("MemTotal").unwrap_or(0) / 1024;
    let h = hierarchies();
    let cgroups = if hybrid(&h) {
        "hybrid (v1 + cgroup2)"
    } else if h.iter().all(|x| x.v2) {
        "v2"
    } else {
        "v1"
    }
    .to_string();
    Machine {
        os,
        kernel,
        cpu,
        cpus,
        memory_mib,
        cgroups,
    }
}

/// A /proc/meminfo field in KiB.
pub fn meminfo(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key)
            .then(|| v.split_whitespace().next()?.parse().ok())
            .flatten()
    })
}

/// Current time as RFC 3339 UTC (seconds).
pub fn now_utc() -> String {
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::gmtime_r(&t, &mut tm) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
