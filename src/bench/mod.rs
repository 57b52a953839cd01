//! `mica bench`: start the same workload N times with mica and its peers
//! (runc, crun, youki, any OCI runtime by path, bubblewrap, the
//! `unshare`+`chroot` floor, a qemu microVM), alternating the contenders
//! round by round so drift hits all alike, and report the distribution of
//! start-up times, peak RSS, throughput and idle memory per container.
//!
//! ```no_run
//! let opts = mica::bench::BenchOptions::default();
//! let report = mica::bench::run(&opts).unwrap();
//! print!("{}", report.text());
//! ```

mod contender;
mod from_image;
pub mod host;
mod image;
mod load;
pub mod proc;
pub mod report;
pub mod stats;
mod svg;
pub use crate::trace;
mod vm;
pub mod workload;

#[cfg(test)]
mod tests;

pub use report::Report;
pub use vm::Accel;

use contender::{Contender, Ctx, Kind, Sample};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `mica bench` command line, field by field.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// `--bundle DIR`: the workload (its config.json, copied per container
    /// with its own cgroupsPath). Default: `/bin/true` in the busybox fixture.
    pub bundle: Option<PathBuf>,
    /// `IMAGE` (positional): an image (a path to an OCI layout, oci-archive
    /// or docker-save tarball, or a name in mica's store) whose root and
    /// command are the workload; the `mica launch` contenders launch it.
    pub image: Option<String>,
    /// `--runs N` measured starts per contender (default 50).
    pub runs: usize,
    /// `--warmup N` unmeasured starts per contender first (default 3).
    pub warmup: usize,
    /// `--vs LIST`: peers, comma-separated: runc, crun, youki, bwrap, floor,
    /// or any OCI runtime by name or path (default runc,crun,youki,bwrap,floor).
    pub vs: Vec<String>,
    /// `--vm`: also boot the rootfs as a qemu microVM.
    pub vm: bool,
    /// `--kernel PATH` for `--vm` (default: Debian's, downloaded and cached).
    pub kernel: Option<PathBuf>,
    /// `--accel auto|kvm|tcg` for `--vm`.
    pub accel: Accel,
    /// `--vm-runs N`: VM boots (spread over the rounds; default 5).
    pub vm_runs: usize,
    /// `--json FILE`: every sample and the statistics.
    pub json: Option<PathBuf>,
    /// `--svg FILE`: the distributions chart.
    pub svg: Option<PathBuf>,
    /// `--markdown FILE`: the report as Markdown (bench/RESULTS.md).
    pub markdown: Option<PathBuf>,
    /// `--throughput N`: containers per contender and concurrency level (0: skip; default 100).
    pub throughput: usize,
    /// `--concurrency LIST` (default 1,4,16).
    pub concurrency: Vec<usize>,
    /// `--density N`: idle detached containers per runtime (0: skip; default 20).
    pub density: usize,
    /// The mica binary to measure (default: this executable).
    pub mica: Option<PathBuf>,
    /// The rootfs fixtures (default: $MICA_FIXTURES, else rootfs-fixtures/build).
    pub fixtures: Option<PathBuf>,
    /// Show a progress line on stderr (default: when stderr is a terminal).
    pub progress: Option<bool>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            bundle: None,
            image: None,
            runs: 50,
            warmup: 3,
            vs: DEFAULT_VS.iter().map(|s| s.to_string()).collect(),
            vm: false,
            kernel: None,
            accel: Accel::Auto,
            vm_runs: 5,
            json: None,
            svg: None,
            markdown: None,
            throughput: 100,
            concurrency: vec![1, 4, 16],
            density: 20,
            mica: None,
            fixtures: None,
            progress: None,
        }
    }
}

/// The stopwatch's source, compiled at bench time.
const STOPWATCH_SRC: &str = include_str!("stopwatch.rs");

pub const DEFAULT_VS: [&str; 5] = ["runc", "crun", "youki", "bwrap", "floor"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// The bench's temp dir, removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        contender::remove_tree(&self.0);
    }
}

struct Progress {
    on: bool,
}

