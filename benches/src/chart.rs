//! The SVG charts of the report, drawn with plotters from the results alone.

use std::io;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::{styles_in, Cell, Results};
use crate::servers::Style;

/// Pixels of one panel.
const PANEL: (u32, u32) = (560, 400);

/// A color per style, the same in every chart. The callback style, the ceiling, is black.
fn color(style: Style) -> RGBColor {
    match style {
        Style::Callback => RGBColor(0, 0, 0),
        Style::Weft => RGBColor(214, 39, 40),
        Style::May => RGBColor(31, 119, 180),
        Style::TokioMt => RGBColor(44, 160, 44),
        Style::TokioCt => RGBColor(140, 200, 90),
        Style::Threads => RGBColor(255, 127, 14),
        Style::Pool => RGBColor(148, 103, 189),
    }
}

/// A failed drawing, as an I/O error (the SVG backend's errors are its file's).
fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("chart: {e}"))
}

/// Draws every chart the results have data for into `dir`; returns each one's title and file
/// name, in the order the report shows them.
///
/// # Errors
///
/// Writing a file.
pub fn write_all(results: &Results, dir: &Path) -> io::Result<Vec<(&'static str, &'static str)>> {
    let mut charts = Vec::new();
    let sizes = distinct(results.echo.iter().map(|c| c.size));
    if !sizes.is_empty() {
        let file = "echo-throughput.svg";
        let panels: Vec<_> =
            sizes.iter().map(|&s| (format!("echo, {s} B: messages/s"), s)).collect();
        lines_by_conns(&dir.join(file), &results.echo, &panels, "messages/s", Cell::per_sec)?;
        charts.push(("Echo throughput against connections", file));
        let file = "echo-cpu.svg";
        let panels: Vec<_> =
            sizes.iter().map(|&s| (format!("echo, {s} B: server CPU µs per message"), s)).collect();
        lines_by_conns(&dir.join(file), &results.echo, &panels, "CPU µs / message", Cell::cpu_us)?;
        charts.push(("Server CPU per echo message against connections", file));
    }
    if !results.echo_latency.is_empty() {
        let file = "echo-latency.svg";
        percentiles(&dir.join(file), &results.echo_latency, "echo")?;
        charts.push(("Echo latency percentiles at a fixed rate", file));
    }
    if !results.http.is_empty() {
        let file = "http-throughput.svg";
        let depths = distinct(results.http.iter().map(|c| c.pipeline));
        let groups: Vec<(String, Vec<(Style, f64)>)> = depths
            .iter()
            .map(|&d| {
                let title = if d <= 1 {
                    "HTTP plaintext, no pipelining: responses/s".to_string()
                } else {
                    format!("HTTP plaintext, {d} per write: responses/s")
                };
                let bars = results
                    .http
                    .iter()
                    .filter(|c| c.pipeline == d)
                    .map(|c| (c.style(), c.per_sec().median))
                    .collect();
                (title, bars)
            })
            .collect();
        bars(&dir.join(file), &groups)?;
        charts.push(("HTTP plaintext throughput", file));
    }
    if !results.http_latency.is_empty() {
        let file = "http-latency.svg";
        percentiles(&dir.join(file), &results.http_latency, "HTTP")?;
        charts.push(("HTTP latency percentiles at a fixed rate", file));
    }
    if !results.memory.is_empty() {
        let file = "memory.svg";
        let conns = results.memory[0].conns;
        let bars_of: Vec<(Style, f64)> =
            results.memory.iter().filter_map(|c| Some((c.style?, c.per_conn().median))).collect();
        bars(
            &dir.join(file),
            &[(format!("bytes of RSS per idle connection ({conns} held)"), bars_of)],
        )?;
        charts.push(("Memory per idle connection", file));
    }
    Ok(charts)
}

