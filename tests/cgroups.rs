//! The cgroups layer from outside, on whatever layout the host has: pure v1,
//! pure v2 (run inside a microVM by `make test-cgroup2`, see vm/README.md)
//! or hybrid (v1 controllers plus cgroup2, as on the development machine).
//!
//! Every test starts real containers with mica and checks, byte for byte,
//! the cgroup files on the host and what the probe sees inside. The layout is
//! read from /proc/self/mountinfo and /proc/self/cgroup, and the expected
//! directory of the container is computed from mica's documented rule:
//! a relative `cgroupsPath` goes below the caller's own cgroup in each v1
//! hierarchy and below the parent of the caller's own cgroup on cgroup2 (as
//! runc: the caller's own cgroup holds processes, so it cannot delegate
//! controllers); an absolute one is relative to each hierarchy's root.
//! Absolute paths used here are built from the caller's own cgroup. So
//! everything is created below our own cgroup, except on cgroup2 where mica
//! itself puts relative paths next to it (below its parent: the root cgroup
//! on the hybrid development machine, `/mica-vm` in the VM).
//!
//! Runs as root. `MICA_FIXTURES` names built fixtures (`make fixtures`);
//! without it they are built first.

mod common;

use common::{unique, Env};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Generous: under TCG (the VM test) everything is ~20x slower.
const PATIENCE: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ layout

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V1,
    V2,
    Hybrid,
}

/// A mounted v1 hierarchy and this process's cgroup in it.
#[derive(Debug, Clone)]
struct V1 {
    mount: PathBuf,
    /// e.g. ["cpu"], ["cpu", "cpuacct"], ["name=systemd"]
    controllers: Vec<String>,
    /// own cgroup, relative to the mount's root, without leading '/'
    own: String,
}

#[derive(Debug, Clone)]
struct V2 {
    mount: PathBuf,
    own: String,
}

#[derive(Debug, Clone)]
struct Host {
    kind: Kind,
    v1: Vec<V1>,
    v2: Option<V2>,
}

/// Mount options of cgroup v1 mounts that are not controllers.
fn v1_flag(o: &str) -> bool {
    matches!(
        o,
        "rw" | "ro"
            | "none"
            | "noprefix"
            | "xattr"
            | "clone_children"
            | "cpuset_v2_mode"
            | "favordynmods"
            | "nofavordynmods"
    ) || (o.contains('=') && !o.starts_with("name="))
}

/// `own` (a /proc/self/cgroup path) relative to the mount's `root`.
fn below_root(own: &str, root: &str) -> String {
    let own = own.trim_matches('/');
    let root = root.trim_matches('/');
    if root.is_empty() {
        own.to_string()
    } else if own == root {
        String::new()
    } else {
        own.strip_prefix(&format!("{root}/"))
            .unwrap_or(own)
            .to_string()
    }
}

fn host() -> Host {
    let mountinfo = read("/proc/self/mountinfo");
    let proc_cgroup = read("/proc/self/cgroup");
    let own_of = |want: &BTreeSet<&str>| -> Option<String> {
        proc_cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let have: BTreeSet<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
            (have == *want).then(|| path.to_string())
        })
    };
    let mut v1: Vec<V1> = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (root, mount) = (pre[3], PathBuf::from(pre[4]));
        match post[0] {
            "cgroup" => {
                let mut controllers: Vec<String> = post[2]
                    .split(',')
                    .filter(|o| !o.is_empty() && !v1_flag(o))
                    .map(String::from)
                    .collect();
                controllers.sort();
                if controllers.is_empty() || v1.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
                let want: BTreeSet<&str> = controllers.iter().map(String::as_str).collect();
                let own = own_of(&want)
                    .unwrap_or_else(|| panic!("no /proc/self/cgroup line for {controllers:?}"));
                v1.push(V1 {
                    mount,
                    own: below_root(&own, root),
                    controllers,
                });
            }
            "cgroup2" if v2.is_none() => {
                let own = own_of(&BTreeSet::new()).expect("no 0:: line in /proc/self/cgroup");
                v2 = Some(V2 {
                    mount,
                    own: below_root(&own, root),
                });
            }
            _ => {}
        }
    }
    let kind = match (v1.is_empty(), v2.is_some()) {
        (true, true) => Kind::V2,
        (false, false) => Kind::V1,
        (false, true) => Kind::Hybrid,
        (true, false) => panic!("no cgroup filesystem is mounted"),
    };
    Host { kind, v1, v2 }
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(a, _)| a)
}

impl V2 {
    /// Where mica puts relative cgroupsPaths: the parent of our own cgroup.
    fn base(&self) -> PathBuf {
        self.mount.join(parent(&self.own))
    }
}

/// Which files a controller has for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    V1(PathBuf),
    V2(PathBuf),
}

impl Host {
    fn v1_with(&self, controller: &str) -> Option<&V1> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The container's directory for relative cgroupsPath `rel` in every
    /// hierarchy (v1 ones first, then cgroup2).
    fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .v1
            .iter()
            .map(|h| h.mount.join(&h.own).join(rel))
            .collect();
        v.extend(self.v2.iter().map(|h| h.base().join(rel)));
        v
    }

    /// The same for an absolute cgroupsPath.
    fn abs_dirs(&self, abs: &str) -> Vec<PathBuf> {
        let rel = abs.trim_start_matches('/');
        let mut v: Vec<PathBuf> = self.v1.iter().map(|h| h.mount.join(rel)).collect();
        v.extend(self.v2.iter().map(|h| h.mount.join(rel)));
        v
    }

    /// Where the files of `v1_name` (v1) / `v2_name` (cgroup2) are for
    /// relative cgroupsPath `rel`: the v1 hierarchy that has the controller,
    /// else cgroup2 if the controller can be enabled there. None: neither.
    fn controller(&self, v1_name: &str, v2_name: &str, rel: &str) -> Option<At> {
        if let Some(h) = self.v1_with(v1_name) {
            return Some(At::V1(h.mount.join(&h.own).join(rel)));
        }
        let h = self.v2.as_ref()?;
        // mica enables it from the mount root down to the container.
        let avail = read(h.mount.join("cgroup.controllers"));
        avail
            .split_whitespace()
            .any(|c| c == v2_name)
            .then(|| At::V2(h.base().join(rel)))
    }

    /// Like `controller`, but the test cannot go on without it.
    fn need(&self, v1_name: &str, v2_name: &str, rel: &str) -> At {
        self.controller(v1_name, v2_name, rel).unwrap_or_else(|| {
            panic!("no {v1_name} controller on this host (v1 or cgroup2): {self:?}")
        })
    }
}

