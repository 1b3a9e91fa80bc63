//! `sample`, `interpolate`, `inpaint` and `vary`: PNG grids and single files, and the arguments they refuse.

use crate::{fixture, lediflow, ok, refused};

#[test]
fn sample_writes_a_grid_and_single_pngs() {
    let f = fixture();
    let dir = f.scratch("sample");
    let (grid, singles) = (dir.join("grid.png"), dir.join("singles"));
    ok(lediflow()
        .args(["sample", "--model"])
        .arg(&f.model)
        .args(["--count", "5", "--steps", "2", "--solver", "heun", "--columns", "3", "--out"])
        .arg(&grid)
        .arg("--out-dir")
        .arg(&singles));
    let g = image::open(&grid).unwrap();
    assert_eq!((g.width(), g.height()), (3 * 17 + 1, 2 * 17 + 1));
    assert_eq!(std::fs::read_dir(&singles).unwrap().count(), 5);
    assert_eq!(image::open(singles.join("sample_0000.png")).unwrap().color(), image::ColorType::Rgba8);
    // A memory limit makes smaller batches and the same images.
    let limited = dir.join("limited.png");
    ok(lediflow()
        .args(["sample", "--model"])
        .arg(&f.model)
        .args(["--count", "5", "--steps", "2", "--solver", "heun", "--columns", "3", "--memory-limit", "1", "--out"])
        .arg(&limited));
    assert_eq!(std::fs::read(&limited).unwrap(), std::fs::read(&grid).unwrap());
}

#[test]
fn interpolation_walks_between_two_images_or_two_seeds() {
    let f = fixture();
    let dir = f.scratch("interpolate");
    let (strip, frames) = (dir.join("strip.png"), dir.join("frames"));
    ok(lediflow()
        .args(["interpolate", "--model"])
        .arg(&f.model)
        .args(["--frames", "4", "--steps", "1", "--from"])
        .arg(f.data.join("0.png"))
        .arg("--to")
        .arg(f.data.join("1.png"))
        .arg("--out")
        .arg(&strip)
        .arg("--out-dir")
        .arg(&frames));
    let g = image::open(&strip).unwrap();
    assert_eq!((g.width(), g.height()), (4 * 17 + 1, 17 + 1));
    assert_eq!(std::fs::read_dir(&frames).unwrap().count(), 4);
    ok(lediflow()
        .args(["interpolate", "--model"])
        .arg(&f.model)
        .args(["--frames", "3", "--from-seed", "1", "--to-seed", "2", "--mode", "spherical", "--out"])
        .arg(&strip));
    refused(lediflow().args(["interpolate", "--model"]).arg(&f.model).arg("--out").arg(&strip), "--from-seed");
    refused(
        lediflow()
            .args(["interpolate", "--model"])
            .arg(&f.model)
            .args(["--frames", "65537", "--from-seed", "1", "--to-seed", "2", "--out"])
            .arg(&strip),
        "frames must be in 1..=65536",
    );
}

#[test]
fn inpainting_keeps_every_pixel_outside_the_region() {
    let f = fixture();
    let dir = f.scratch("inpaint");
    let (filled, src, strip) = (dir.join("filled"), f.data.join("2.png"), dir.join("strip.png"));
    ok(lediflow()
        .args(["inpaint", "--model"])
        .arg(&f.model)
        .arg("--image")
        .arg(&src)
        .args(["--region", "4,4,8,8", "--count", "2", "--steps", "2", "--out-dir"])
        .arg(&filled));
    let before = image::open(&src).unwrap().to_rgba8();
    for i in 0..2 {
        let after = image::open(filled.join(format!("inpaint_{i:04}.png"))).unwrap().to_rgba8();
        for (x, y, p) in after.enumerate_pixels() {
            let inside = (4..12).contains(&x) && (4..12).contains(&y);
            if !inside {
                assert_eq!(p, before.get_pixel(x, y), "pixel ({x}, {y}) outside the region changed");
            }
        }
    }
    // A region that leaves the image, numbers that would wrap x + w past the check, and a count
    // beyond what a call accepts, refused before the repeated image is allocated.
    for (region, count, want) in [
        ("10,10,20,20", "1", "leaves the 16x16 image"),
        ("18446744073709551615,0,1,1", "1", "leaves the 16x16 image"),
        ("0,0,18446744073709551615,1", "1", "leaves the 16x16 image"),
        ("4,4,8,8", "100000000", "--count must be in 1..=65536"),
    ] {
        refused(
            lediflow()
                .args(["inpaint", "--model"])
                .arg(&f.model)
                .arg("--image")
                .arg(&src)
                .args(["--region", region, "--count", count, "--out"])
                .arg(&strip),
            want,
        );
    }
}

