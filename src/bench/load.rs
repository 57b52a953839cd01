//! Throughput (starts per second with N in flight) and density (what the
//! host spends per idle detached container).

use super::contender::{Contender, Ctx};
use super::host;
use super::proc::{self, Output, Spawn};
use super::report::{DensityRow, ThroughputRow};
use super::workload::Workload;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Rounds per concurrency level: the contenders take turns, each starting
/// its share of the containers per round (in a new order each round, as the
/// timed rounds), so drift on a shared machine hits all alike. Short turns
/// follow the drift closely: with four, a contender's quarter could fall in
/// a fast or slow second of this shared machine and move a ratio by 10-20%.
pub(super) const ROUNDS: usize = 12;

/// What one contender did at one concurrency level, summed over the rounds.
#[derive(Default)]
struct Batch {
    started: usize,
    failed: usize,
    seconds: f64,
    first_failure: Option<String>,
}

/// Start `n` containers of `c` with `conc` in flight.
fn batch(ctx: &Ctx, c: &Contender, conc: usize, n: usize) -> Batch {
    let next = AtomicUsize::new(0);
    let ok = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let first_failure = std::sync::Mutex::new(None::<String>);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for slot in 0..conc {
            let (next, ok, failed, first) = (&next, &ok, &failed, &first_failure);
            s.spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    match c.start(ctx, 100 + slot, false) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = first.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    Batch {
        started: ok.into_inner(),
        failed: failed.into_inner(),
        seconds: t0.elapsed().as_secs_f64(),
        first_failure: first_failure.into_inner().unwrap_or(None),
    }
}

/// Start `total` containers with `concurrency` in flight, for each
/// contender, in rounds the contenders take turns in (see [`ROUNDS`]).
pub fn throughput(
    ctx: &Ctx,
    contenders: &[&Contender],
    levels: &[usize],
    total: usize,
    progress: &dyn Fn(&str),
) -> Vec<ThroughputRow> {
    let mut rows = Vec::new();
    for &conc in levels {
        let conc = conc.max(1);
        let total = total.max(conc);
        // Each round keeps every slot busy: at least `conc` starts.
        let rounds = (total / conc).clamp(1, ROUNDS);
        let mut sums: Vec<Batch> = contenders.iter().map(|_| Batch::default()).collect();
        for round in 0..rounds {
            let n = total / rounds + usize::from(round < total % rounds);
            for i in super::round_order(contenders.len(), round) {
                let c = contenders[i];
                progress(&format!(
                    "throughput: {} at concurrency {conc}, round {}/{rounds}",
                    c.name,
                    round + 1
                ));
                let b = batch(ctx, c, conc, n);
                let sum = &mut sums[i];
                sum.started += b.started;
                sum.failed += b.failed;
                sum.seconds += b.seconds;
                if sum.first_failure.is_none() {
                    sum.first_failure = b.first_failure;
                }
            }
        }
        let mut level: Vec<ThroughputRow> = contenders
            .iter()
            .zip(sums)
            .map(|(c, b)| ThroughputRow {
                name: c.name.clone(),
                concurrency: conc,
                started: b.started,
                failed: b.failed,
                seconds: b.seconds,
                per_second: if b.seconds > 0.0 {
                    b.started as f64 / b.seconds
                } else {
                    0.0
                },
                ratio: None,
                first_failure: b.first_failure,
            })
            .collect();
        let base = level
            .iter()
            .find(|r| r.name.starts_with("mica"))
            .map(|r| r.per_second);
        for r in &mut level {
            r.ratio = base.and_then(|b| super::stats::ratio(r.per_second, b));
        }
        rows.extend(level);
    }
    rows
}

/// Our own memory cgroup's usage in bytes (v1 or v2).
fn own_memory_usage() -> Option<u64> {
    let h = host::hierarchies();
    for x in &h {
        let f = if x.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        };
        let is_mem = if x.v2 {
            x.own_dir().join(f).exists()
        } else {
            x.mount.ends_with("memory")
        };
        if is_mem {
            if let Ok(s) = std::fs::read_to_string(x.own_dir().join(f)) {
                return s.trim().parse().ok();
            }
        }
    }
    None
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    })
}