// ------------------------------------------------------------------ files

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn write(p: impl AsRef<Path>, s: &str) {
    let p = p.as_ref();
    std::fs::write(p, s).unwrap_or_else(|e| panic!("write {s:?} to {}: {e}", p.display()))
}

/// Content of a one-value cgroup file, without the newline.
fn value(p: impl AsRef<Path>) -> String {
    read(p).trim_end_matches('\n').to_string()
}

fn pids_in(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = read(dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.trim().parse().expect("pid in cgroup.procs"))
        .collect();
    v.sort_unstable();
    v
}

fn assert_exist(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(d.is_dir(), "cgroup {} does not exist", d.display());
    }
}

fn assert_gone(dirs: &[PathBuf]) {
    for d in dirs {
        assert!(!d.exists(), "cgroup {} is still there", d.display());
    }
}

// ------------------------------------------------------------------ containers

/// The fixtures: `MICA_FIXTURES` as built (the VM has no cargo), else built now.
fn fixtures() -> PathBuf {
    match std::env::var_os("MICA_FIXTURES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => common::fixtures(),
    }
}

/// A bundle from `mica spec` for the given rootfs fixture and args.
fn bundle(env: &Env, rootfs: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = env.tmp.path().join(unique("bundle"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.mica(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "mica spec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg_path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&read(&cfg_path)).unwrap();
    cfg["root"]["path"] = json!(fixtures().join(rootfs));
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(args);
    edit(&mut cfg);
    write(&cfg_path, &serde_json::to_string_pretty(&cfg).unwrap());
    dir
}

fn set_path(cfg: &mut Value, path: &str) {
    cfg["linux"]["cgroupsPath"] = json!(path);
}

fn drop_cgroupns(cfg: &mut Value) {
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
}

/// `mica create` with stdout/stderr in files (the container inherits them,
/// so pipes would never reach EOF). Returns (success, stderr).
fn create(env: &Env, bundle: &Path, id: &str, out: &Path) -> (bool, String) {
    let err = out.with_extension("err");
    let st = env
        .cmd()
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(File::create(out).unwrap())
        .stderr(File::create(&err).unwrap())
        .status()
        .expect("run mica create");
    (st.success(), read(&err))
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.mica(args);
    assert!(
        out.status.success(),
        "mica {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A started container whose init is the probe, sleeping after it printed.
struct Ctr<'a> {
    env: &'a Env,
    id: String,
    out: PathBuf,
}

impl<'a> Ctr<'a> {
    /// create + start the probe (`--sleep inf` plus `args`) in the rootfs
    /// fixture `rootfs`, with cgroupsPath `path`, then `edit`.
    fn start(
        env: &'a Env,
        rootfs: &str,
        path: &str,
        args: &[&str],
        edit: impl FnOnce(&mut Value),
    ) -> Ctr<'a> {
        let mut argv = vec!["/usr/bin/mica-probe", "--sleep", "inf"];
        argv.extend_from_slice(args);
        let b = bundle(env, rootfs, &argv, |c| {
            set_path(c, path);
            edit(c);
        });
        let id = env.id("cg");
        let out = env.tmp.path().join(format!("{id}.out"));
        let (created, err) = create(env, &b, &id, &out);
        assert!(created, "mica create {id}: {err}");
        ok(env, &["start", &id]);
        Ctr { env, id, out }
    }

    /// The probe's JSON (waits until it has been printed).
    fn probe(&self) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = std::fs::read_to_string(&self.out).unwrap_or_default();
            if s.contains('{') && s.ends_with('\n') {
                return common::parse_probe(&s);
            }
            assert!(
                Instant::now() < deadline,
                "the probe printed nothing: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn state(&self) -> Value {
        self.env.state(&self.id)
    }

    fn pid(&self) -> i32 {
        let p = self.state()["pid"].as_i64().expect("state has a pid");
        i32::try_from(p).unwrap()
    }

    fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    fn delete(&self) {
        ok(self.env, &["delete", "--force", &self.id]);
    }
}

fn probe_lines(j: &Value) -> Vec<String> {
    j["cgroup"]["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no cgroup lines: {j}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The path of the line for controllers `ctrls` ("" = cgroup2) in
/// /proc/<pid>/cgroup text.
fn line_path(lines: &[String], ctrls: &[String]) -> String {
    let want: BTreeSet<&str> = ctrls.iter().map(String::as_str).collect();
    lines
        .iter()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            let have: BTreeSet<&str> = c.split(',').filter(|c| !c.is_empty()).collect();
            (have == want).then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("no line for {ctrls:?} in {lines:?}"))
}

fn slash(rel: &str) -> String {
    format!("/{}", rel.trim_matches('/'))
}

// ------------------------------------------------------------------ lifecycle

#[test]
fn create_start_delete_creates_and_removes_the_cgroup() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-life");
    let dirs = h.dirs(&name);
    assert_gone(&dirs);
    let c = Ctr::start(&env, "probe-only", &name, &[], |_| {});
    c.probe();
    assert_eq!(c.status(), "running");
    assert_exist(&dirs);
    // The init alone is in its cgroup, in every hierarchy.
    let pid = c.pid();
    for d in &dirs {
        assert_eq!(pids_in(d), vec![pid], "{}", d.display());
    }
    // Stop it, then a plain delete (no --force) removes the cgroup.
    ok(&env, &["kill", &c.id, "KILL"]);
    let deadline = Instant::now() + PATIENCE;
    while c.status() != "stopped" {
        assert!(Instant::now() < deadline, "container did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&env, &["delete", &c.id]);
    assert_gone(&dirs);
    assert!(!env.root.join(&c.id).exists(), "state dir left behind");
}

// ------------------------------------------------------------------ resources

#[test]
fn memory_limit() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-mem");
    let at = h.need("memory", "memory", &name);
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    });
    let j = c.probe();
    match &at {
        At::V2(d) => {
            assert_eq!(value(d.join("memory.max")), "67108864");
            assert_eq!(
                j["cgroup"]["files"]["memory"], "/sys/fs/cgroup/memory.max",
                "{j}"
            );
        }
        At::V1(d) => {
            assert_eq!(value(d.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(
                j["cgroup"]["files"]["memory"], "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "{j}"
            );
        }
    }
    assert_eq!(j["cgroup"]["limits"]["memory"], 67108864, "{}", j["cgroup"]);
    c.delete();
    assert_gone(&h.dirs(&name));
}

/// A fresh tmpfs over /sys/fs/cgroup with the hierarchies bound back into
/// it, in a private mount namespace (what `mica bench` gives crun): the old
/// mounts are still listed in mountinfo but cannot be reached. mica must
/// use the ones it can reach. On the hybrid host cgroup2 is left out, so a
/// mica that took the covered mounts for real fails to make its cgroup2 dir.
#[test]
fn covered_cgroup_mounts_are_skipped() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-cover");
    let limit = 67108864;
    let b = bundle(
        &env,
        "busybox",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
        ],
        |cfg| {
            set_path(cfg, &name);
            cfg["linux"]["resources"]["memory"] = json!({ "limit": limit });
        },
    );
    let mut binds: Vec<(PathBuf, String)> =
        h.v1.iter()
            .map(|x| {
                let n = x.mount.file_name().unwrap().to_string_lossy().into_owned();
                (x.mount.clone(), n)
            })
            .collect();
    if let (Kind::V2, Some(v2)) = (h.kind, &h.v2) {
        binds.push((v2.mount.clone(), "unified".into()));
    }
    let mut script =
        String::from("set -e\nS=\"$1\"; shift\nmount -t tmpfs -o mode=755 mica-test \"$S\"\n");
    for (src, n) in &binds {
        script += &format!(
            "mkdir \"$S/{n}\"; mount --bind '{}' \"$S/{n}\"\n",
            src.display()
        );
    }
    script += "mount --move \"$S\" /sys/fs/cgroup\nexec \"$@\"\n";
    let stage = env.tmp.path().join("stage");
    std::fs::create_dir(&stage).unwrap();
    let id = env.id("cover");
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&stage)
        .arg(common::mica_bin())
        .arg("--root")
        .arg(&env.root)
        .args(["run", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "mica run under covered cgroup mounts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        limit.to_string()
    );
    assert_gone(&h.dirs(&name));
}

#[test]
fn memory_swap_is_translated() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-swap");
    let at = h.need("memory", "memory", &name);
    if let At::V1(d) = &at {
        let base = d.parent().unwrap();
        if !base.join("memory.memsw.limit_in_bytes").exists() {
            println!("NOTE: skipped: no swap accounting (memory.memsw.*) on this kernel");
            return;
        }
    }
    // OCI swap is memory+swap: 96 MiB of it with 64 MiB of memory.
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 67108864, "swap": 100663296});
    });
    c.probe();
    match &at {
        At::V2(d) => {
            assert_eq!(value(d.join("memory.max")), "67108864");
            assert_eq!(
                value(d.join("memory.swap.max")),
                (100663296 - 67108864).to_string()
            );
            assert_eq!(value(d.join("memory.swap.max")), "33554432");
        }
        At::V1(d) => {
            assert_eq!(value(d.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(value(d.join("memory.memsw.limit_in_bytes")), "100663296");
        }
    }
    c.delete();
}

#[test]
fn pids_limit() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-pids");
    let at = h.need("pids", "pids", &name);
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 42});
    });
    let j = c.probe();
    let (At::V1(d) | At::V2(d)) = &at;
    assert_eq!(value(d.join("pids.max")), "42");
    assert_eq!(j["cgroup"]["limits"]["pids"], 42, "{}", j["cgroup"]);
    c.delete();
}

