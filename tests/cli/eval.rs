//! `eval`: quality tables against a held-out split, with seeds and sweeps, and what it refuses.

use crate::{fixture, lediflow, ok, refused};

fn eval(extra: &[&str]) -> std::process::Command {
    let f = fixture();
    let mut c = lediflow();
    c.args(["eval", "--model"]).arg(&f.model).arg("--data").arg(&f.eval_data).args(extra);
    c
}

#[test]
fn eval_prints_a_row_per_point_and_the_real_data_floor() {
    let dir = fixture().scratch("eval");
    let json = dir.join("eval.json");
    let out =
        ok(eval(&["--size", "16", "--val-every", "2", "--count", "5", "--steps", "1,2", "--solver", "euler,heun"])
            .arg("--json")
            .arg(&json));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().filter(|l| l.starts_with("| euler") || l.starts_with("| heun")).count(), 4, "{table}");
    assert!(table.contains("| heun | 2 | 4 |"), "{table}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["results"].as_array().unwrap().len(), 4);
    assert!(doc["results"][0]["report"]["swd"].as_f64().unwrap() > 0.0);
    // The real-data floor: training images scored like samples, as the last row and in the JSON.
    assert!(table.contains("| real training tiles (5) |"), "{table}");
    assert_eq!(doc["real_floor"]["images"], 5);
    assert!(doc["real_floor"]["report"]["swd"].as_f64().unwrap() >= 0.0);
}

#[test]
fn several_seeds_report_mean_and_spread() {
    let dir = fixture().scratch("eval-seeds");
    let json = dir.join("eval.json");
    let out =
        ok(eval(&["--size", "16", "--val-every", "2", "--count", "5", "--steps", "1", "--seed", "0,1,7", "--json"])
            .arg(&json));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with("| midpoint | 1 | 2 |")).expect("the midpoint row");
    assert_eq!(row.matches(" ± ").count(), 6, "{row}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["seeds"], serde_json::json!([0, 1, 7]));
    let per_seed = doc["results"][0]["per_seed"].as_array().unwrap();
    assert_eq!(per_seed.len(), 3);
    let swds: Vec<f64> = per_seed.iter().map(|r| r["report"]["swd"].as_f64().unwrap()).collect();
    let mean = swds.iter().sum::<f64>() / 3.0;
    assert!((doc["results"][0]["report"]["swd"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(swds[0] != swds[1], "different seeds must draw different samples: {swds:?}");
    assert!(doc["results"][0]["sd"]["swd"].as_f64().unwrap() > 0.0);
}

#[test]
fn training_latents_and_prior_scale_and_shift_sweeps() {
    // Diagnostic: the encoder's latents of training images instead of the latent flow; one row
    // per (prior scale, time shift), those two in the columns before guidance (1: none).
    let out = ok(&mut eval(&[
        "--size",
        "16",
        "--val-every",
        "2",
        "--count",
        "5",
        "--latents",
        "train",
        "--prior-scale",
        "0,0.5",
        "--time-shift",
        "1,3",
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| midpoint | 4 | 8 |")).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, end) in rows.iter().zip(["| 0 | 1 | 1 |", "| 0 | 3 | 1 |", "| 0.5 | 1 | 1 |", "| 0.5 | 3 | 1 |"]) {
        assert!(row.ends_with(end), "{table}");
    }
}

#[test]
fn bad_evaluation_arguments_are_refused() {
    refused(&mut eval(&["--size", "16", "--val-every", "2", "--seed", "0,x"]), "bad --seed");
    // Every image held out: no training images to draw latents from or to measure copying against.
    refused(
        &mut eval(&["--size", "16", "--val-every", "1", "--latents", "train"]),
        "training split has fewer than 2 images",
    );
    refused(&mut eval(&["--size", "16", "--val-every", "2", "--prior-scale", "1,-1"]), "prior_scale must be");
    refused(&mut eval(&["--size", "16", "--val-every", "2", "--time-shift", "3,0"]), "time_shift must be");
    refused(&mut eval(&["--size", "16", "--val-every", "2", "--latents", "prior"]), "--latents must be flow or train");
    refused(&mut eval(&["--size", "16", "--val-every", "2", "--count", "70000"]), "--count must be in 1..=65536");
    refused(&mut eval(&[]), "--size 16");
}
