//! The workload every contender starts: a bundle config (one per container,
//! differing only in `cgroupsPath`) over one read-only rootfs.

use super::Error;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The default workload's limits.
pub const MEMORY_LIMIT: i64 = 64 << 20;
pub const PIDS_LIMIT: i64 = 64;

#[derive(Clone, Debug)]
pub struct Workload {
    /// config.json without `linux.cgroupsPath`; `root.path` absolute. Not
    /// to be changed once a bundle is written (see [`Workload::write_bundle`]).
    pub base: Value,
    /// The config's JSON before and after the cgroupsPath value, made once.
    json: std::sync::OnceLock<(Vec<u8>, Vec<u8>)>,
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// One line for the report.
    pub description: String,
}

impl Workload {
    /// `/bin/true` in the busybox fixture: `mica spec`'s config (read-only
    /// root) without a terminal, with memory and pids limits.
    pub fn busybox(fixtures: &Path) -> Result<Workload, Error> {
        let rootfs = fixtures.join("busybox");
        if !rootfs.join("bin/busybox").exists() {
            return Err(Error::Setup(format!(
                "{} has no bin/busybox: build the fixtures first (make fixtures, or \
                 sh rootfs-fixtures/build.sh rootfs-fixtures/build), or pass --bundle",
                rootfs.display()
            )));
        }
        Self::on_rootfs(
            &rootfs,
            &["/bin/true"],
            "/bin/true in the read-only busybox rootfs",
        )
    }

    /// `mica spec`'s config over `rootfs` running `args`, with the default limits.
    pub fn on_rootfs(rootfs: &Path, args: &[&str], what: &str) -> Result<Workload, Error> {
        let rootfs = std::fs::canonicalize(rootfs)
            .map_err(|e| Error::io(format!("rootfs {}", rootfs.display()), e))?;
        let mut c = crate::spec::default_spec(false);
        // crun 1.8 refuses ociVersion 1.2.0; every runtime here reads 1.0.2.
        c["ociVersion"] = json!("1.0.2");
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(args);
        c["root"]["path"] = json!(rootfs.to_string_lossy());
        c["linux"]["resources"]["memory"] = json!({"limit": MEMORY_LIMIT});
        c["linux"]["resources"]["pids"] = json!({"limit": PIDS_LIMIT});
        Ok(Workload {
            base: c,
            json: Default::default(),
            rootfs,
            args: args.iter().map(|s| s.to_string()).collect(),
            description: format!(
                "{what}, memory limit {} MiB, pids limit {PIDS_LIMIT}",
                MEMORY_LIMIT >> 20
            ),
        })
    }

    /// The workload of an existing bundle (its config.json is copied per
    /// container, with its own cgroupsPath and no terminal).
    pub fn from_bundle(dir: &Path) -> Result<Workload, Error> {
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| Error::io(format!("bundle {}", dir.display()), e))?;
        let path = dir.join("config.json");
        let text =
            std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let mut c: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Setup(format!("{}: {e}", path.display())))?;
        let root = c["root"]["path"].as_str().unwrap_or("rootfs").to_string();
        let rootfs = if Path::new(&root).is_absolute() {
            PathBuf::from(&root)
        } else {
            dir.join(&root)
        };
        c["root"]["path"] = json!(rootfs.to_string_lossy());
        c["process"]["terminal"] = json!(false);
        let args: Vec<String> = c["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if args.is_empty() {
            return Err(Error::Setup(format!(
                "{}: process.args is empty",
                path.display()
            )));
        }
        if let Some(o) = c["linux"].as_object_mut() {
            o.remove("cgroupsPath");
        }
        Ok(Workload {
            description: format!("{} in the bundle {}", args.join(" "), dir.display()),
            base: c,
            json: Default::default(),
            rootfs,
            args,
        })
    }

    /// The config for one container.
    pub fn config(&self, cgroups_path: &str) -> Value {
        let mut c = self.base.clone();
        if !c["linux"].is_object() {
            c["linux"] = json!({});
        }
        c["linux"]["cgroupsPath"] = json!(cgroups_path);
        c
    }

    /// Write `dir/config.json` for one container, over the last one in place.
    /// Not truncated to zero and rewritten: on ext4 such a file is flushed to
    /// disk when it is closed (`auto_da_alloc`), a disk write per start on the
    /// CPUs the contenders run on. The JSON around the cgroupsPath is made
    /// once (serializing the whole config per start showed in profiles).
    pub fn write_bundle(&self, dir: &Path, cgroups_path: &str) -> std::io::Result<()> {
        const MARK: &str = "\u{0}cgroups path\u{0}";
        let (head, tail) = self.json.get_or_init(|| {
            let text = serde_json::to_vec(&self.config(MARK)).expect("a JSON value serializes");
            let mark = serde_json::to_vec(MARK).expect("a string serializes");
            let at = text
                .windows(mark.len())
                .position(|w| w == mark)
                .expect("the mark is in the config");
            (text[..at].to_vec(), text[at + mark.len()..].to_vec())
        });
        let mut data = Vec::with_capacity(head.len() + tail.len() + cgroups_path.len() + 8);
        data.extend_from_slice(head);
        serde_json::to_writer(&mut data, cgroups_path)?;
        data.extend_from_slice(tail);
        std::fs::create_dir_all(dir)?;
        crate::container::reuse::write_over(&dir.join("config.json"), &data, 0o644)
    }
}