impl Progress {
    fn show(&self, msg: &str) {
        if self.on {
            use std::io::Write;
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[Kmica bench: {msg}");
            let _ = e.flush();
        }
    }
    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

fn fixtures_dir(opts: &BenchOptions, mica: &Path) -> PathBuf {
    if let Some(f) = &opts.fixtures {
        return f.clone();
    }
    if let Some(f) = std::env::var_os("MICA_FIXTURES").filter(|f| !f.is_empty()) {
        return f.into();
    }
    let local = PathBuf::from("rootfs-fixtures/build");
    if local.join("busybox").exists() {
        return local;
    }
    // target/{debug,release}/mica -> the repository's fixtures
    mica.parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .map(|r| r.join("rootfs-fixtures/build"))
        .filter(|p| p.join("busybox").exists())
        .unwrap_or(local)
}

/// Run the whole bench; the caller prints [`Report::text`].
pub fn run(opts: &BenchOptions) -> Result<Report, Error> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Setup(
            "mica bench needs root (it starts containers with every runtime)".into(),
        ));
    }
    if opts.runs == 0 {
        return Err(Error::Setup("--runs must be at least 1".into()));
    }
    let progress = Progress {
        on: opts
            .progress
            .unwrap_or_else(|| unsafe { libc::isatty(2) } == 1),
    };
    let mica = match &opts.mica {
        Some(m) => m.clone(),
        None => std::env::current_exe().map_err(|e| Error::io("current_exe", e))?,
    };
    let fixtures = fixtures_dir(opts, &mica);
    let work = WorkDir(std::env::temp_dir().join(format!("mica-bench-{}", std::process::id())));
    contender::remove_tree(&work.0);
    for d in ["bundles", "out", "roots", "stores"] {
        std::fs::create_dir_all(work.0.join(d))
            .map_err(|e| Error::io(format!("mkdir {}", work.0.display()), e))?;
    }
    let mut notes = Vec::new();
    // Every timed command starts through a tiny static stopwatch, so its
    // peak RSS is its own (see stopwatch.rs).
    match vm::build_static(&vm::cache_dir(), "mica-stopwatch", STOPWATCH_SRC) {
        Ok(p) => proc::use_stopwatch(p),
        Err(e) => notes.push(format!(
            "no stopwatch ({e}): peak RSS may include the pages a command had between fork and exec, a copy of the bench's own"
        )),
    }

    // The workload: a bundle, an image, or /bin/true in the busybox fixture.
    let from_image = match (&opts.bundle, &opts.image) {
        (None, Some(img)) => Some(from_image::prepare(img, &work.0)?),
        _ => None,
    };
    let workload = match (&opts.bundle, &from_image) {
        (Some(b), _) => workload::Workload::from_bundle(b)?,
        (None, Some(f)) => f.workload.clone(),
        (None, None) => workload::Workload::busybox(&fixtures)?,
    };

    // The contenders.
    let mut list: Vec<Contender> = Vec::new();
    let mut add = |name: &str, kind: Kind, list: &mut Vec<Contender>| -> usize {
        let idx = list.len();
        list.push(Contender::new(idx, name, kind, &work.0));
        idx
    };
    let mica_version = proc::version(&mica, &["--version"]);
    let i = add("mica run", Kind::MicaRun, &mut list);
    list[i].command = format!("{} run (deletes the container on exit)", mica.display());
    list[i].version = mica_version.clone();
    let i = add("mica create/start/delete", Kind::MicaCsd, &mut list);
    list[i].command = "mica create, start, wait for the process, delete".into();
    list[i].parts = vec!["create", "start", "wait", "delete"];
    setup_launch(
        &mica,
        &workload,
        from_image.as_ref(),
        &work.0,
        &mut list,
        &mut add,
    );

    let hierarchies = host::hierarchies();
    let hybrid = host::hybrid(&hierarchies);
    for v in opts
        .vs
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != "none")
    {
        match v {
            "bwrap" | "bubblewrap" => {
                let i = add(
                    "bubblewrap",
                    Kind::Bwrap {
                        bin: PathBuf::new(),
                    },
                    &mut list,
                );
                list[i].note = "no cgroups".into();
                match proc::which("bwrap") {
                    Some(b) => {
                        list[i].command = format!(
                            "{} --ro-bind ROOTFS / --proc /proc --dev /dev --unshare-all ARGS",
                            b.display()
                        );
                        list[i].version = proc::version(&b, &["--version"]);
                        list[i].kind = Kind::Bwrap { bin: b };
                    }
                    None => {
                        list[i].skipped =
                            Some("bwrap not found (apt-get install bubblewrap)".into())
                    }
                }
            }
            "floor" => {
                let i = add(
                    "floor (unshare+chroot)",
                    Kind::Floor {
                        unshare: PathBuf::new(),
                        chroot: PathBuf::new(),
                    },
                    &mut list,
                );
                list[i].note = "no cgroups, no mounts".into();
                match (proc::which("unshare"), proc::which("chroot")) {
                    (Some(u), Some(c)) => {
                        list[i].command = format!(
                            "{} --fork --pid --mount --uts --ipc --net {} ROOTFS ARGS",
                            u.display(),
                            c.display()
                        );
                        list[i].version = proc::version(&u, &["--version"]);
                        list[i].kind = Kind::Floor {
                            unshare: u,
                            chroot: c,
                        };
                    }
                    _ => {
                        list[i].skipped =
                            Some("unshare or chroot not found (util-linux, coreutils)".into())
                    }
                }
            }
            name => {
                let label = Path::new(name)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or(name.into());
                let i = add(
                    &label,
                    Kind::Oci {
                        bin: PathBuf::new(),
                        absolute_cgroups: false,
                        v1ns: false,
                    },
                    &mut list,
                );
                match proc::which(name) {
                    Some(bin) => {
                        let is_crun = label.contains("crun");
                        // runc reads a relative cgroupsPath beneath its own cgroup, as mica
                        // does; crun and youki from each hierarchy's root, so they get an
                        // absolute path beneath our own cgroup (so does any other runtime).
                        let absolute = !label.contains("runc") || is_crun;
                        list[i].command =
                            format!("{} run (deletes the container on exit)", bin.display());
                        list[i].version = proc::version(&bin, &["--version"]);
                        let mut notes = Vec::new();
                        if is_crun && hybrid {
                            notes.push(
                                "in a private mount namespace whose /sys/fs/cgroup holds only the v1 hierarchies \
                                 (crun 1.8 refuses hybrid cgroups)",
                            );
                        }
                        if absolute {
                            notes.push("cgroupsPath absolute beneath our own cgroup");
                        }
                        list[i].note = notes.join("; ");
                        list[i].kind = Kind::Oci {
                            bin,
                            absolute_cgroups: absolute,
                            v1ns: is_crun && hybrid,
                        };
                    }
                    None => {
                        list[i].skipped = Some(if name == "youki" {
                            "youki not found (cargo install youki --features v1)".into()
                        } else {
                            format!("{name} not found")
                        })
                    }
                }
            }
        }
    }
    if opts.vm {
        let i = add(
            "microVM (qemu)",
            Kind::Floor {
                unshare: PathBuf::new(),
                chroot: PathBuf::new(),
            },
            &mut list,
        );
        progress.show("preparing the microVM (kernel, init, initramfs, accelerator probe)");
        let mut note = String::new();
        match vm::prepare(
            opts.kernel.as_deref(),
            opts.accel,
            &workload.rootfs,
            &workload.args,
            &work.0,
            &mut note,
        ) {
            Ok(v) => {
                list[i].command = format!(
                    "{} -M microvm,accel={} -kernel {} -initrd (rootfs + mica-init)",
                    v.qemu.display(),
                    v.accel,
                    v.kernel.display()
                );
                list[i].version = proc::version(&v.qemu, &["--version"]);
                list[i].note = note;
                list[i].kind = Kind::Vm(Box::new(v));
            }
            Err(e) => list[i].skipped = Some(e),
        }
    }

    // Host set-up: crun's namespace, our cgroup parents.
    let mut cg = host::CgroupPlan::new();
    let needs_v1ns = list
        .iter()
        .any(|c| c.skipped.is_none() && matches!(c.kind, Kind::Oci { v1ns: true, .. }));
    let v1ns = if needs_v1ns {
        match host::V1Namespace::new(&work.0) {
            Ok(n) => Some(n),
            Err(e) => {
                for c in list
                    .iter_mut()
                    .filter(|c| matches!(c.kind, Kind::Oci { v1ns: true, .. }))
                {
                    c.skipped = Some(e.clone());
                }
                None
            }
        }
    } else {
        None
    };
    cg.prepare(list.iter().any(|c| {
        matches!(
            c.kind,
            Kind::Oci {
                absolute_cgroups: true,
                ..
            }
        )
    }));
    let ctx = Ctx {
        work: work.0.clone(),
        mica: mica.clone(),
        workload: &workload,
        cg: &cg,
        v1ns: v1ns.as_ref(),
    };

    let result = measure(opts, &ctx, &mut list, &progress, &fixtures);
    progress.done();
    drop(v1ns);
    notes.extend(cg.cleanup());
    let (contenders, throughput, density, phases, more) = result;
    notes.extend(more);

    let baseline = "mica run".to_string();
    let base = contenders
        .iter()
        .find(|c| c.name == baseline)
        .and_then(|c| c.stats.as_ref())
        .map(|s| s.median);
    let contenders = contenders
        .into_iter()
        .map(|mut c| {
            c.ratio = match (&c.stats, base) {
                (Some(s), Some(b)) => stats::ratio(s.median, b),
                _ => None,
            };
            c
        })
        .collect();
    let report = Report {
        date: host::now_utc(),
        machine: host::machine(),
        workload: workload.description.clone(),
        runs: opts.runs,
        warmup: opts.warmup,
        baseline,
        contenders,
        throughput,
        density,
        phases,
        notes,
    };
    write_outputs(opts, &report)?;
    Ok(report)
}

