//! What a bench found, and how it is shown: the terminal table, Markdown
//! (bench/RESULTS.md) and JSON.

use super::host::Machine;
use super::stats::Stats;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    pub machine: Machine,
    pub workload: String,
    pub runs: usize,
    pub warmup: usize,
    /// The contender the ratios are taken against.
    pub baseline: String,
    pub contenders: Vec<ContenderResult>,
    pub throughput: Vec<ThroughputRow>,
    pub density: Vec<DensityRow>,
    /// Median time of each `MICA_TRACE` phase of `mica run`.
    pub phases: Vec<Phase>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContenderResult {
    pub name: String,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Why it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Every measured start, in run order, ms.
    pub samples_ms: Vec<f64>,
    /// Names of the timed steps (e.g. create, start, wait, delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_names: Vec<String>,
    /// Per sample, the time of each step, ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts_ms: Vec<Vec<f64>>,
    /// Peak RSS of the runtime's process per sample, KiB.
    pub rss_kib: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// median / the baseline's median
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// max of `rss_kib`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
    /// Failed starts (not in the samples), with the first reason.
    pub failures: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThroughputRow {
    pub name: String,
    pub concurrency: usize,
    pub started: usize,
    pub failed: usize,
    pub seconds: f64,
    /// containers started (and removed) per second
    pub per_second: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Why the first failed start failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DensityRow {
    pub name: String,
    pub containers: usize,
    /// Drop of MemAvailable per container, KiB.
    pub mem_available_kib: Option<f64>,
    /// Growth of our memory cgroup's usage per container (the containers'
    /// cgroups are beneath it), KiB.
    pub cgroup_kib: Option<f64>,
    /// What each container's own memory cgroup is charged, median, KiB: its
    /// processes' memory and the kernel objects its process made after
    /// joining (namespaces, mounts). Read from the containers' cgroups, so
    /// unlike the two host-wide figures no other process's drift enters it.
    #[serde(default)]
    pub container_cgroup_kib: Option<f64>,
    /// RSS of the containers' own processes per container, KiB.
    pub container_rss_kib: Option<f64>,
    /// Processes of the runtime still alive while the containers idle (a shim).
    pub runtime_processes: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub median_ms: f64,
    pub samples: usize,
}

pub fn fmt_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
        None => "-".into(),
    }
}

/// The row's remark: its note, failures, or why it was skipped.
fn remark(c: &ContenderResult) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &c.skipped {
        return format!("skipped: {s}");
    }
    if !c.note.is_empty() {
        parts.push(c.note.clone());
    }
    if c.failures > 0 {
        parts.push(format!(
            "{} failed start(s): {}",
            c.failures,
            c.first_failure.as_deref().unwrap_or("?")
        ));
    }
    parts.join("; ")
}

const HEAD: [&str; 9] = [
    "contender",
    "median",
    "p90",
    "p99",
    "min",
    "max",
    "ratio",
    "peak RSS",
    "note",
];

fn cells(c: &ContenderResult) -> Vec<String> {
    match (&c.stats, &c.skipped) {
        (Some(s), None) => vec![
            c.name.clone(),
            fmt_ms(s.median),
            fmt_ms(s.p90),
            fmt_ms(s.p99),
            fmt_ms(s.min),
            fmt_ms(s.max),
            fmt_ratio(c.ratio),
            c.peak_rss_kib.map(fmt_mib).unwrap_or_else(|| "-".into()),
            remark(c),
        ],
        _ => {
            let mut v = vec![c.name.clone()];
            v.extend(vec!["-".to_string(); 7]);
            v.push(if c.skipped.is_some() {
                remark(c)
            } else {
                format!("no successful start; {}", remark(c))
            });
            v
        }
    }
}

