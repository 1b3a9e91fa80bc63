//! A sweep as a markdown table and as JSON.

use super::sweep::{SweepConfig, SweepOutcome, SweepPoint};

/// The table's header (two lines).
pub fn markdown_header() -> String {
    "| solver | steps | NFE | SWD x1e3 | KID pixels x1e3 | KID random-conv x1e3 | precision | recall | nearest train (RMS) | class acc. | prior scale | time shift | guidance |\n\
     |---|---|---|---|---|---|---|---|---|---|---|---|---|"
        .to_string()
}

/// One point's row: plain values for one seed, mean ± sd for several.
pub fn markdown_row(p: &SweepPoint) -> String {
    let several = p.per_seed.len() > 1;
    let cell = |m: f64, s: f64, digits: usize| {
        if several { format!("{m:.digits$} ± {s:.digits$}") } else { format!("{m:.digits$}") }
    };
    let (r, sd) = (&p.mean, &p.sd);
    let accuracy = match (r.mean_class_accuracy(), sd.mean_class_accuracy()) {
        (Some(m), Some(s)) => cell(m, s, 3),
        _ => "-".into(),
    };
    // Guidance on the image flow runs two branches: its network evaluations, not its NFE, say the cost.
    let nfe = if p.image_flow_evals != p.nfe {
        format!("{} ({} evals)", p.nfe, p.image_flow_evals)
    } else {
        p.nfe.to_string()
    };
    format!(
        "| {} | {} | {nfe} | {} | {} | {} | {} | {} | {} | {accuracy} | {} | {} | {} |",
        p.solver,
        p.steps,
        cell(r.swd, sd.swd, 2),
        cell(r.kid_pixels, sd.kid_pixels, 3),
        cell(r.kid_features, sd.kid_features, 3),
        cell(r.precision, sd.precision, 3),
        cell(r.recall, sd.recall, 3),
        cell(r.nearest_train.unwrap_or(f64::NAN), sd.nearest_train.unwrap_or(f64::NAN), 4),
        p.prior_scale,
        p.time_shift,
        p.guidance
    )
}

/// The real-data floor's row, after the points.
pub fn markdown_floor(o: &SweepOutcome) -> String {
    let r = &o.real_floor;
    let accuracy = r.mean_class_accuracy().map_or("-".into(), |a| format!("{a:.3}"));
    format!(
        "| real training tiles ({}) | - | - | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} (held-out) | {accuracy} | - | - | - |",
        o.real_floor_images, r.swd, r.kid_pixels, r.kid_features, r.precision, r.recall, o.held_out_nearest_train
    )
}

/// Per-class nearest-class accuracy of every point (mean over seeds), one column per class,
/// with the real training tiles' row: a table for a `ClassMix::HeldOut` sweep.
pub fn markdown_classes(classes: &[String], o: &SweepOutcome) -> String {
    let mut t = format!("| point | {} |\n|---|{}", classes.join(" | "), "---|".repeat(classes.len()));
    let row = |name: String, acc: &[f64]| {
        let cells: Vec<String> = acc.iter().map(|a| format!("{a:.3}")).collect();
        format!("\n| {name} | {} |", cells.join(" | "))
    };
    for p in &o.points {
        t += &row(format!("{} NFE, guidance {}", p.nfe, p.guidance), &p.mean.class_accuracy);
    }
    t += &row(format!("real training tiles ({})", o.real_floor_images), &o.real_floor.class_accuracy);
    t
}

/// The whole sweep as JSON: the grid, every point (mean, and with several seeds the spread and
/// each seed's report) and the floor. `model` names the file that was measured.
pub fn to_json(model: &str, cfg: &SweepConfig, o: &SweepOutcome) -> serde_json::Value {
    let several = cfg.seeds.len() > 1;
    let results: Vec<serde_json::Value> = o
        .points
        .iter()
        .map(|p| {
            let mut row = serde_json::json!({"solver": p.solver.name(), "steps": p.steps, "nfe": p.nfe,
                "prior_scale": p.prior_scale, "time_shift": p.time_shift, "guidance": p.guidance, "image_flow_evals": p.image_flow_evals, "report": p.mean});
            if several {
                row["sd"] = serde_json::json!(p.sd);
                row["per_seed"] = serde_json::json!(
                    p.per_seed
                        .iter()
                        .map(|s| serde_json::json!({"seed": s.seed, "report": s.report}))
                        .collect::<Vec<_>>()
                );
            }
            row
        })
        .collect();
    serde_json::json!({"model": model, "count": cfg.count, "seeds": cfg.seeds, "latents": cfg.latents,
        "latent_steps": cfg.latent_steps, "tileable": cfg.tileable,
        "classes": cfg.classes, "class_in_image_flow": cfg.class_in_image_flow,
        "precision": cfg.precision.name(), "reference_images": o.reference_images,
        "held_out_nearest_train": o.held_out_nearest_train,
        "real_floor": {"images": o.real_floor_images, "report": o.real_floor}, "results": results})
}