type Measured = (
    Vec<report::ContenderResult>,
    Vec<report::ThroughputRow>,
    Vec<report::DensityRow>,
    Vec<report::Phase>,
    Vec<String>,
);

/// Warm-up, the alternating rounds, phases, throughput, density.
fn measure(
    opts: &BenchOptions,
    ctx: &Ctx,
    list: &mut [Contender],
    progress: &Progress,
    fixtures: &Path,
) -> Measured {
    let n = list.len();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    let mut failures: Vec<(usize, Option<String>)> = vec![(0, None); n];
    let is_vm = |c: &Contender| matches!(c.kind, Kind::Vm(_));

    // Warm-up, alternating; a contender that fails here is skipped with the reason.
    for round in 0..opts.warmup {
        for j in round_order(n, round) {
            let c = &mut list[j];
            if c.skipped.is_some() || is_vm(c) {
                continue;
            }
            progress.show(&format!(
                "warm-up {}/{}  {}",
                round + 1,
                opts.warmup,
                c.name
            ));
            if let Err(e) = c.once(ctx, 0) {
                c.skipped = Some(format!("fails on this host: {e}"));
            }
        }
    }
    let vm_runs = opts.vm_runs.min(opts.runs);
    for round in 0..opts.runs {
        let vm_round = (round * vm_runs) / opts.runs != ((round + 1) * vm_runs) / opts.runs;
        for j in round_order(n, opts.warmup + round) {
            let c = &list[j];
            if c.skipped.is_some() || (is_vm(c) && !vm_round) {
                continue;
            }
            progress.show(&format!("round {}/{}  {}", round + 1, opts.runs, c.name));
            match c.once(ctx, 0) {
                Ok(s) => samples[j].push(s),
                Err(e) => {
                    failures[j].0 += 1;
                    failures[j].1.get_or_insert(e);
                }
            }
        }
    }
    // A contender that never once worked is skipped, with the reason.
    for (j, c) in list.iter_mut().enumerate() {
        if c.skipped.is_none() && samples[j].is_empty() {
            c.skipped = Some(format!(
                "fails on this host: {}",
                failures[j].1.clone().unwrap_or_default()
            ));
        }
    }

    let mut notes = Vec::new();
    // Phases of mica run.
    progress.show("phases (MICA_TRACE=1)");
    let phases = phases(ctx, &list[0], 5);
    if phases.is_empty() {
        notes.push(
            "MICA_TRACE=1 produced no phase timings: this mica build has no trace points yet"
                .into(),
        );
    }

    // Throughput and density: mica run against the other runtimes.
    let active: Vec<&Contender> = list
        .iter()
        .filter(|c| {
            c.skipped.is_none()
                && matches!(
                    c.kind,
                    Kind::MicaRun | Kind::Oci { .. } | Kind::Bwrap { .. } | Kind::Floor { .. }
                )
        })
        .collect();
    let show = |m: &str| progress.show(m);
    let throughput = if opts.throughput > 0 {
        load::throughput(ctx, &active, &opts.concurrency, opts.throughput, &show)
    } else {
        Vec::new()
    };
    let density = if opts.density > 0 {
        let runtimes: Vec<&Contender> = active
            .iter()
            .copied()
            .filter(|c| c.runtime_bin(ctx).is_some())
            .collect();
        let probe = fixtures.join("probe-only");
        let idle = if probe.join("mica-probe").exists() {
            workload::Workload::on_rootfs(
                &probe,
                &["/mica-probe", "--sleep", "inf", "--quiet"],
                "mica-probe --sleep inf",
            )
        } else {
            workload::Workload::on_rootfs(&ctx.workload.rootfs, &["/bin/sleep", "100000"], "sleep")
        };
        match idle {
            Ok(idle) => load::density(ctx, &runtimes, opts.density, &idle, &show),
            Err(e) => {
                notes.push(format!("density skipped: {e}"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };

    let results = list
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let s = &samples[j];
            let ms: Vec<f64> = s.iter().map(|x| x.ms).collect();
            let rss: Vec<u64> = s.iter().map(|x| x.rss_kib).collect();
            report::ContenderResult {
                name: c.name.clone(),
                command: c.command.clone(),
                version: c.version.clone(),
                note: c.note.clone(),
                skipped: c.skipped.clone(),
                stats: if c.skipped.is_none() {
                    stats::Stats::of(&ms)
                } else {
                    None
                },
                peak_rss_kib: rss.iter().copied().max(),
                samples_ms: ms,
                part_names: c.parts.iter().map(|p| p.to_string()).collect(),
                parts_ms: if c.parts.is_empty() {
                    Vec::new()
                } else {
                    s.iter().map(|x| x.parts_ms.clone()).collect()
                },
                rss_kib: rss,
                ratio: None,
                failures: failures[j].0,
                first_failure: failures[j].1.clone(),
            }
        })
        .collect();
    (results, throughput, density, phases, notes)
}

/// The order of the contenders in round `round`: a fresh (deterministic)
/// shuffle each round, so no contender always follows the same one. Order
/// matters here: a cgroup migration right after another one is cheap, one
/// after a contender without cgroups waits for an RCU grace period.
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    // xorshift64*, seeded by the round
    let mut x = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..n).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
    v
}

