//! Statistics and output on fixed inputs. No test here asserts a duration.

use super::report::{ContenderResult, DensityRow, Phase, Report, ThroughputRow};
use super::stats::{self, Stats};
use super::*;

#[test]
fn percentiles_interpolate_between_ranks() {
    let v = [5.0, 1.0, 4.0, 2.0, 3.0];
    assert_eq!(stats::median(&v), Some(3.0));
    assert_eq!(stats::percentile(&v, 0.0), Some(1.0));
    assert_eq!(stats::percentile(&v, 100.0), Some(5.0));
    assert_eq!(stats::percentile(&v, 25.0), Some(2.0));
    // (n-1)*0.9 = 3.6 -> 4 + 0.6*(5-4)
    assert!((stats::percentile(&v, 90.0).unwrap() - 4.6).abs() < 1e-9);
    // even count: the mean of the middle two
    assert_eq!(stats::median(&[1.0, 2.0, 3.0, 10.0]), Some(2.5));
    assert_eq!(stats::median(&[7.0]), Some(7.0));
    assert_eq!(stats::median(&[]), None);
    assert_eq!(stats::percentile(&[1.0, 2.0], 150.0), Some(2.0));
}

#[test]
fn stats_of_fixed_sample() {
    let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
    let s = Stats::of(&v).unwrap();
    assert_eq!(s.n, 100);
    assert_eq!(s.median, 50.5);
    assert!((s.p90 - 90.1).abs() < 1e-9);
    assert!((s.p99 - 99.01).abs() < 1e-9);
    assert_eq!((s.min, s.max), (1.0, 100.0));
    assert_eq!(s.mean, 50.5);
    assert_eq!(Stats::quartiles(&v), Some((25.75, 75.25)));
    assert!(Stats::of(&[]).is_none());
    assert_eq!(stats::ratio(10.0, 4.0), Some(2.5));
    assert_eq!(stats::ratio(1.0, 0.0), None);
}

fn fixed_report() -> Report {
    let c = |name: &str, samples: &[f64], rss: u64, ratio: Option<f64>| ContenderResult {
        name: name.into(),
        command: format!("{name} run"),
        samples_ms: samples.to_vec(),
        rss_kib: vec![rss; samples.len()],
        stats: Stats::of(samples),
        ratio,
        peak_rss_kib: Some(rss),
        ..Default::default()
    };
    Report {
        date: "2025-01-02T03:04:05Z".into(),
        machine: host::Machine {
            os: "Debian GNU/Linux 12".into(),
            kernel: "Linux 6.1 x86_64".into(),
            cpu: "Test CPU".into(),
            cpus: 2,
            memory_mib: 1024,
            cgroups: "v1".into(),
        },
        workload: "/bin/true in a test rootfs".into(),
        runs: 3,
        warmup: 1,
        baseline: "mica run".into(),
        contenders: vec![
            c("mica run", &[4.0, 5.0, 6.0], 4096, Some(1.0)),
            c("runc", &[40.0, 42.0, 44.0], 10240, Some(8.4)),
            ContenderResult {
                name: "youki".into(),
                skipped: Some("youki not found".into()),
                ..Default::default()
            },
        ],
        throughput: vec![ThroughputRow {
            name: "mica run".into(),
            concurrency: 4,
            started: 48,
            failed: 0,
            seconds: 0.5,
            per_second: 96.0,
            ratio: Some(1.0),
            first_failure: None,
        }],
        density: vec![DensityRow {
            name: "mica run".into(),
            containers: 20,
            mem_available_kib: Some(512.0),
            cgroup_kib: Some(300.0),
            container_cgroup_kib: Some(250.0),
            container_rss_kib: Some(200.0),
            runtime_processes: 0,
            note: String::new(),
        }],
        phases: vec![Phase {
            name: "clone".into(),
            median_ms: 0.25,
            samples: 5,
        }],
        notes: vec!["a note".into()],
    }
}