#[test]
fn bad_sampling_arguments_are_refused() {
    let f = fixture();
    let dir = f.scratch("bad-sample");
    let grid = dir.join("grid.png");
    let sample = |extra: &[&str]| {
        let mut c = lediflow();
        c.args(["sample", "--model"]).arg(&f.model).args(extra).arg("--out").arg(&grid);
        c
    };
    refused(
        lediflow().args(["sample", "--model"]).arg(dir.join("missing.safetensors")).arg("--out").arg(&grid),
        "missing.safetensors",
    );
    refused(&mut sample(&["--solver", "rk5"]), "unknown solver");
    refused(&mut sample(&["--latent-steps", "0"]), "latent_steps must be in 1..=");
    refused(&mut sample(&["--count", "4294967295"]), "count must be in 1..=65536");
    refused(&mut sample(&["--device", "tpu"]), "unknown device 'tpu'");
    refused(&mut sample(&["--memory-limit", "0"]), "--memory-limit must be a positive number");
    refused(&mut sample(&["--memory-limit", "0.000001"]), "one image needs about");
    refused(lediflow().args(["sample", "--model"]).arg(&f.model), "give --out");
    assert!(!grid.exists());
}

#[test]
fn the_latent_step_count_reaches_the_sampler() {
    // Another count gives other latents and other images (the shipped model: a 3-step tiny
    // one's latent flow barely moves its latents).
    let f = fixture();
    let dir = f.scratch("latent-steps");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dcss-small-ledi.safetensors");
    let sample_with = |latent_steps: &str, out: &std::path::Path| {
        ok(lediflow()
            .args(["sample", "--model"])
            .arg(&shipped)
            .args(["--count", "2", "--steps", "1", "--latent-steps", latent_steps, "--out"])
            .arg(out));
        std::fs::read(out).unwrap()
    };
    let (one, one_again, many) = (
        sample_with("1", &dir.join("ls1.png")),
        sample_with("1", &dir.join("ls1b.png")),
        sample_with("8", &dir.join("ls8.png")),
    );
    assert_eq!(one, one_again);
    assert_ne!(one, many);
}

#[test]
fn tileable_samples_and_variations_of_images() {
    let f = fixture();
    let dir = f.scratch("tiles");
    let (plain, tiles, repeated) = (dir.join("plain.png"), dir.join("tiles.png"), dir.join("repeated.png"));
    let sample = |out: &std::path::Path, extra: &[&str]| {
        ok(lediflow()
            .args(["sample", "--model"])
            .arg(&f.model)
            .args(["--count", "2", "--steps", "2"])
            .args(extra)
            .arg("--out")
            .arg(out));
    };
    sample(&plain, &[]);
    sample(&tiles, &["--tileable"]);
    sample(&repeated, &["--tileable", "--repeat", "3"]);
    assert_ne!(std::fs::read(&plain).unwrap(), std::fs::read(&tiles).unwrap());
    // Each 16-pixel image is shown 3x3 times in its grid cell.
    let g = image::open(&repeated).unwrap();
    assert_eq!((g.width(), g.height()), (2 * 49 + 1, 49 + 1));
    refused(
        lediflow().args(["sample", "--model"]).arg(&f.model).args(["--repeat", "0", "--out"]).arg(&plain),
        "--repeat",
    );

    let (grid, singles) = (dir.join("vary.png"), dir.join("vary"));
    ok(lediflow()
        .args(["vary", "--model"])
        .arg(&f.model)
        .arg("--image")
        .arg(f.data.join("0.png"))
        .arg("--image")
        .arg(f.data.join("1.png"))
        .args(["--count", "3", "--strength", "0.5", "--steps", "2", "--out"])
        .arg(&grid)
        .arg("--out-dir")
        .arg(&singles));
    // One row per image, one column per variation.
    let g = image::open(&grid).unwrap();
    assert_eq!((g.width(), g.height()), (3 * 17 + 1, 2 * 17 + 1));
    assert_eq!(std::fs::read_dir(&singles).unwrap().count(), 6);
    for bad in ["nan", "-0.5", "1.5"] {
        refused(
            lediflow()
                .args(["vary", "--model"])
                .arg(&f.model)
                .arg("--image")
                .arg(f.data.join("0.png"))
                .args(["--strength", bad, "--out"])
                .arg(&grid),
            "strength",
        );
    }
    refused(
        lediflow()
            .args(["vary", "--model"])
            .arg(&f.model)
            .arg("--image")
            .arg(dir.join("missing.png"))
            .arg("--out")
            .arg(&grid),
        "missing.png",
    );
}