/// `mica run` with `MICA_TRACE=1`, `n` times: the median of each phase.
fn phases(ctx: &Ctx, mica_run: &Contender, n: usize) -> Vec<report::Phase> {
    let mut by_name: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..n {
        let id = mica_run.new_id();
        let bundle = ctx.work.join("bundles").join("trace");
        if ctx
            .workload
            .write_bundle(&bundle, &ctx.cg.path(&id, false))
            .is_err()
        {
            break;
        }
        let Ok(mut out) = proc::Output::new(&ctx.work.join("out"), "trace") else {
            break;
        };
        let mut cmd = mica_run.rt(
            &ctx.mica,
            &["run", "--bundle", &bundle.to_string_lossy(), &id],
        );
        cmd.env("MICA_TRACE", "1");
        let spawn = proc::Spawn {
            mount_ns: None,
            timeout: Some(contender::TIMEOUT),
            output: Some(&out),
            timed: false,
        };
        if !proc::run(&mut cmd, &spawn).is_ok_and(|o| o.ok()) {
            mica_run.force_delete(ctx, &ctx.mica, &id);
            continue;
        }
        for (name, ms) in out.stderr().lines().filter_map(trace::parse_line) {
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(ms),
                None => by_name.push((name, vec![ms])),
            }
        }
    }
    by_name
        .into_iter()
        .map(|(name, v)| report::Phase {
            median_ms: stats::median(&v).unwrap_or(0.0),
            samples: v.len(),
            name,
        })
        .collect()
}