#[test]
fn table_on_fixed_input() {
    let t = fixed_report().table();
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("contender"), "{t}");
    for h in [
        "median", "p90", "p99", "min", "max", "ratio", "peak RSS", "note",
    ] {
        assert!(lines[0].contains(h), "{h} missing: {t}");
    }
    let mica: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &mica[..9],
        &["mica", "run", "5.00", "5.80", "5.98", "4.00", "6.00", "1.00×", "4.0"],
        "{t}"
    );
    let runc: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &runc[..8],
        &["runc", "42.00", "43.60", "43.96", "40.00", "44.00", "8.40×", "10.0"],
        "{t}"
    );
    assert!(
        lines[3].starts_with("youki") && lines[3].ends_with("skipped: youki not found"),
        "{t}"
    );
    assert!(lines[4].contains("3 runs (1 warm-up)"), "{t}");
    let text = fixed_report().text();
    assert!(
        text.contains("throughput") && text.contains("96.0") && text.contains("512 KiB"),
        "{text}"
    );
    let density: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("idle detached"))
        .skip(1)
        .take(2)
        .collect();
    assert!(density[0].contains("own cgroup/ctr"), "{text}");
    let row: Vec<&str> = density[1].split_whitespace().collect();
    assert_eq!(
        row,
        ["mica", "run", "20", "512", "KiB", "300", "KiB", "250", "KiB", "200", "KiB", "0"],
        "{text}"
    );
    assert!(text.contains("note: a note"), "{text}");
}

#[test]
fn markdown_on_fixed_input() {
    let md = fixed_report().markdown(Some("startup.svg"));
    assert!(md.contains("| contender "), "{md}");
    assert!(md.contains("| mica run "), "{md}");
    assert!(md.contains("skipped: youki not found"), "{md}");
    assert!(
        md.contains("![start-up distributions](startup.svg)"),
        "{md}"
    );
    assert!(
        md.contains("2025-01-02T03:04:05Z") && md.contains("Test CPU"),
        "{md}"
    );
    assert!(
        md.contains("## Throughput") && md.contains("## Idle detached containers"),
        "{md}"
    );
    // every table row has the header's number of cells
    for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let counts: Vec<usize> = block.lines().map(|l| l.matches(" | ").count()).collect();
        assert!(counts.windows(2).all(|w| w[0] == w[1]), "{block}");
    }
}

#[test]
fn json_on_fixed_input() {
    let r = fixed_report();
    let v: serde_json::Value = serde_json::from_str(&r.json().unwrap()).unwrap();
    assert_eq!(
        v["contenders"][0]["samples_ms"],
        serde_json::json!([4.0, 5.0, 6.0])
    );
    assert_eq!(v["contenders"][0]["stats"]["median"], 5.0);
    assert_eq!(v["contenders"][1]["stats"]["p90"].as_f64().unwrap(), 43.6);
    assert_eq!(v["contenders"][1]["ratio"], 8.4);
    assert_eq!(v["contenders"][1]["peak_rss_kib"], 10240);
    assert_eq!(v["contenders"][2]["skipped"], "youki not found");
    assert!(v["contenders"][2].get("stats").is_none());
    assert_eq!(v["throughput"][0]["per_second"], 96.0);
    assert_eq!(v["density"][0]["container_cgroup_kib"], 250.0);
    assert_eq!(v["machine"]["cpus"], 2);
    // it reads back
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back.contenders.len(), 3);
}