/// `update` (runc's): new limits for a running container, from flags or
/// from linux.resources JSON on stdin; refused once it is stopped.
#[test]
fn update_changes_the_limits() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-update");
    let mem = h.need("memory", "memory", &name);
    let pids = h.need("pids", "pids", &name);
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 42}});
    });
    c.probe();
    let mem_file = match &mem {
        At::V2(d) => d.join("memory.max"),
        At::V1(d) => d.join("memory.limit_in_bytes"),
    };
    let (At::V1(pids_dir) | At::V2(pids_dir)) = &pids;
    ok(&env, &["update", "--memory", "128m", &c.id]);
    assert_eq!(value(&mem_file), "134217728");
    assert_eq!(
        value(pids_dir.join("pids.max")),
        "42",
        "a flag not given changed"
    );

    let devices_before = match h.controller("devices", "devices", &name) {
        Some(At::V1(d)) => Some((d.join("devices.list"), read(d.join("devices.list")))),
        _ => None,
    };
    let mut child = env
        .cmd()
        .args(["update", "-r", "-", &c.id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        // What containerd sends: the whole resources, device rules too,
        // which runc's update (and mica's) leaves alone.
        .write_all(br#"{"pids": {"limit": 20}, "devices": [{"allow": false, "access": "rwm"}]}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "update -r -: {out:?}");
    assert_eq!(value(pids_dir.join("pids.max")), "20");
    assert_eq!(value(&mem_file), "134217728");
    if let Some((list, before)) = devices_before {
        assert_eq!(read(list), before, "update rewrote the device rules");
    }
    // A pids limit of 0 leaves the limit as it is (runc's).
    ok(&env, &["update", "--pids-limit", "0", &c.id]);
    assert_eq!(value(pids_dir.join("pids.max")), "20");
    // A swap limit alone pairs with the memory limit in force (128 MiB).
    let swap_file = match &mem {
        At::V2(d) => d.join("memory.swap.max"),
        At::V1(d) => d.join("memory.memsw.limit_in_bytes"),
    };
    if swap_file.exists() {
        ok(&env, &["update", "--memory-swap", "256m", &c.id]);
        let want = match &mem {
            At::V2(_) => (128u64 << 20).to_string(), // swap beyond memory
            At::V1(_) => (256u64 << 20).to_string(), // memory + swap
        };
        assert_eq!(value(&swap_file), want);
        assert_eq!(value(&mem_file), "134217728");
    } else {
        println!("NOTE: no swap accounting here: --memory-swap alone not checked");
    }

    let out = env.mica(&["update", "--memory", "lots", &c.id]);
    assert!(!out.status.success(), "a bad size was taken: {out:?}");
    assert_eq!(value(&mem_file), "134217728");

    ok(&env, &["kill", &c.id, "KILL"]);
    let deadline = Instant::now() + PATIENCE;
    while c.status() != "stopped" {
        assert!(Instant::now() < deadline, "not stopped: {}", c.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = env.mica(&["update", "--pids-limit", "10", &c.id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("stopped"),
        "update of a stopped container: {out:?}"
    );
    c.delete();
    assert_gone(&h.dirs(&name));
}

#[test]
fn cpu_quota_and_period() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-cpumax");
    let at = h.need("cpu", "cpu", &name);
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    });
    let j = c.probe();
    match &at {
        At::V2(d) => assert_eq!(value(d.join("cpu.max")), "50000 100000"),
        At::V1(d) => {
            assert_eq!(value(d.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(value(d.join("cpu.cfs_period_us")), "100000");
        }
    }
    assert_eq!(j["cgroup"]["limits"]["cpu_quota"], 50000, "{}", j["cgroup"]);
    assert_eq!(
        j["cgroup"]["limits"]["cpu_period"], 100000,
        "{}",
        j["cgroup"]
    );
    c.delete();
}

#[test]
fn cpu_shares_become_weight() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-shares");
    let at = h.need("cpu", "cpu", &name);
    let shares: u64 = 512;
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"shares": shares});
    });
    c.probe();
    match &at {
        At::V2(d) => {
            let weight = 1 + ((shares - 2) * 9999) / 262142;
            assert_eq!(weight, 20);
            assert_eq!(value(d.join("cpu.weight")), weight.to_string());
        }
        At::V1(d) => assert_eq!(value(d.join("cpu.shares")), "512"),
    }
    c.delete();
}

