//! Replays the fuzz targets' committed inputs as a stable test: the seed corpus
//! (`fuzz/seeds/TARGET/`) and every input that once failed (`fuzz/regressions/TARGET/`), through
//! the same harness the fuzzer runs (`fuzz/src/lib.rs`), so a fixed finding stays fixed on the
//! stable toolchain without cargo-fuzz.
//!
//! `cargo test --test fuzz_regressions -- --ignored write_seeds` rewrites the generated seeds.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: harness::Counting = harness::Counting;

/// A fuzz target: what it does with one input.
type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("model_bytes", harness::model_bytes),
    ("c_entry_points", harness::c_entry_points),
    ("image_inputs", harness::image_inputs),
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind);
    let mut n = 0;
    for (target, run) in TARGETS {
        for f in inputs(&root.join(target)) {
            let data = std::fs::read(&f).unwrap();
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{target}: {} fails", f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn seed_corpus_passes() {
    let n = replay("seeds");
    assert!(n >= 20, "only {n} seed inputs under fuzz/seeds");
}

#[test]
fn every_past_finding_stays_fixed() {
    replay("regressions");
}

/// Writes the generated part of the seed corpus: valid tiny model files (f32 and f16) and
/// truncations of them, small PNG/JPEG images and masks, and argument strings that reach each
/// C entry point.
#[test]
#[ignore]
fn write_seeds() {
    use lediflow::PriorKind;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (name, prior) in [("learned", PriorKind::Learned), ("gaussian", PriorKind::Gaussian)] {
        let file = harness::tiny_model_file(prior);
        put("model_bytes", &format!("tiny-{name}.safetensors"), &file);
        let header = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
        put("model_bytes", &format!("tiny-{name}-header-only"), &file[..header]);
        put("model_bytes", &format!("tiny-{name}-cut"), &file[..header + 64]);
    }
    put("model_bytes", "length-only", &u64::MAX.to_le_bytes());
    put("model_bytes", "empty-header", b"\x02\x00\x00\x00\x00\x00\x00\x00{}");

    // One input per C operation (the second byte picks it), models and params varied.
    for op in 0u8..12 {
        for (k, model) in [(0u8, 3u8), (1, 1), (2, 0)] {
            let mut input = vec![model, op, 1 + k, 1, 1, 1, 0, 0, 0, 0, 3, 2, 4];
            input.extend((0u8..64).map(|i| i.wrapping_mul(37).wrapping_add(op)));
            put("c_entry_points", &format!("op{op:02}-{k}"), &input);
        }
    }

    let sprite = image::RgbaImage::from_fn(16, 16, |x, y| {
        image::Rgba([(x * 16) as u8, (y * 16) as u8, 128, if (x + y) % 5 == 0 { 0 } else { 255 }])
    });
    let mask = image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]));
    let encode = |img: image::DynamicImage, fmt: image::ImageFormat| {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, fmt).unwrap();
        buf.into_inner()
    };
    let png = encode(sprite.clone().into(), image::ImageFormat::Png);
    let mask_png = encode(mask.into(), image::ImageFormat::Png);
    let jpeg = encode(image::DynamicImage::from(sprite).into_rgb8().into(), image::ImageFormat::Jpeg);
    let with = |mode: u8, cut: usize, a: &[u8], b: &[u8]| {
        let mut v = vec![mode, (cut >> 4) as u8];
        v.extend_from_slice(a);
        v.resize(2 + (cut >> 4 << 4).max(a.len()), 0);
        v.extend_from_slice(b);
        v
    };
    put("image_inputs", "png-and-mask", &with(0, png.len().next_multiple_of(16), &png, &mask_png));
    put("image_inputs", "jpeg-no-mask", &with(0, jpeg.len().next_multiple_of(16), &jpeg, &[]));
    put("image_inputs", "raw-exact", &[1, 64, 0, 64, 0, 7, 9, 11]);
    put("image_inputs", "raw-short-mask", &[1, 64, 0, 63, 3, 1, 2, 3]);
    put("image_inputs", "vary", &[2, 0, 0, 0, 63, 1]);
}