#[test]
fn svg_on_fixed_input() {
    let dir = std::env::temp_dir().join(format!("mica-bench-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.svg");
    svg::write(&fixed_report(), &p).unwrap();
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("mica run") && s.contains("runc"),
        "{s}"
    );
    assert!(!s.contains("youki"), "skipped contenders have no row");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rounds_are_permutations_that_vary() {
    let orders: Vec<Vec<usize>> = (0..20).map(|r| round_order(7, r)).collect();
    for o in &orders {
        let mut s = o.clone();
        s.sort();
        assert_eq!(s, (0..7).collect::<Vec<_>>());
    }
    assert_eq!(orders[3], round_order(7, 3), "deterministic");
    // who runs right before contender 0 changes from round to round
    let before0: std::collections::HashSet<Option<usize>> = orders
        .iter()
        .map(|o| {
            o.iter()
                .position(|&j| j == 0)
                .and_then(|p| p.checked_sub(1))
                .map(|p| o[p])
        })
        .collect();
    assert!(before0.len() > 3, "{before0:?}");
    assert_eq!(round_order(1, 5), vec![0]);
    assert!(round_order(0, 5).is_empty());
}

#[test]
fn trace_lines_round_trip() {
    let l = trace::format_line("config parse", std::time::Duration::from_micros(1500));
    assert_eq!(l, "mica: trace: config parse 1.500");
    assert_eq!(trace::parse_line(&l), Some(("config parse".into(), 1.5)));
    assert_eq!(trace::parse_line("mica: warning: x"), None);
    assert_eq!(trace::parse_line("mica: trace: 2.0"), None);
}

#[test]
fn cpio_newc_layout() {
    let mut c = vm::Cpio::new(Vec::new());
    c.entry("a", libc::S_IFREG | 0o644, 0, 0, 0, b"hello", (0, 0))
        .unwrap();
    let out = c.finish().unwrap();
    let s = String::from_utf8_lossy(&out);
    assert!(s.starts_with("070701"));
    // header (110) + "a\0" padded to 112, then 5 bytes padded to 8
    assert_eq!(&out[110..112], b"a\0");
    assert_eq!(&out[112..117], b"hello");
    assert_eq!(&out[120..126], b"070701");
    assert!(s.contains("TRAILER!!!"));
    assert_eq!(out.len() % 4, 0);
    assert_eq!(vm::parse_exit("boot\nmica-init: exit 0\r\n"), Some(0));
    assert_eq!(vm::parse_exit("mica-init: exit 3"), Some(3));
    assert_eq!(vm::parse_exit("panic"), None);
}

#[test]
fn workload_config_per_container() {
    let dir = std::env::temp_dir().join(format!("mica-bench-wl-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    let w = workload::Workload::on_rootfs(&dir.join("rootfs"), &["/bin/true"], "t").unwrap();
    let c = w.config("mica-bench-1/x");
    assert_eq!(c["linux"]["cgroupsPath"], "mica-bench-1/x");
    assert_eq!(c["root"]["readonly"], true);
    assert_eq!(c["process"]["terminal"], false);
    assert_eq!(c["process"]["args"], serde_json::json!(["/bin/true"]));
    assert_eq!(c["linux"]["resources"]["pids"]["limit"], 64);
    assert!(c["root"]["path"].as_str().unwrap().starts_with('/'));
    // Each container's config is written over the last one in place.
    let bundle = dir.join("bundle");
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
    };
    w.write_bundle(&bundle, "mica-bench-1/a-rather-long-container-id")
        .unwrap();
    assert_eq!(
        read()["linux"]["cgroupsPath"],
        "mica-bench-1/a-rather-long-container-id"
    );
    w.write_bundle(&bundle, "mica-bench-1/x").unwrap();
    assert_eq!(read(), c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A harness until `mica bench` is wired: as root,
/// `MICA_BENCH_MICA=target/release/mica cargo test --lib bench::tests::harness -- --ignored --nocapture`
/// (MICA_BENCH_RUNS, MICA_BENCH_VS, MICA_BENCH_VM=1, MICA_BENCH_OUT=DIR, ...).
#[test]
#[ignore]
fn harness() {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str, d: usize| env(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let mut o = BenchOptions::default();
    o.mica = Some(
        env("MICA_BENCH_MICA")
            .unwrap_or("target/release/mica".into())
            .into(),
    );
    o.runs = num("MICA_BENCH_RUNS", o.runs);
    o.warmup = num("MICA_BENCH_WARMUP", o.warmup);
    o.throughput = num("MICA_BENCH_THROUGHPUT", o.throughput);
    o.density = num("MICA_BENCH_DENSITY", o.density);
    o.vm_runs = num("MICA_BENCH_VM_RUNS", o.vm_runs);
    o.vm = env("MICA_BENCH_VM").is_some();
    if let Some(v) = env("MICA_BENCH_VS") {
        o.vs = v.split(',').map(String::from).collect();
    }
    if let Some(b) = env("MICA_BENCH_BUNDLE") {
        o.bundle = Some(b.into());
    }
    if let Some(a) = env("MICA_BENCH_ACCEL") {
        o.accel = a.parse().unwrap();
    }
    if let Some(d) = env("MICA_BENCH_OUT") {
        let d = std::path::PathBuf::from(d);
        o.json = Some(d.join("results.json"));
        o.svg = Some(d.join("startup.svg"));
        o.markdown = Some(d.join("RESULTS.md"));
    }
    let r = run(&o).unwrap_or_else(|e| panic!("mica bench: {e}"));
    print!("{}", r.text());
}

/// The bench's spawn: arguments, environment changes, fds 0-3 and a fresh
/// signal state reach the command; without changes the environment passes
/// as it is; a missing program is an error.
#[test]
fn vfork_exec_sets_up_the_command() {
    use super::proc::{self, Output};
    use std::os::fd::AsRawFd;
    let dir = std::env::temp_dir().join(format!("mica-bench-spawn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Output::new(&dir, "t").unwrap();
    let report = std::fs::File::create(dir.join("report")).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let fds = [
        null.as_raw_fd(),
        out.out.as_raw_fd(),
        out.err.as_raw_fd(),
        report.as_raw_fd(),
    ];
    let path = std::env::var("PATH").expect("tests run with a PATH");
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "echo \"$1 ${MICA_BENCH_SPAWN_SET}\"; grep -E '^Sig(Blk|Ign)' /proc/self/status; \
         echo oops >&2; echo r >&3; exit 3",
        "sh",
        "arg one",
    ])
    .env("MICA_BENCH_SPAWN_SET", "set");
    let pid = proc::vfork_exec(&cmd, fds, None).unwrap();
    assert_eq!(proc::wait4(pid).unwrap().0, 3);
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("arg one set"));
    assert_eq!(lines.next(), Some("SigBlk:\t0000000000000000"));
    // Rust ignores SIGPIPE in this process; the command has it back.
    let ignored = |line: &str| {
        let hex = line.trim_start_matches("SigIgn:").trim();
        u64::from_str_radix(hex, 16).unwrap() & (1 << (libc::SIGPIPE - 1)) != 0
    };
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(ignored(
        own.lines().find(|l| l.starts_with("SigIgn:")).unwrap()
    ));
    assert!(!ignored(lines.next().unwrap()));
    assert_eq!(out.stderr(), "oops\n");
    assert_eq!(std::fs::read_to_string(dir.join("report")).unwrap(), "r\n");
    // Without changes the command gets our environment as it is; a removed
    // variable is gone (env(1) prints what it got).
    let mut plain = std::process::Command::new("/usr/bin/env");
    let mut removed = std::process::Command::new("/usr/bin/env");
    removed.env_remove("PATH");
    for (c, has_path) in [(&mut plain, true), (&mut removed, false)] {
        let mut o = Output::new(&dir, "t2").unwrap();
        let fds = [fds[0], o.out.as_raw_fd(), o.err.as_raw_fd(), -1];
        let pid = proc::vfork_exec(c, fds, None).unwrap();
        assert_eq!(proc::wait4(pid).unwrap().0, 0);
        let env = o.stdout();
        assert_eq!(
            env.lines().any(|l| l == format!("PATH={path}")),
            has_path,
            "{env}"
        );
        assert!(!env.contains("MICA_BENCH_SPAWN_SET"), "{env}");
    }
    let missing = std::process::Command::new("/nonexistent/mica-bench-program");
    let e = proc::vfork_exec(&missing, fds, None).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let _ = std::fs::remove_dir_all(&dir);
}
