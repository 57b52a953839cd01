//! The contenders and how each starts the workload once.

use super::host::{CgroupPlan, V1Namespace};
use super::proc::{self, Output, Spawn};
use super::vm::Vm;
use super::workload::Workload;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// No single start of the workload may take longer than this (the VM has its own).
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub enum Kind {
    /// `mica run` (which deletes the container when the process exits).
    MicaRun,
    /// `mica create`, `start`, wait for the process, `delete`.
    MicaCsd,
    /// `mica launch --rm REF` from a store that already holds the image.
    MicaLaunch { reference: String, store: PathBuf },
    /// `mica image import` into an empty store, then `mica launch --rm`.
    MicaLaunchCold { layout: PathBuf },
    /// Any OCI runtime's `run` (runc, crun, youki, a path).
    Oci {
        bin: PathBuf,
        absolute_cgroups: bool,
        v1ns: bool,
    },
    /// `bwrap --ro-bind ROOTFS / --proc /proc --dev /dev --unshare-all ARGS`
    Bwrap { bin: PathBuf },
    /// `unshare --fork --pid --mount --uts --ipc --net chroot ROOTFS ARGS`
    Floor { unshare: PathBuf, chroot: PathBuf },
    /// The rootfs booted as a microVM.
    Vm(Box<Vm>),
}

pub struct Contender {
    pub idx: usize,
    pub name: String,
    pub kind: Kind,
    /// How it is started, for the report.
    pub command: String,
    pub note: String,
    pub version: Option<String>,
    /// Why it does not run (binary not found, fails on this host, ...).
    pub skipped: Option<String>,
    /// Its own `--root` state dir.
    pub root: PathBuf,
    /// Names of the timed steps, when there are several.
    pub parts: Vec<&'static str>,
    pub counter: AtomicUsize,
}

/// One timed start.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub ms: f64,
    pub rss_kib: u64,
    pub parts_ms: Vec<f64>,
}