/// The `mica launch` contenders: skipped rows unless this mica has
/// `launch` (and `image import`).
fn setup_launch(
    mica: &Path,
    workload: &workload::Workload,
    from_image: Option<&from_image::FromImage>,
    work: &Path,
    list: &mut Vec<Contender>,
    add: &mut dyn FnMut(&str, Kind, &mut Vec<Contender>) -> usize,
) {
    let warm = add(
        "mica launch --rm (warm store)",
        Kind::MicaLaunch {
            reference: String::new(),
            store: PathBuf::new(),
        },
        list,
    );
    let cold = add(
        "mica import + launch (cold)",
        Kind::MicaLaunchCold {
            layout: PathBuf::new(),
        },
        list,
    );
    list[cold].parts = vec!["import", "launch"];
    let has = |args: &[&str]| {
        Command::new(mica)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&["launch", "--help"]) || !has(&["image", "import", "--help"]) {
        let why = "this mica has no `launch`/`image import` yet".to_string();
        list[warm].skipped = Some(why.clone());
        list[cold].skipped = Some(why);
        return;
    }
    if let Some(f) = from_image {
        list[warm].command = format!(
            "MICA_STORE=STORE mica launch --rm {} (the image's command)",
            f.reference
        );
        list[warm].kind = Kind::MicaLaunch {
            reference: f.reference.clone(),
            store: f.store.clone(),
        };
        match &f.path {
            Some(p) => {
                list[cold].command = format!(
                    "mica image import {} (empty store), then mica launch --rm",
                    p.display()
                );
                list[cold].kind = Kind::MicaLaunchCold { layout: p.clone() };
            }
            None => {
                list[cold].skipped =
                    Some("IMAGE is a name in the store, not a path to import".into())
            }
        }
        return;
    }
    let layout = work.join("image");
    if let Err(e) = image::build_layout(&workload.rootfs, &workload.args, &layout) {
        list[warm].skipped = Some(format!("building the image: {e}"));
        list[cold].skipped = list[warm].skipped.clone();
        return;
    }
    let store = work.join("stores/warm");
    let imported = proc::helper(
        Command::new(mica)
            .env("MICA_STORE", &store)
            .args(["image", "import", "--name", image::REFERENCE])
            .arg(&layout),
    );
    match imported {
        Ok(_) => {
            list[warm].command = format!(
                "MICA_STORE=STORE mica launch --rm {} (the image's command)",
                image::REFERENCE
            );
            list[warm].kind = Kind::MicaLaunch {
                reference: image::REFERENCE.into(),
                store,
            };
        }
        Err(e) => list[warm].skipped = Some(format!("image import fails: {e}")),
    }
    list[cold].command = "mica image import LAYOUT (empty store), then mica launch --rm".into();
    list[cold].kind = Kind::MicaLaunchCold { layout };
}

fn write_outputs(opts: &BenchOptions, report: &Report) -> Result<(), Error> {
    for p in [&opts.json, &opts.svg, &opts.markdown]
        .into_iter()
        .flatten()
    {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("mkdir {}", d.display()), e))?;
        }
    }
    if let Some(p) = &opts.json {
        std::fs::write(p, report.json()? + "\n")
            .map_err(|e| Error::io(format!("write {}", p.display()), e))?;
    }
    if let Some(p) = &opts.svg {
        svg::write(report, p).map_err(|e| Error::Setup(format!("write {}: {e}", p.display())))?;
    }
    if let Some(p) = &opts.markdown {
        // The chart, relative to the Markdown file when they share a directory.
        let svg = opts.svg.as_ref().map(|s| match (s.parent(), p.parent()) {
            (Some(a), Some(b)) if a == b => s
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            _ => s.display().to_string(),
        });
        std::fs::write(p, report.markdown(svg.as_deref()))
            .map_err(|e| Error::io(format!("write {}", p.display()), e))?;
    }
    Ok(())
}