#[test]
fn cpuset_cpus() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-cpuset");
    let at = h.need("cpuset", "cpuset", &name);
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    });
    c.probe();
    let (At::V1(d) | At::V2(d)) = &at;
    assert_eq!(value(d.join("cpuset.cpus")), "0");
    if let At::V2(d) = &at {
        assert_eq!(value(d.join("cpuset.cpus.effective")), "0");
    }
    c.delete();
}

#[test]
fn blkio_weight() {
    let h = host();
    let env = Env::new();
    let at = h.need("blkio", "io", "x");
    // Which weight file a fresh cgroup has depends on the kernel (iocost,
    // BFQ, CFQ): look at one first.
    let probe_name = unique("mica-cg-io0");
    let c = Ctr::start(&env, "probe-only", &probe_name, &[], |_| {});
    let dir = match h.need("blkio", "io", &probe_name) {
        At::V1(d) | At::V2(d) => d,
    };
    let bfq = |f: &str| dir.join(f).exists();
    let (file, want) = match &at {
        // mica (as runc): BFQ takes the blkio value as is, else io.weight
        // the converted one (10..1000 -> 1..10000).
        At::V2(_) if bfq("io.bfq.weight") => ("io.bfq.weight", "default 500"),
        At::V2(_) if bfq("io.weight") => ("io.weight", "default 4950"),
        At::V1(_) if bfq("blkio.weight") => ("blkio.weight", "500"),
        At::V1(_) if bfq("blkio.bfq.weight") => ("blkio.bfq.weight", "500"),
        _ => ("", ""),
    };
    c.delete();
    println!("blkio weight: {file} (expect {want:?})");
    if file.is_empty() {
        println!("NOTE: skipped: this kernel has no io.weight / io.bfq.weight / blkio.weight file");
        return;
    }
    let name = unique("mica-cg-io");
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["blockIO"] = json!({"weight": 500});
    });
    c.probe();
    let (At::V1(d) | At::V2(d)) = h.need("blkio", "io", &name);
    let got = read(d.join(file));
    // io.weight / io.bfq.weight: "default N" first, then per-device lines.
    assert_eq!(got.lines().next().unwrap_or(""), want, "{file}: {got:?}");
    c.delete();
}

#[test]
fn hugetlb_2mb_limit() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-huge");
    let Some(at) = h.controller("hugetlb", "hugetlb", &name) else {
        println!("NOTE: skipped: no hugetlb controller on this host");
        return;
    };
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        println!("NOTE: skipped: no 2MB huge pages on this machine");
        return;
    }
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["hugepageLimits"] =
            json!([{"pageSize": "2MB", "limit": 4194304}]);
    });
    c.probe();
    match &at {
        At::V2(d) => {
            assert_eq!(value(d.join("hugetlb.2MB.max")), "4194304");
            let rsvd = d.join("hugetlb.2MB.rsvd.max");
            if rsvd.exists() {
                assert_eq!(value(rsvd), "4194304");
            }
        }
        At::V1(d) => {
            assert_eq!(value(d.join("hugetlb.2MB.limit_in_bytes")), "4194304");
        }
    }
    c.delete();
    assert_gone(&h.dirs(&name));
}

// ------------------------------------------------------------------ events