fn distinct(values: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = values.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn panels(
    path: &Path,
    n: usize,
) -> (DrawingArea<SVGBackend<'_>, Shift>, Vec<DrawingArea<SVGBackend<'_>, Shift>>) {
    let n = n.max(1);
    let root = SVGBackend::new(path, (PANEL.0 * n as u32, PANEL.1)).into_drawing_area();
    let parts = root.split_evenly((1, n));
    (root, parts)
}

/// One panel per `(title, size)`: a line per style of `value` against connections (log).
fn lines_by_conns(
    path: &Path,
    cells: &[Cell],
    panel_specs: &[(String, usize)],
    y_desc: &str,
    value: fn(&Cell) -> crate::results::Spread,
) -> io::Result<()> {
    let (root, parts) = panels(path, panel_specs.len());
    root.fill(&WHITE).map_err(err)?;
    for ((title, size), area) in panel_specs.iter().zip(&parts) {
        let mine: Vec<&Cell> =
            cells.iter().filter(|c| c.size == *size && c.load_pct == 0).collect();
        let max_conns = mine.iter().map(|c| c.conns).max().unwrap_or(1) as f64;
        let top = mine.iter().map(|c| value(c).max).fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((0.8..max_conns * 1.25).log_scale(), 0.0..top.max(1e-9))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("connections")
            .y_desc(y_desc)
            .x_label_formatter(&|x| crate::report::thousands(*x))
            .y_label_formatter(&|y| crate::report::si(*y))
            .draw()
            .map_err(err)?;
        for style in styles_in(mine.iter().copied()) {
            let mut points: Vec<(f64, f64)> = mine
                .iter()
                .filter(|c| c.style() == style)
                .map(|c| (c.conns as f64, value(c).median))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            draw_line(&mut chart, style, points)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    root.present().map_err(err)
}

/// One panel per load: a line per style through its latency percentiles (log scale).
fn percentiles(path: &Path, cells: &[Cell], what: &str) -> io::Result<()> {
    let loads: Vec<u32> = {
        let mut l: Vec<u32> = cells.iter().map(|c| c.load_pct).filter(|&l| l > 0).collect();
        l.sort_unstable();
        l.dedup();
        l
    };
    let (root, parts) = panels(path, loads.len());
    root.fill(&WHITE).map_err(err)?;
    for (load, area) in loads.iter().zip(&parts) {
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.load_pct == *load).collect();
        let conns = mine.first().map_or(0, |c| c.conns);
        let labels = crate::load::Latency::default().points().map(|(label, _)| label);
        let top = mine.iter().map(|c| c.latency().max).fold(1.0, f64::max) * 2.0;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{what} latency at {load} % of each style's peak, {conns} conns"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.2..(labels.len() as f64 - 0.8), (1.0..top).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(labels.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    labels.get(i as usize).map_or(String::new(), |l| l.to_string())
                } else {
                    String::new()
                }
            })
            .y_desc("µs (log)")
            .y_label_formatter(&|y| crate::report::si(*y))
            .draw()
            .map_err(err)?;
        for style in styles_in(mine.iter().copied()) {
            let Some(cell) = mine.iter().find(|c| c.style() == style) else { continue };
            let points: Vec<(f64, f64)> = cell
                .latency()
                .points()
                .iter()
                .enumerate()
                .map(|(i, (_, v))| (i as f64, v.max(1.0)))
                .collect();
            draw_line(&mut chart, style, points)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(err)
}

/// Draws one style's line, with a dot at each point, and names it for the legend.
fn draw_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    style: Style,
    points: Vec<(f64, f64)>,
) -> io::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let c = color(style);
    let dots: Vec<_> = points.iter().map(|&p| Circle::new(p, 3, c.filled())).collect();
    chart
        .draw_series(LineSeries::new(points, c.stroke_width(2)))
        .map_err(err)?
        .label(style.name())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    chart.draw_series(dots).map_err(err)?;
    Ok(())
}

/// The legend of the lines drawn so far, at `position`.
fn draw_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> io::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)
}

/// One panel per group: a bar per style.
fn bars(path: &Path, groups: &[(String, Vec<(Style, f64)>)]) -> io::Result<()> {
    let (root, parts) = panels(path, groups.len());
    root.fill(&WHITE).map_err(err)?;
    for ((title, values), area) in groups.iter().zip(&parts) {
        let mut values = values.clone();
        values.sort_by_key(|(s, _)| Style::ALL.iter().position(|x| x == s));
        let top = values.iter().map(|(_, v)| *v).fold(0.0, f64::max) * 1.15;
        let n = values.len();
        let names: Vec<&str> = values.iter().map(|(s, _)| s.name()).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top.max(1e-9))
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    names.get(i as usize).map_or(String::new(), |l| l.to_string())
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| crate::report::si(*y))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, (style, v))| {
                let x = i as f64;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *v)], color(*style).filled())
            }))
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, (_, v))| {
                // Above the bar: a label inside the callback style's black bar would not show.
                let at = (i as f64 - 0.3, *v + top * 0.06);
                Text::new(crate::report::si(*v), at, ("sans-serif", 12))
            }))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Latency;
    use crate::results::{MemoryCell, MemoryRep, Rep};

    fn cell(style: Style, conns: usize, size: usize, per_sec: f64) -> Cell {
        Cell {
            style: Some(style),
            conns,
            size,
            pipeline: 1,
            reps: vec![Rep {
                per_sec,
                cpu_us_per_msg: 1e6 / per_sec,
                latency: Latency { p50: 50.0, p90: 80.0, p99: 200.0, p999: 900.0, max: 4000.0 },
                ..Rep::default()
            }],
            ..Cell::default()
        }
    }

    #[test]
    fn every_chart_is_an_svg_with_each_style_named() {
        let mut results = Results::default();
        for (i, style) in [Style::Callback, Style::Weft, Style::May].into_iter().enumerate() {
            for conns in [1, 100, 1000, 10_000] {
                for size in [64, 4096] {
                    results.echo.push(cell(style, conns, size, 50_000.0 + 1000.0 * i as f64));
                }
            }
            for load in [50, 90] {
                let mut c = cell(style, 100, 64, 10_000.0);
                c.load_pct = load;
                c.rate = 10_000.0;
                results.echo_latency.push(c.clone());
                c.size = 0;
                results.http_latency.push(c);
            }
            for pipeline in [1, 16] {
                let mut c = cell(style, 256, 0, 100_000.0 * pipeline as f64);
                c.pipeline = pipeline;
                results.http.push(c);
            }
            results.memory.push(MemoryCell {
                style: Some(style),
                conns: 10_000,
                reps: vec![MemoryRep {
                    before_kib: 1000,
                    after_kib: 1000 + 40_000 * (i as u64 + 1),
                }],
            });
        }
        let dir = std::env::temp_dir().join(format!("weft-bench-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let charts = write_all(&results, &dir).unwrap();
        let files: Vec<&str> = charts.iter().map(|(_, f)| *f).collect();
        assert_eq!(
            files,
            [
                "echo-throughput.svg",
                "echo-cpu.svg",
                "echo-latency.svg",
                "http-throughput.svg",
                "http-latency.svg",
                "memory.svg"
            ]
        );
        for file in files {
            let svg = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{file}");
            for name in ["callback", "weft", "may"] {
                // The SVG backend puts a text's content on a line of its own.
                assert!(svg.contains(&format!("\n{name}\n</text>")), "{file} does not name {name}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