/// What every start needs.
pub struct Ctx<'a> {
    pub work: PathBuf,
    pub mica: PathBuf,
    pub workload: &'a Workload,
    pub cg: &'a CgroupPlan,
    pub v1ns: Option<&'a V1Namespace>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Contender {
    pub fn new(idx: usize, name: &str, kind: Kind, work: &Path) -> Contender {
        Contender {
            idx,
            name: name.to_string(),
            kind,
            command: String::new(),
            note: String::new(),
            version: None,
            skipped: None,
            root: work.join("roots").join(format!("{idx}")),
            parts: Vec::new(),
            counter: AtomicUsize::new(0),
        }
    }

    /// An OCI-runtime-like contender whose `run` takes `--root`/`--bundle`
    /// (those the throughput and density tables compare).
    pub fn runtime_bin<'a>(&'a self, ctx: &'a Ctx) -> Option<&'a Path> {
        match &self.kind {
            Kind::MicaRun => Some(&ctx.mica),
            Kind::Oci { bin, .. } => Some(bin),
            _ => None,
        }
    }

    fn spawn_opts<'a>(&self, ctx: &Ctx, out: &'a Output, timed: bool) -> Spawn<'a> {
        let ns = match &self.kind {
            Kind::Oci { v1ns: true, .. } => ctx.v1ns.map(|n| n.fd()),
            _ => None,
        };
        Spawn {
            mount_ns: ns,
            timeout: Some(TIMEOUT),
            output: Some(out),
            timed,
        }
    }

    fn absolute_cgroups(&self) -> bool {
        matches!(
            self.kind,
            Kind::Oci {
                absolute_cgroups: true,
                ..
            }
        )
    }

    pub fn new_id(&self) -> String {
        format!(
            "mb{}-{}-{}",
            std::process::id(),
            self.idx,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `BIN --root ROOT ARGS...`
    pub fn rt(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Start the workload once in slot `slot` (a worker's own bundle dir and
    /// output files), timed through the stopwatch. Err: one line saying why it
    /// failed.
    pub fn once(&self, ctx: &Ctx, slot: usize) -> Result<Sample, String> {
        self.start(ctx, slot, true)
    }

    /// [`Contender::once`]; `timed: false` starts the commands directly (the
    /// sample then has no peak RSS and the time includes the spawn).
    pub fn start(&self, ctx: &Ctx, slot: usize, timed: bool) -> Result<Sample, String> {
        let id = self.new_id();
        let tag = format!("{}-{slot}", self.idx);
        let bundle = ctx.work.join("bundles").join(&tag);
        let mut out =
            Output::new(&ctx.work.join("out"), &tag).map_err(|e| format!("output files: {e}"))?;
        let fail = |what: &str, o: &proc::Outcome, out: &mut Output| {
            if o.timed_out {
                format!("{what} timed out after {} s", TIMEOUT.as_secs())
            } else {
                format!("{what} exited {}: {}", o.status, out.last_err_line())
            }
        };
        let write_bundle = || {
            ctx.workload
                .write_bundle(&bundle, &ctx.cg.path(&id, self.absolute_cgroups()))
                .map_err(|e| format!("write bundle {}: {e}", bundle.display()))
        };
        let bundle_s = bundle.to_string_lossy().into_owned();
        match &self.kind {
            Kind::MicaRun | Kind::Oci { .. } => {
                let bin = self.runtime_bin(ctx).expect("runtime");
                write_bundle()?;
                let mut cmd = self.rt(bin, &["run", "--bundle", &bundle_s, &id]);
                let o = proc::run(&mut cmd, &self.spawn_opts(ctx, &out, timed))
                    .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
                let leftover = self.root.join(&id).exists();
                if !o.ok() || leftover {
                    self.force_delete(ctx, bin, &id);
                }
                if !o.ok() {
                    return Err(fail("run", &o, &mut out));
                }
                Ok(Sample {
                    ms: ms(o.elapsed),
                    rss_kib: o.maxrss_kib,
                    parts_ms: vec![],
                })
            }
            Kind::MicaCsd => {
                write_bundle()?;
                let pid_file = ctx.work.join("out").join(format!("{tag}.pid"));
                let _ = std::fs::remove_file(&pid_file);
                let pid_s = pid_file.to_string_lossy().into_owned();
                let spawn = self.spawn_opts(ctx, &out, timed);
                let t0 = std::time::Instant::now();
                let c = proc::run(
                    &mut self.rt(
                        &ctx.mica,
                        &["create", "--bundle", &bundle_s, "--pid-file", &pid_s, &id],
                    ),
                    &spawn,
                )
                .map_err(|e| format!("spawn mica: {e}"))?;
                if !c.ok() {
                    self.force_delete(ctx, &ctx.mica, &id);
                    return Err(fail("create", &c, &mut out));
                }
                let s = proc::run(&mut self.rt(&ctx.mica, &["start", &id]), &spawn)
                    .map_err(|e| format!("spawn mica: {e}"))?;
                if !s.ok() {
                    self.force_delete(ctx, &ctx.mica, &id);
                    return Err(fail("start", &s, &mut out));
                }
                let tw = std::time::Instant::now();
                let pid: i32 = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| format!("no pid in {}", pid_file.display()))?;
                if !proc::wait_exit(pid, Some(TIMEOUT)).unwrap_or(false) {
                    self.force_delete(ctx, &ctx.mica, &id);
                    return Err("the container's process did not exit".into());
                }
                let w = tw.elapsed();
                let d = proc::run(&mut self.rt(&ctx.mica, &["delete", &id]), &spawn)
                    .map_err(|e| format!("spawn mica: {e}"))?;
                let total = t0.elapsed();
                if !d.ok() {
                    self.force_delete(ctx, &ctx.mica, &id);
                    return Err(fail("delete", &d, &mut out));
                }
                Ok(Sample {
                    ms: ms(total),
                    rss_kib: c.maxrss_kib.max(s.maxrss_kib).max(d.maxrss_kib),
                    parts_ms: vec![ms(c.elapsed), ms(s.elapsed), ms(w), ms(d.elapsed)],
                })
            }
            Kind::MicaLaunch { reference, store } => {
                let mut cmd = self.launch_cmd(ctx, store, reference, &id);
                let o = proc::run(&mut cmd, &self.spawn_opts(ctx, &out, timed))
                    .map_err(|e| format!("spawn mica: {e}"))?;
                if !o.ok() {
                    self.force_delete(ctx, &ctx.mica, &id);
                    return Err(fail("launch", &o, &mut out));
                }
                Ok(Sample {
                    ms: ms(o.elapsed),
                    rss_kib: o.maxrss_kib,
                    parts_ms: vec![],
                })
            }
            Kind::MicaLaunchCold { layout } => {
                let store = ctx.work.join("stores").join(&id);
                let spawn = self.spawn_opts(ctx, &out, timed);
                let mut imp = Command::new(&ctx.mica);
                imp.env("MICA_STORE", &store)
                    .args(["image", "import", "--name", super::image::REFERENCE])
                    .arg(layout);
                let t0 = std::time::Instant::now();
                let i = proc::run(&mut imp, &spawn).map_err(|e| format!("spawn mica: {e}"))?;
                if !i.ok() {
                    remove_tree(&store);
                    return Err(fail("image import", &i, &mut out));
                }
                let mut cmd = self.launch_cmd(ctx, &store, super::image::REFERENCE, &id);
                let l = proc::run(&mut cmd, &spawn).map_err(|e| format!("spawn mica: {e}"))?;
                let total = t0.elapsed();
                if !l.ok() {
                    self.force_delete(ctx, &ctx.mica, &id);
                }
                remove_tree(&store);
                if !l.ok() {
                    return Err(fail("launch", &l, &mut out));
                }
                Ok(Sample {
                    ms: ms(total),
                    rss_kib: i.maxrss_kib.max(l.maxrss_kib),
                    parts_ms: vec![ms(i.elapsed), ms(l.elapsed)],
                })
            }
            Kind::Bwrap { bin } => {
                let mut cmd = Command::new(bin);
                cmd.arg("--ro-bind")
                    .arg(&ctx.workload.rootfs)
                    .args(["/", "--proc", "/proc", "--dev", "/dev", "--unshare-all"])
                    .args(&ctx.workload.args);
                let o = proc::run(&mut cmd, &self.spawn_opts(ctx, &out, timed))
                    .map_err(|e| format!("spawn bwrap: {e}"))?;
                if !o.ok() {
                    return Err(fail("bwrap", &o, &mut out));
                }
                Ok(Sample {
                    ms: ms(o.elapsed),
                    rss_kib: o.maxrss_kib,
                    parts_ms: vec![],
                })
            }
            Kind::Floor { unshare, chroot } => {
                let mut cmd = Command::new(unshare);
                cmd.args(["--fork", "--pid", "--mount", "--uts", "--ipc", "--net"])
                    .arg(chroot)
                    .arg(&ctx.workload.rootfs)
                    .args(&ctx.workload.args);
                let o = proc::run(&mut cmd, &self.spawn_opts(ctx, &out, timed))
                    .map_err(|e| format!("spawn unshare: {e}"))?;
                if !o.ok() {
                    return Err(fail("unshare+chroot", &o, &mut out));
                }
                Ok(Sample {
                    ms: ms(o.elapsed),
                    rss_kib: o.maxrss_kib,
                    parts_ms: vec![],
                })
            }
            Kind::Vm(vm) => vm.once(&mut out),
        }
    }

    /// `mica launch --rm` of the image with its own command (the image's
    /// config is the workload's), with the workload's limits.
    fn launch_cmd(&self, ctx: &Ctx, store: &Path, reference: &str, id: &str) -> Command {
        let mut c = self.rt(&ctx.mica, &[]);
        let mem = format!("{}m", super::workload::MEMORY_LIMIT >> 20);
        let pids = super::workload::PIDS_LIMIT.to_string();
        c.env("MICA_STORE", store).args([
            "launch",
            "--rm",
            "--name",
            id,
            "--memory",
            &mem,
            "--pids-limit",
            &pids,
            reference,
        ]);
        c
    }

    /// `delete --force` whatever is left of `id` (not timed).
    pub fn force_delete(&self, ctx: &Ctx, bin: &Path, id: &str) {
        if !self.root.join(id).exists() {
            return;
        }
        let mut cmd = self.rt(bin, &["delete", "--force", id]);
        let _ = proc::run(
            &mut cmd,
            &Spawn {
                mount_ns: self.spawn_opts_ns(ctx),
                timeout: Some(TIMEOUT),
                output: None,
                timed: false,
            },
        );
    }

    pub fn spawn_opts_ns(&self, ctx: &Ctx) -> Option<i32> {
        match &self.kind {
            Kind::Oci { v1ns: true, .. } => ctx.v1ns.map(|n| n.fd()),
            _ => None,
        }
    }
}

/// rm -rf, also of read-only trees.
pub fn remove_tree(p: &Path) {
    if std::fs::remove_dir_all(p).is_err() && p.exists() {
        let _ = Command::new("rm").arg("-rf").arg(p).status();
    }
}