/// The container's CPU time so far in ns, from the file mica reads it from
/// (v1 cpuacct.usage, else cgroup2 cpu.stat's usage_usec).
fn cpu_usage_ns(h: &Host, name: &str) -> u64 {
    match h.v1_with("cpuacct") {
        Some(v) => value(v.mount.join(&v.own).join(name).join("cpuacct.usage"))
            .parse()
            .expect("cpuacct.usage"),
        None => {
            let stat = read(
                h.v2.as_ref()
                    .expect("cgroup2")
                    .base()
                    .join(name)
                    .join("cpu.stat"),
            );
            let usec: u64 = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .expect("usage_usec in cpu.stat")
                .parse()
                .unwrap();
            usec * 1000
        }
    }
}

/// The host's huge page sizes as the hugetlb files name them ("2MB").
fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(match kb {
                k if k >= 1 << 20 => format!("{}GB", k >> 20),
                k if k >= 1 << 10 => format!("{}MB", k >> 10),
                k => format!("{k}KB"),
            })
        })
        .collect()
}

/// `events --stats`: one runc stats event whose numbers are the cgroup's:
/// the configured memory and pids limits, the one process, CPU time in ns
/// between what the files showed before and after.
#[test]
fn events_stats_show_usage_and_limits() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-events");
    h.need("memory", "memory", &name);
    h.need("pids", "pids", &name);
    let c = Ctr::start(&env, "probe-only", &name, &[], |cfg| {
        cfg["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        cfg["linux"]["resources"]["pids"] = json!({"limit": 42});
    });
    c.probe();
    let before = cpu_usage_ns(&h, &name);
    let out = ok(&env, &["events", "--stats", &c.id]);
    let after = cpu_usage_ns(&h, &name);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one event, one line: {out:?}");
    let ev: Value = serde_json::from_str(lines[0]).expect("a JSON event");
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], json!(c.id), "{ev}");
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864, "{}", d["memory"]);
    let used = d["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(used > 0 && used <= 67108864, "{}", d["memory"]);
    assert!(
        d["memory"]["raw"]
            .as_object()
            .is_some_and(|r| !r.is_empty()),
        "no memory.stat in {}",
        d["memory"]
    );
    assert_eq!(d["pids"], json!({"current": 1, "limit": 42}), "{d}");
    let total = d["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    assert!(
        total > 0 && before <= total && total <= after,
        "cpu.usage.total {total} not in [{before}, {after}] ns: {}",
        d["cpu"]
    );
    // hugetlb: every page size whose files the container's cgroup has
    // (cgroup2 on the hybrid host, so its v2 reader runs here too).
    match h.controller("hugetlb", "hugetlb", &name) {
        Some(At::V1(dir) | At::V2(dir)) => {
            let sizes = hugepage_sizes();
            let mut seen = 0;
            for size in &sizes {
                let has = ["current", "usage_in_bytes"]
                    .iter()
                    .any(|f| dir.join(format!("hugetlb.{size}.{f}")).exists());
                if has {
                    seen += 1;
                    assert_eq!(d["hugetlb"][size]["failcnt"], 0, "{size}: {}", d["hugetlb"]);
                }
            }
            assert_eq!(
                d["hugetlb"].as_object().map(|m| m.len()),
                Some(seen),
                "{sizes:?}: {}",
                d["hugetlb"]
            );
        }
        None => println!("NOTE: no hugetlb controller: its stats not checked"),
    }
    // runc 1.1's shape: these are always there.
    assert_eq!(d["intel_rdt"], json!({}), "{d}");
    assert!(d["network_interfaces"].is_null(), "{d}");
    assert!(d["cpu"]["usage"]["kernel"].is_u64() && d["cpu"]["throttling"].is_object());
    c.delete();
    assert_gone(&h.dirs(&name));
}

