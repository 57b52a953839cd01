//! Test harness: bundles built from `rootfs-fixtures/`, a private state root
//! per test, and cleanup of every container a test made.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// The mica under test: cargo's build, or `MICA_BIN` (`make test-release`
/// points it at the static release binary).
pub fn mica_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var("MICA_BIN") {
        Ok(b) if !b.is_empty() => b,
        _ => env!("CARGO_BIN_EXE_mica").to_string(),
    })
}

pub fn fixtures() -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = std::env::var_os("MICA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/build"));
    BUILD.call_once(|| {
        let st = Command::new("sh")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/build.sh"))
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run rootfs-fixtures/build.sh");
        assert!(st.success(), "rootfs-fixtures/build.sh failed");
    });
    dir
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temp dir removed on drop (after unmounting nothing: mica never mounts
/// on the host).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(&format!("mica-test-{prefix}")));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One test's world: a state root, bundles, and the ids it created (all
/// force-deleted on drop).
pub struct Env {
    pub tmp: TempDir,
    pub root: PathBuf,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let tmp = TempDir::new("env");
        let root = tmp.path().join("state");
        Env {
            tmp,
            root,
            ids: Default::default(),
        }
    }

    pub fn id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// `mica --root <root> ARGS`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(mica_bin());
        c.arg("--root").arg(&self.root);
        c
    }

    pub fn mica(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mica")
    }

    /// A bundle with the default `mica spec` config, the given rootfs
    /// fixture and args; `edit` adjusts the config.
    pub fn bundle(&self, rootfs: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.tmp.path().join(unique("bundle"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(mica_bin())
            .args(["spec", "--bundle"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mica spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cfg: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        cfg["root"]["path"] = json!(fixtures().join(rootfs));
        cfg["process"]["terminal"] = json!(false);
        cfg["process"]["args"] = json!(args);
        edit(&mut cfg);
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .unwrap();
        dir
    }

    /// `run` the bundle in the foreground; returns (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Path) -> (i32, String, String) {
        let id = self.id("run");
        let out = self
            .cmd()
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run the probe with `probe_args` in the busybox fixture and parse its JSON.
    pub fn probe(&self, probe_args: &[&str], edit: impl FnOnce(&mut Value)) -> Value {
        let mut args = vec!["/usr/bin/mica-probe"];
        args.extend_from_slice(probe_args);
        let b = self.bundle("busybox", &args, edit);
        let (code, out, err) = self.run(&b);
        assert_eq!(code, 0, "probe failed: stdout={out} stderr={err}");
        parse_probe(&out)
    }

    /// Nothing left in the state root (see [`Env::state_entries`]).
    pub fn assert_state_empty(&self) {
        let left = self.state_entries();
        assert!(left.is_empty(), "left in the state root: {left:?}");
    }

    /// What the state root still holds of containers (see [`state_left`]).
    pub fn state_entries(&self) -> Vec<String> {
        state_left(&self.root)
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.mica(&["state", id]);
        assert!(
            out.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.lock().unwrap().iter() {
            let _ = self.cmd().args(["delete", "--force", id]).output();
        }
    }
}

/// Drop the `typ` namespace from a config (it must have one).
pub fn remove_ns(cfg: &mut Value, typ: &str) {
    let ns = cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    let before = ns.len();
    ns.retain(|n| n["type"] != typ);
    assert_eq!(ns.len() + 1, before, "config had no {typ} namespace");
}

pub fn parse_probe(out: &str) -> Value {
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in probe output: {out:?}"));
    serde_json::from_str(out[start..].trim())
        .unwrap_or_else(|e| panic!("bad probe JSON ({e}): {out}"))
}

/// This test process's own cgroup in a v1 hierarchy (or v2 with "").
pub fn own_cgroup(controller: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    s.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        if ctrls.split(',').any(|c| c == controller) {
            Some(path.to_string())
        } else {
            None
        }
    })
}

/// Mount points of the host that mention `needle` (to prove nothing leaked).
pub fn host_mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// What a runtime's state root still holds of containers: its entries (none
/// when it does not exist), a launch bundle left in `.bundles/` as
/// `.bundles/<id>` (`.bundles` itself stays, like the root). mica's `@free`
/// (and `.bundles/@free`) hold removed containers' directories (bundles)
/// waiting to be reused, each with at most its spare state files
/// (`state.old`, `state.spare`; a bundle its `config.json`): anything else
/// there shows as `@free/<entry>` or `@free/<dir>/<file>`.
pub fn state_left(root: &Path) -> Vec<String> {
    left_in(root, "", &["state.old", "state.spare"])
}

/// [`state_left`] of `dir`, its entries named `<prefix><name>`; `keep`:
/// what a waiting directory in its `@free` may hold.
fn left_in(dir: &Path, prefix: &str, keep: &[&str]) -> Vec<String> {
    let list = |dir: &Path| -> Vec<String> {
        match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", dir.display()),
        }
    };
    let mut out = Vec::new();
    for e in list(dir) {
        let name = format!("{prefix}{e}");
        match e.as_str() {
            ".bundles" if prefix.is_empty() => {
                out.extend(left_in(&dir.join(&e), ".bundles/", &["config.json"]))
            }
            "@free" => {
                for d in list(&dir.join(&e)) {
                    let waiting = dir.join(&e).join(&d);
                    if !waiting.is_dir() {
                        out.push(format!("{name}/{d}"));
                        continue;
                    }
                    out.extend(
                        list(&waiting)
                            .into_iter()
                            .filter(|f| !keep.contains(&f.as_str()))
                            .map(|f| format!("{name}/{d}/{f}")),
                    );
                }
            }
            _ => out.push(name),
        }
    }
    out
}
