//! The start-up chart: one row per contender, every sample as a dot over a
//! box (quartiles), a median bar and min-max whiskers, on a log ms axis.

use super::report::{fmt_ms, ContenderResult, Report};
use super::stats::Stats;
use plotters::prelude::*;
use std::path::Path;

pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    let rows: Vec<&ContenderResult> = report
        .contenders
        .iter()
        .filter(|c| c.skipped.is_none() && !c.samples_ms.is_empty())
        .collect();
    if rows.is_empty() {
        return Err("no samples to plot".into());
    }
    let n = rows.len();
    let all = rows
        .iter()
        .flat_map(|c| c.samples_ms.iter().copied())
        .filter(|v| *v > 0.0);
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = (lo * 0.7, hi * 1.4);
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let (w, h) = (1100u32, 110 + 48 * n as u32);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let title = format!(
        "start-up: {} — {} runs each, {} ({} CPUs), {}",
        report.workload.split(',').next().unwrap_or(""),
        report.runs,
        report.machine.kernel,
        report.machine.cpus,
        report.date
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(230)
        .build_cartesian_2d((lo..hi).log_scale(), -0.5f64..(n as f64 - 0.5))
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ms per start (log scale)")
        .x_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .draw()
        .map_err(e)?;
    for (i, c) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = Palette99::pick(i).to_rgba();
        let Some(s) = Stats::of(&c.samples_ms) else {
            continue;
        };
        let (q1, q3) = Stats::quartiles(&c.samples_ms).unwrap_or((s.median, s.median));
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(s.min, y), (s.max, y)],
                BLACK.mix(0.5),
            )))
            .map_err(e)?;
        for x in [s.min, s.max] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y - 0.12), (x, y + 0.12)],
                    BLACK.mix(0.5),
                )))
                .map_err(e)?;
        }
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(q1, y - 0.28), (q3, y + 0.28)],
                color.mix(0.25).filled(),
            )))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(q1, y - 0.28), (q3, y + 0.28)],
                color.stroke_width(1),
            )))
            .map_err(e)?;
        chart
            .draw_series(c.samples_ms.iter().enumerate().map(|(k, v)| {
                let jitter = ((k * 7919 % 101) as f64 / 100.0 - 0.5) * 0.4;
                Circle::new((*v, y + jitter), 2, color.mix(0.55).filled())
            }))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(s.median, y - 0.34), (s.median, y + 0.34)],
                BLACK.stroke_width(3),
            )))
            .map_err(e)?;
        let (px, py) = chart.backend_coord(&(lo, y));
        let label = format!("{}  {} ms", c.name, fmt_ms(s.median));
        root.draw(&Text::new(
            label,
            (px - 225, py - 7),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))
        .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}