/// A streaming `events` reports an OOM kill in the container as
/// `{"type":"oom","id":ID}`, and none before it.
#[test]
fn events_report_an_oom_kill() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-oom");
    let at = h.need("memory", "memory", &name);
    // No swap for the cgroup, so that the OOM killer has to act: no swap
    // on the host, or a memory+swap limit equal to the memory limit.
    let mut memory = json!({"limit": 33554432});
    if read("/proc/swaps").lines().count() > 1 {
        if let At::V1(d) = &at {
            if !d
                .parent()
                .unwrap()
                .join("memory.memsw.limit_in_bytes")
                .exists()
            {
                println!("NOTE: skipped: swap without swap accounting on this host");
                return;
            }
        }
        memory["swap"] = json!(33554432);
    }
    let c = Ctr::start(&env, "busybox", &name, &[], |cfg| {
        cfg["linux"]["resources"]["memory"] = memory;
    });
    c.probe();
    let out = env.tmp.path().join(format!("{}.events", c.id));
    let mut events = env
        .cmd()
        .args(["events", "--interval", "100ms", &c.id])
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mica events");
    let lines = |n: usize| -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            // Whole lines only: the last one may be half written.
            let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            let done: Vec<Value> = whole
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
                .collect();
            if done.len() >= n {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {n} events: {:?}",
                done.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = lines(1);
    assert!(first.iter().all(|e| e["type"] == "stats"), "{first:?}");
    // 64 MiB of buffer in a 32 MiB cgroup without swap: the OOM killer.
    let hog = env.mica(&[
        "exec",
        &c.id,
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(hog.status.code(), Some(137), "dd was not killed: {hog:?}");
    let deadline = Instant::now() + PATIENCE;
    let got = loop {
        let got = lines(1);
        if got.iter().any(|e| e["type"] == "oom") || Instant::now() >= deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let types: Vec<&str> = got
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect();
    let oom = types.iter().position(|t| *t == "oom");
    assert!(oom.is_some(), "no oom event: {types:?}");
    assert_eq!(got[oom.unwrap()], json!({"type": "oom", "id": c.id}));
    // The container goes on (only dd was killed); its end ends the stream.
    assert_eq!(c.status(), "running");
    ok(&env, &["kill", &c.id, "KILL"]);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(st) = events.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = events.kill();
            let _ = events.wait();
            panic!("events did not end with the container");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "events: {status:?}");
    c.delete();
    assert_gone(&h.dirs(&name));
}

// ------------------------------------------------------------------ freezer, ps

#[test]
fn pause_and_resume() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-freeze");
    let c = Ctr::start(&env, "probe-only", &name, &[], |_| {});
    c.probe();
    // v1 freezer.state if a v1 hierarchy has the freezer, else cgroup2's
    // cgroup.freeze (core, no controller to enable).
    let freezer = match (h.v1_with("freezer"), &h.v2) {
        (Some(v1), _) => At::V1(v1.mount.join(&v1.own).join(&name)),
        (None, Some(v2)) => At::V2(v2.base().join(&name)),
        (None, None) => panic!("no freezer on this host: {h:?}"),
    };
    ok(&env, &["pause", &c.id]);
    assert_eq!(c.status(), "paused");
    match &freezer {
        At::V2(d) => {
            assert_eq!(value(d.join("cgroup.freeze")), "1");
            assert!(read(d.join("cgroup.events"))
                .lines()
                .any(|l| l == "frozen 1"));
        }
        At::V1(d) => assert_eq!(value(d.join("freezer.state")), "FROZEN"),
    }
    ok(&env, &["resume", &c.id]);
    assert_eq!(c.status(), "running");
    match &freezer {
        At::V2(d) => {
            assert_eq!(value(d.join("cgroup.freeze")), "0");
            assert!(read(d.join("cgroup.events"))
                .lines()
                .any(|l| l == "frozen 0"));
        }
        At::V1(d) => assert_eq!(value(d.join("freezer.state")), "THAWED"),
    }
    // A paused container can be force-deleted (thawed, killed, removed).
    ok(&env, &["pause", &c.id]);
    c.delete();
    assert_gone(&h.dirs(&name));
}

#[test]
fn ps_lists_the_init() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-ps");
    let c = Ctr::start(&env, "probe-only", &name, &[], |_| {});
    c.probe();
    let pid = c.pid();
    let pids: Vec<i32> =
        serde_json::from_str(&ok(&env, &["ps", "--format", "json", &c.id])).unwrap();
    assert_eq!(pids, vec![pid]);
    // What ps reads: cgroup.procs of the container's cgroup.
    let (At::V1(d) | At::V2(d)) = h.need("pids", "pids", &name);
    assert_eq!(pids_in(&d), vec![pid]);
    c.delete();
    let out = env.mica(&["ps", "--format", "json", &c.id]);
    assert!(!out.status.success(), "ps of a deleted container succeeded");
}

// ------------------------------------------------------------------ cgroupsPath

#[test]
fn relative_cgroups_path_nested() {
    let h = host();
    let env = Env::new();
    let top = unique("mica-cg-rel");
    let rel = format!("{top}/inner");
    let c = Ctr::start(&env, "busybox", &rel, &[], |cfg| {
        drop_cgroupns(cfg);
        cfg["linux"]["resources"]["pids"] = json!({"limit": 7});
    });
    let j = c.probe();
    let dirs = h.dirs(&rel);
    assert_exist(&dirs);
    let pid = c.pid();
    for d in &dirs {
        assert_eq!(pids_in(d), vec![pid], "{}", d.display());
    }
    // The state names, in every hierarchy, the topmost directory mica made
    // (what a `delete` after a crash removes): the missing parent, not just
    // the container's own directory.
    let state: Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&c.id).join("state.json")).unwrap())
            .unwrap();
    let cg = &state["cgroup"];
    let mut recorded: Vec<PathBuf> = cg["v1"]
        .as_array()
        .unwrap()
        .iter()
        .chain(cg["v2"].as_object().map(|_| &cg["v2"]))
        .map(|h| PathBuf::from(h["created_top"].as_str().unwrap()))
        .collect();
    let mut want = h.dirs(&top);
    recorded.sort();
    want.sort();
    assert_eq!(recorded, want);
    let (At::V1(d) | At::V2(d)) = h.need("pids", "pids", &rel);
    assert_eq!(value(d.join("pids.max")), "7");
    // Without a cgroup namespace the probe sees the full paths.
    let lines = probe_lines(&j);
    for v1 in &h.v1 {
        assert_eq!(
            line_path(&lines, &v1.controllers),
            slash(&format!("{}/{rel}", v1.own))
        );
    }
    if let Some(v2) = &h.v2 {
        assert_eq!(
            line_path(&lines, &[]),
            slash(&format!("{}/{rel}", parent(&v2.own)))
        );
    }
    c.delete();
    // Both levels were created by mica, both are removed.
    assert_gone(&dirs);
    assert_gone(&h.dirs(&top));
}

/// The deepest of our own cgroups, if every other one is an ancestor of it:
/// an absolute path below it is below our own cgroup in every hierarchy.
fn deepest_own(h: &Host) -> Option<String> {
    let owns: Vec<&str> =
        h.v1.iter()
            .map(|x| x.own.as_str())
            .chain(h.v2.iter().map(|x| x.own.as_str()))
            .collect();
    let deepest = *owns.iter().max_by_key(|o| o.len())?;
    let under = |a: &str| a.is_empty() || deepest == a || deepest.starts_with(&format!("{a}/"));
    owns.iter().all(|o| under(o)).then(|| deepest.to_string())
}

