//! Plots of quality against NFE from the JSON files of `bench/quality/run.sh`: one PNG per metric,
//! one panel per solver, LeDiFlow against its Gaussian baseline, with the real-vs-real floor.
//!
//!     cargo run --release --example plot_sweep -- ledi gaussian [DIR]   # -> DIR/*-vs-nfe.png
//!
//! DIR defaults to bench/quality.
//!
//! Text needs a TrueType font: DejaVu Sans from Debian's fonts-dejavu-core, or the file named by
//! LEDIFLOW_PLOT_FONT.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

const SOLVERS: [&str; 4] = ["euler", "midpoint", "heun", "rk4"];
/// (JSON key, axis label, file stem)
const METRICS: [(&str, &str, &str); 2] =
    [("swd", "SWD x1e3 (lower is better)", "swd"), ("kid_features", "KID random-conv x1e3", "kid")];

/// One model's sweep: per solver, (NFE, report) sorted by NFE; and the real-vs-real floor.
struct Sweep {
    curves: Vec<(String, Vec<(f64, serde_json::Value)>)>,
    floor: Option<serde_json::Value>,
}

fn load(dir: &Path, name: &str) -> Result<Sweep, String> {
    let mut curves = Vec::new();
    let mut floor = None;
    for s in SOLVERS {
        let path = dir.join(format!("{name}-{s}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut pts: Vec<(f64, serde_json::Value)> = doc["results"]
            .as_array()
            .ok_or_else(|| format!("{}: no results", path.display()))?
            .iter()
            .map(|r| (r["nfe"].as_f64().unwrap_or(f64::NAN), r["report"].clone()))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if floor.is_none() && doc["real_floor"]["report"].is_object() {
            floor = Some(doc["real_floor"]["report"].clone());
        }
        curves.push((s.to_string(), pts));
    }
    if curves.is_empty() {
        return Err(format!("no {name}-<solver>.json in {}", dir.display()));
    }
    Ok(Sweep { curves, floor })
}

fn font() -> Result<(), String> {
    let path = std::env::var_os("LEDIFLOW_PLOT_FONT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"));
    let bytes = std::fs::read(&path).map_err(|e| {
        format!("font {}: {e} (apt-get install fonts-dejavu-core, or set LEDIFLOW_PLOT_FONT)", path.display())
    })?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
}

fn legend(name: &str) -> String {
    // A name may reach into another folder (`../gaussian`): the legend shows its last part.
    match name.rsplit('/').next().unwrap_or(name) {
        "ledi" => "LeDiFlow".into(),
        "gaussian" => "Gaussian-prior baseline".into(),
        other => other.into(),
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn plot(out: &Path, key: &str, label: &str, names: [&str; 2], sweeps: [&Sweep; 2]) -> Res {
    // One panel per solver that either sweep measured, side by side.
    let solvers: Vec<&str> =
        SOLVERS.into_iter().filter(|s| sweeps.iter().any(|w| w.curves.iter().any(|(c, _)| c == s))).collect();
    let root = BitMapBackend::new(out, (600 * solvers.len().max(1) as u32, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, solvers.len().max(1)));
    let value = |r: &serde_json::Value| r[key].as_f64();
    let floor = sweeps.iter().find_map(|s| s.floor.as_ref().and_then(value));
    // One y range for all panels so they compare at a glance.
    let all: Vec<f64> = sweeps
        .iter()
        .flat_map(|s| s.curves.iter().flat_map(|(_, pts)| pts.iter().filter_map(|(_, r)| value(r))))
        .chain(floor)
        .collect();
    let y_max = all.iter().cloned().fold(0.0, f64::max) * 1.05;
    let y_min = all.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    for (panel, &solver) in panels.iter().zip(&solvers) {
        let mut chart = ChartBuilder::on(panel)
            .caption(solver, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..6.2f64, y_min..y_max)?;
        chart
            .configure_mesh()
            .x_desc("NFE")
            .y_desc(label)
            .x_labels(7)
            .x_label_formatter(&|v| format!("{}", 2f64.powf(v.round())))
            .label_style(("sans-serif", 14))
            .draw()?;
        for ((name, sweep), color) in names.iter().zip(sweeps).zip(colors) {
            let Some((_, pts)) = sweep.curves.iter().find(|(s, _)| s == solver) else { continue };
            let line: Vec<(f64, f64)> = pts.iter().filter_map(|(n, r)| Some((n.log2(), value(r)?))).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(legend(name))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        if let Some(f) = floor {
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new([(0.0, f), (6.2, f)], 6, 4, grey.stroke_width(1)))?
                .label("real training tiles")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() -> Res {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: plot_sweep <name> <baseline-name> [dir]";
    let (a, b) = match args.as_slice() {
        [a, b] | [a, b, _] => (a.clone(), b.clone()),
        _ => return Err(usage.into()),
    };
    let dir =
        args.get(2).map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/quality"));
    font()?;
    let (sa, sb) = (load(&dir, &a)?, load(&dir, &b)?);
    for (key, label, stem) in METRICS {
        let out = dir.join(format!("{stem}-vs-nfe.png"));
        plot(&out, key, label, [&a, &b], [&sa, &sb])?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