impl Report {
    /// The start-up table as plain text (times in ms).
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self.contenders.iter().map(cells).collect();
        let mut w = [0usize; 8];
        for r in std::iter::once(HEAD.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .chain(rows.iter().cloned())
        {
            for (i, c) in r.iter().take(8).enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, r: &[String]| {
            let mut s = format!("{:<w0$}", r[0], w0 = w[0]);
            for i in 1..8 {
                let _ = write!(s, "  {:>wi$}", r[i], wi = w[i]);
            }
            if !r[8].is_empty() {
                let _ = write!(s, "  {}", r[8]);
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        let head: Vec<String> = HEAD.iter().map(|s| s.to_string()).collect();
        line(&mut out, &head);
        for r in &rows {
            line(&mut out, r);
        }
        let _ = writeln!(
            out,
            "times in ms over {} runs ({} warm-up), contenders alternating in a new random order each round; ratio = median / {}'s median",
            self.runs, self.warmup, self.baseline
        );
        out
    }

    pub fn throughput_table(&self, md: bool) -> String {
        let head = [
            "contender",
            "concurrency",
            "started/s",
            "ratio",
            "started",
            "failed",
            "seconds",
            "note",
        ];
        let rows: Vec<Vec<String>> = self
            .throughput
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.concurrency.to_string(),
                    format!("{:.1}", t.per_second),
                    fmt_ratio(t.ratio),
                    t.started.to_string(),
                    t.failed.to_string(),
                    format!("{:.2}", t.seconds),
                    t.first_failure
                        .as_ref()
                        .map(|f| format!("first failure: {f}"))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        grid(&head, &rows, md)
    }

    pub fn density_table(&self, md: bool) -> String {
        let head = [
            "contender",
            "containers",
            "MemAvailable/ctr",
            "cgroup/ctr",
            "own cgroup/ctr",
            "process RSS/ctr",
            "runtime procs left",
            "note",
        ];
        let kib = |v: Option<f64>| {
            v.map(|k| format!("{:.0} KiB", k))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<Vec<String>> = self
            .density
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.containers.to_string(),
                    kib(d.mem_available_kib),
                    kib(d.cgroup_kib),
                    kib(d.container_cgroup_kib),
                    kib(d.container_rss_kib),
                    d.runtime_processes.to_string(),
                    d.note.clone(),
                ]
            })
            .collect();
        grid(&head, &rows, md)
    }

    pub fn phases_table(&self, md: bool) -> String {
        let head = ["phase", "median ms", "samples"];
        let rows: Vec<Vec<String>> = self
            .phases
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    format!("{:.3}", p.median_ms),
                    p.samples.to_string(),
                ]
            })
            .collect();
        grid(&head, &rows, md)
    }

    /// Everything, for the terminal.
    pub fn text(&self) -> String {
        let mut s = self.table();
        if !self.throughput.is_empty() {
            s.push_str("\nthroughput (containers started and removed per second):\n");
            s.push_str(&self.throughput_table(false));
        }
        if !self.density.is_empty() {
            s.push_str("\nidle detached containers (memory per container):\n");
            s.push_str(&self.density_table(false));
        }
        if !self.phases.is_empty() {
            s.push_str("\nmica run phases (MICA_TRACE=1, medians):\n");
            s.push_str(&self.phases_table(false));
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }

    /// bench/RESULTS.md
    pub fn markdown(&self, svg: Option<&str>) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "# mica bench results\n");
        let _ = writeln!(s, "Written by `mica bench` on {}.\n", self.date);
        let _ = writeln!(
            s,
            "Machine: {}, {} CPU(s) ({}), {} MiB, {}, cgroups {}.\n",
            m.os, m.cpus, m.cpu, m.memory_mib, m.kernel, m.cgroups
        );
        let _ = writeln!(
            s,
            "Workload: {}. {} measured runs per contender after {} warm-up runs, the contenders \
             alternating round by round (in a new random order each round) so drift hits all alike. Times in ms, from spawning the \
             command to its exit (including removing the container); ratio = median / {}'s \
             median; peak RSS = `ru_maxrss` of the runtime's process (the max over its commands).\n",
            self.workload, self.runs, self.warmup, self.baseline
        );
        let rows: Vec<Vec<String>> = self.contenders.iter().map(cells).collect();
        s.push_str(&grid(&HEAD, &rows, true));
        if let Some(svg) = svg {
            let _ = writeln!(s, "\n![start-up distributions]({svg})");
        }
        let versions: Vec<String> = self
            .contenders
            .iter()
            .filter_map(|c| c.version.as_ref().map(|v| format!("{}: {v}", c.name)))
            .collect();
        if !versions.is_empty() {
            let _ = writeln!(s, "\nVersions: {}.", versions.join("; "));
        }
        if !self.throughput.is_empty() {
            let _ = writeln!(s, "\n## Throughput\n\nContainers started, run and removed per second with N starts in flight (ratio to {} at the same concurrency). The contenders take turns, in up to {} rounds per level, so drift hits all alike; throughput starts are not timed one by one, so they skip the stopwatch.\n", self.baseline, super::load::ROUNDS);
            s.push_str(&self.throughput_table(true));
        }
        if !self.density.is_empty() {
            let _ = writeln!(s, "\n## Idle detached containers\n\nWhat the host spends per idle detached container (`run --detach` of a sleeping probe), and how many runtime processes stay behind. MemAvailable and cgroup (our own memory cgroup, the containers' cgroups beneath it) are deltas across starting them all, so anything else the machine does in that second enters them (on a shared machine they can even come out negative); own cgroup is the median of what each container's own memory cgroup is charged (its processes and the kernel objects made after joining it), and process RSS what its processes map.\n");
            s.push_str(&self.density_table(true));
        }
        if !self.phases.is_empty() {
            let _ = writeln!(
                s,
                "\n## Where `mica run` spends its time\n\n`MICA_TRACE=1` phase timings, medians.\n"
            );
            s.push_str(&self.phases_table(true));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// A text (aligned) or Markdown table; numeric-looking columns right-aligned.
pub fn grid(head: &[&str], rows: &[Vec<String>], md: bool) -> String {
    let n = head.len();
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..n)
        .map(|i| {
            i > 0
                && !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r[i].starts_with(|c: char| c.is_ascii_digit() || c == '-'))
        })
        .collect();
    let mut out = String::new();
    let fmt_row = |r: &[String]| -> String {
        let cells: Vec<String> = (0..n)
            .map(|i| {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                let c = if md {
                    c.replace('|', "\\|")
                } else {
                    c.to_string()
                };
                if numeric[i] {
                    format!("{:>w$}", c, w = w[i])
                } else {
                    format!("{:<w$}", c, w = w[i])
                }
            })
            .collect();
        if md {
            format!("| {} |", cells.join(" | "))
        } else {
            cells.join("  ").trim_end().to_string()
        }
    };
    let h: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    out.push_str(&fmt_row(&h));
    out.push('\n');
    if md {
        let seps: Vec<String> = (0..n)
            .map(|i| {
                if numeric[i] {
                    format!("{}:", "-".repeat(w[i].max(2) - 1))
                } else {
                    "-".repeat(w[i].max(3))
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", seps.join(" | "));
    }
    for r in rows {
        out.push_str(&fmt_row(r));
        out.push('\n');
    }
    out
}