#[test]
fn absolute_cgroups_path() {
    let h = host();
    let env = Env::new();
    let Some(own) = deepest_own(&h) else {
        println!("NOTE: skipped: our own cgroups are not nested across hierarchies: {h:?}");
        return;
    };
    let abs = slash(&format!("{own}/{}", unique("mica-cg-abs")));
    let dirs = h.abs_dirs(&abs);
    assert_gone(&dirs);
    // Every ancestor of the container's dirs below the mount points, and
    // whether it exists now: mica must remove exactly the ones it made.
    let mut before: Vec<(PathBuf, bool)> = Vec::new();
    for (d, mount) in dirs.iter().zip(h.abs_dirs("/")) {
        let mut p = d.parent();
        while let Some(a) = p.filter(|a| a.starts_with(&mount) && *a != mount) {
            before.push((a.to_path_buf(), a.is_dir()));
            p = a.parent();
        }
    }
    // Our own cgroup2 cgroup holds processes: mica must not enable
    // controllers in it (threaded ones would make it a thread root and the
    // container's cgroup "domain invalid").
    let own_v2 =
        h.v2.as_ref()
            .filter(|v| !v.own.is_empty())
            .map(|v| v.mount.join(&v.own));
    let control = |d: &Path| {
        (
            value(d.join("cgroup.subtree_control")),
            value(d.join("cgroup.type")),
        )
    };
    let own_before = own_v2.as_deref().map(control);
    let c = Ctr::start(&env, "busybox", &abs, &[], drop_cgroupns);
    let j = c.probe();
    assert_exist(&dirs);
    assert_eq!(
        own_v2.as_deref().map(control),
        own_before,
        "our own cgroup was changed"
    );
    let pid = c.pid();
    for d in &dirs {
        assert_eq!(pids_in(d), vec![pid], "{}", d.display());
    }
    let lines = probe_lines(&j);
    for v1 in &h.v1 {
        assert_eq!(line_path(&lines, &v1.controllers), abs);
    }
    if h.v2.is_some() {
        assert_eq!(line_path(&lines, &[]), abs);
    }
    c.delete();
    assert_gone(&dirs);
    // What existed (our own cgroups, at least) is still there; the
    // ancestors mica had to create are gone.
    for (a, existed) in before {
        assert_eq!(
            a.is_dir(),
            existed,
            "{}: existed before: {existed}",
            a.display()
        );
    }
}

// ------------------------------------------------------------------ namespaces

#[test]
fn cgroup_namespace_shows_the_root() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-ns");
    let c = Ctr::start(&env, "probe-only", &name, &[], |_| {});
    let j = c.probe();
    let lines = probe_lines(&j);
    match h.kind {
        Kind::V2 => assert_eq!(lines, vec!["0::/".to_string()]),
        Kind::V1 | Kind::Hybrid => {
            let n = h.v1.len() + usize::from(h.v2.is_some());
            assert_eq!(lines.len(), n, "{lines:?}");
            for v1 in &h.v1 {
                assert_eq!(line_path(&lines, &v1.controllers), "/", "{lines:?}");
            }
            if h.v2.is_some() {
                assert_eq!(line_path(&lines, &[]), "/", "{lines:?}");
            }
        }
    }
    c.delete();
}

/// Without a cgroup namespace the init sees its real cgroup: on v2 it was
/// cloned straight into it (clone3 CLONE_INTO_CGROUP) or moved there before
/// it ran anything.
#[test]
fn init_is_in_the_container_cgroup() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-into");
    let c = Ctr::start(&env, "probe-only", &name, &[], drop_cgroupns);
    let j = c.probe();
    let lines = probe_lines(&j);
    if h.kind == Kind::V2 {
        let v2 = h.v2.as_ref().unwrap();
        assert_eq!(
            lines,
            vec![format!(
                "0::{}",
                slash(&format!("{}/{name}", parent(&v2.own)))
            )]
        );
    }
    for v1 in &h.v1 {
        assert_eq!(
            line_path(&lines, &v1.controllers),
            slash(&format!("{}/{name}", v1.own))
        );
    }
    if let (Some(v2), Kind::Hybrid) = (&h.v2, h.kind) {
        assert_eq!(
            line_path(&lines, &[]),
            slash(&format!("{}/{name}", parent(&v2.own)))
        );
    }
    c.delete();
}

/// Proof that the init is cloned INTO its cgroup on pure v2: mica runs in a
/// cgroup whose pids.max (1) it fills itself, so any fork charged to that
/// cgroup fails with EAGAIN. clone3(CLONE_INTO_CGROUP) charges the target
/// cgroup instead and succeeds; a plain clone (the fallback, also taken with
/// a user namespace) fails. Both cases are checked, so the test can tell.
#[test]
fn clone_into_cgroup_on_v2() {
    let h = host();
    if h.kind != Kind::V2 {
        println!("NOTE: skipped: needs a pure cgroup v2 host (make test-cgroup2)");
        return;
    }
    let v2 = h.v2.as_ref().unwrap();
    let base = v2.base();
    // pids for the launcher cgroup: enabled from the root down to its parent.
    let mut dir = v2.mount.clone();
    for c in std::iter::once("").chain(parent(&v2.own).split('/').filter(|c| !c.is_empty())) {
        dir.push(c);
        let has = |f: &str| read(dir.join(f)).split_whitespace().any(|c| c == "pids");
        assert!(
            has("cgroup.controllers"),
            "no pids controller in {}",
            dir.display()
        );
        if !has("cgroup.subtree_control") {
            write(dir.join("cgroup.subtree_control"), "+pids");
        }
    }
    assert_eq!(dir, base);
    let env = Env::new();
    let launcher = base.join(unique("mica-cg-launcher"));
    std::fs::create_dir(&launcher).unwrap();
    write(launcher.join("pids.max"), "1");
    let procs = std::ffi::CString::new(launcher.join("cgroup.procs").to_str().unwrap()).unwrap();

    let run_in_launcher = |edit: &dyn Fn(&mut Value)| -> (i32, String, String) {
        let name = unique("mica-cg-cl");
        let b = bundle(&env, "probe-only", &["/mica-probe"], |c| {
            set_path(c, &name);
            drop_cgroupns(c);
            edit(c);
        });
        let id = env.id("cl");
        let mut cmd = env.cmd();
        cmd.args(["run", "--bundle"])
            .arg(&b)
            .arg(&id)
            .stdin(Stdio::null());
        let procs = procs.clone();
        unsafe {
            use std::os::unix::process::CommandExt;
            // Only async-signal-safe calls after fork: join the launcher.
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let out = cmd.output().expect("run mica");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_gone(&h.dirs(&name));
        (
            out.status.code().unwrap_or(-1),
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Cloned into its own cgroup: works although the launcher is full.
    let (code, out, err) = run_in_launcher(&|_| {});
    assert_eq!(
        code, 0,
        "mica run in a full cgroup failed: stdout={out} stderr={err}"
    );
    let j = common::parse_probe(&out);
    assert_eq!(j["pid"], 1, "{j}");
    // The control: with a user namespace mica does not use CLONE_INTO_CGROUP
    // (the clone is charged to the full launcher) and must fail.
    let (code, out, err) = run_in_launcher(&|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    });
    assert_ne!(code, 0, "plain clone in a full cgroup succeeded: {out}");
    assert!(
        err.contains("clone") && err.contains("EAGAIN"),
        "unexpected error: {err}"
    );
    assert_eq!(read(launcher.join("cgroup.procs")), "");
    std::fs::remove_dir(&launcher).unwrap();
}

// ------------------------------------------------------------------ devices

/// Device nodes for `device_rules`: char 240:0, 240:1, 240:2 (a major of
/// the "local/experimental" range: no driver, so an open the device rules
/// let through fails with ENXIO and one they refuse with EPERM).
fn experimental_device_nodes(env: &Env) -> PathBuf {
    let dir = env.tmp.path().join("devnodes");
    std::fs::create_dir(&dir).unwrap();
    for (name, minor) in [("a", 0), ("b", 1), ("c", 2)] {
        let p =
            std::ffi::CString::new(dir.join(name).into_os_string().into_encoded_bytes()).unwrap();
        let rc =
            unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(240, minor)) };
        assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    }
    dir
}