/// Processes (other than us) running the binary `bin`.
fn processes_of(bin: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let bin = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| {
                    *p != me && std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|x| x == bin)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Container `id`'s memory cgroup directory (where a contender put it) and
/// the file holding its usage: v1 `memory.usage_in_bytes`, or cgroup2's
/// `memory.current` where no v1 hierarchy has the memory controller.
fn container_memory_cgroup(ctx: &Ctx, id: &str, absolute: bool) -> Option<(PathBuf, &'static str)> {
    let path = ctx.cg.path(id, absolute);
    let dir = |h: &host::Hierarchy| {
        if absolute {
            h.mount.join(path.trim_start_matches('/'))
        } else {
            h.own_dir().join(&path)
        }
    };
    let hs = &ctx.cg.hierarchies;
    if let Some(h) = hs.iter().find(|h| !h.v2 && h.mount.ends_with("memory")) {
        return Some((dir(h), "memory.usage_in_bytes"));
    }
    hs.iter()
        .filter(|h| h.v2)
        .map(|h| (dir(h), "memory.current"))
        .find(|(d, f)| d.join(f).exists())
}

/// The pids in container `id`'s memory cgroup.
fn container_pids(ctx: &Ctx, id: &str, absolute: bool) -> Vec<i32> {
    let Some((dir, _)) = container_memory_cgroup(ctx, id, absolute) else {
        return Vec::new();
    };
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// What container `id`'s own memory cgroup is charged, KiB.
fn container_memory_kib(ctx: &Ctx, id: &str, absolute: bool) -> Option<f64> {
    let (dir, file) = container_memory_cgroup(ctx, id, absolute)?;
    let bytes: u64 = std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(bytes as f64 / 1024.0)
}

/// Start `n` idle detached containers per contender, measure, remove them.
pub fn density(
    ctx: &Ctx,
    contenders: &[&Contender],
    n: usize,
    idle: &Workload,
    progress: &dyn Fn(&str),
) -> Vec<DensityRow> {
    let mut rows = Vec::new();
    let idle_ctx = Ctx {
        work: ctx.work.clone(),
        mica: ctx.mica.clone(),
        workload: idle,
        cg: ctx.cg,
        v1ns: ctx.v1ns,
    };
    for c in contenders {
        let Some(bin) = c.runtime_bin(ctx) else {
            continue;
        };
        progress(&format!("density: {} x{n}", c.name));
        let absolute = matches!(
            c.kind,
            super::contender::Kind::Oci {
                absolute_cgroups: true,
                ..
            }
        );
        std::thread::sleep(Duration::from_millis(300));
        let avail0 = host::meminfo("MemAvailable");
        let cg0 = own_memory_usage();
        let mut ids = Vec::new();
        let mut note = String::new();
        let mut out = match Output::new(&ctx.work.join("out"), &format!("density-{}", c.idx)) {
            Ok(o) => o,
            Err(e) => {
                note = format!("output files: {e}");
                rows.push(DensityRow {
                    name: c.name.clone(),
                    containers: 0,
                    note,
                    ..Default::default()
                });
                continue;
            }
        };
        for k in 0..n {
            let id = c.new_id();
            let bundle = ctx
                .work
                .join("bundles")
                .join(format!("density-{}-{k}", c.idx));
            if let Err(e) = idle_ctx
                .workload
                .write_bundle(&bundle, &ctx.cg.path(&id, absolute))
            {
                note = format!("write bundle: {e}");
                break;
            }
            let _ = out.reset();
            let mut cmd = c.rt(
                bin,
                &[
                    "run",
                    "--detach",
                    "--bundle",
                    &bundle.to_string_lossy(),
                    &id,
                ],
            );
            let spawn = Spawn {
                mount_ns: c.spawn_opts_ns(ctx),
                timeout: Some(super::contender::TIMEOUT),
                output: Some(&out),
                timed: false,
            };
            match proc::run(&mut cmd, &spawn) {
                Ok(o) if o.ok() => ids.push(id),
                Ok(o) => {
                    note = format!("run --detach exited {}: {}", o.status, out.last_err_line());
                    c.force_delete(ctx, bin, &id);
                    break;
                }
                Err(e) => {
                    note = format!("spawn: {e}");
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let avail1 = host::meminfo("MemAvailable");
        let cg1 = own_memory_usage();
        let procs = processes_of(bin).len();
        let rss: u64 = ids
            .iter()
            .flat_map(|id| container_pids(ctx, id, absolute))
            .filter_map(rss_kib)
            .sum();
        let m = ids.len();
        let per = |d: Option<f64>| if m > 0 { d.map(|d| d / m as f64) } else { None };
        rows.push(DensityRow {
            name: c.name.clone(),
            containers: m,
            mem_available_kib: per(avail0.zip(avail1).map(|(a, b)| a as f64 - b as f64)),
            cgroup_kib: per(cg0.zip(cg1).map(|(a, b)| (b as f64 - a as f64) / 1024.0)),
            container_cgroup_kib: super::stats::median(
                &ids.iter()
                    .filter_map(|id| container_memory_kib(ctx, id, absolute))
                    .collect::<Vec<_>>(),
            ),
            container_rss_kib: per(Some(rss as f64)),
            runtime_processes: procs,
            note,
        });
        for id in &ids {
            c.force_delete(ctx, bin, id);
        }
    }
    rows
}