/// The errno of the probe's `kind` ("reads"/"writes") action on `path`.
fn action_errno(j: &Value, kind: &str, path: &str) -> String {
    j[kind]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["path"] == path))
        .map(|x| x["errno"].as_str().unwrap_or("none").to_string())
        .unwrap_or_else(|| panic!("no {kind} of {path}: {j}"))
}

/// Device rules are enforced, in order, on v1 (devices.allow/deny) and on
/// cgroup v2 (an eBPF program): what they grant opens (and meets no
/// driver: ENXIO), what they do not is refused (EPERM), access by access.
#[test]
fn device_rules() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-dev");
    let nodes = experimental_device_nodes(&env);
    let rules = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
        {"allow": true, "type": "c", "major": 240, "minor": 0, "access": "rw"},
        {"allow": true, "type": "c", "major": 240, "minor": 1, "access": "r"}
    ]);
    let c = Ctr::start(
        &env,
        "probe-only",
        &name,
        &[
            "--write", "/dev/t/a", "--read", "/dev/t/a", "--read", "/dev/t/b", "--write",
            "/dev/t/b", "--read", "/dev/t/c",
        ],
        |cfg| {
            cfg["linux"]["resources"]["devices"] = rules;
            cfg["mounts"].as_array_mut().unwrap().push(
                json!({"destination": "/dev/t", "type": "bind", "source": nodes, "options": ["bind"]}),
            );
        },
    );
    let j = c.probe();
    assert_eq!(action_errno(&j, "writes", "/dev/t/a"), "ENXIO", "{j}");
    assert_eq!(action_errno(&j, "reads", "/dev/t/a"), "ENXIO", "{j}");
    assert_eq!(action_errno(&j, "reads", "/dev/t/b"), "ENXIO", "{j}");
    assert_eq!(action_errno(&j, "writes", "/dev/t/b"), "EPERM", "{j}");
    assert_eq!(action_errno(&j, "reads", "/dev/t/c"), "EPERM", "{j}");
    if h.v1_with("devices").is_some() {
        let At::V1(d) = h.need("devices", "", &name) else {
            unreachable!()
        };
        let got: BTreeSet<String> = read(d.join("devices.list"))
            .lines()
            .map(String::from)
            .collect();
        let want: BTreeSet<String> = [
            "c 10:200 rwm",
            "c 240:0 rw",
            "c 240:1 r",
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }
    c.delete();
    assert_gone(&h.dirs(&name));
}

/// A device rule the kernel cannot take is refused before anything exists.
#[test]
fn bad_device_rule_is_refused_with_nothing_left() {
    let h = host();
    let env = Env::new();
    let name = unique("mica-cg-baddev");
    let b = bundle(&env, "probe-only", &["/mica-probe"], |c| {
        set_path(c, &name);
        c["linux"]["resources"]["devices"] =
            json!([{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}]);
    });
    let id = env.id("dev");
    let out = env.tmp.path().join("dev.out");
    let (created, err) = create(&env, &b, &id, &out);
    assert!(!created, "a bad device rule was accepted");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.starts_with("mica: ") && err.contains("r, w and m"),
        "stderr: {err:?}"
    );
    let left = common::state_left(&env.root);
    assert!(left.is_empty(), "state left behind: {left:?}");
    assert_gone(&h.dirs(&name));
    assert_eq!(read(&out), "");
}

/// What the host looks like, in the test log (`--nocapture`).
#[test]
fn layout_is_detected() {
    let h = host();
    println!(
        "cgroup layout: {:?}; v1: {:?}; v2: {:?}",
        h.kind,
        h.v1.len(),
        h.v2
    );
    assert_eq!(h.kind == Kind::V1, h.v2.is_none());
    assert_eq!(h.kind == Kind::V2, h.v1.is_empty());
    // Our own cgroups are where we think they are, and hold us.
    let me = std::process::id() as i32;
    let mut own: Vec<PathBuf> = h.v1.iter().map(|x| x.mount.join(&x.own)).collect();
    own.extend(h.v2.iter().map(|x| x.mount.join(&x.own)));
    for dir in own {
        assert!(
            pids_in(&dir).contains(&me),
            "{} does not hold us",
            dir.display()
        );
    }
}
