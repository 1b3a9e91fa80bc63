//! Model-file round trip and every rejection case.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use lediflow::checkpoint::{self, METADATA_KEY, parameter_values, to_safetensors_bytes};
use lediflow::{Error, ModelMeta, Pipeline, PriorKind};

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn model_bytes(prior: PriorKind) -> (Vec<u8>, Tensors, ModelMeta) {
    let cfg = tiny_config(4, 16, prior);
    let nets = random_networks(&cfg, 3);
    let meta = ModelMeta::new(cfg, serde_json::json!({"steps": 1}));
    let bytes = checkpoint::to_bytes(&nets, &meta).unwrap();
    (bytes, parameter_values(&nets), meta)
}

fn meta_map(meta: &ModelMeta) -> HashMap<String, String> {
    HashMap::from([(METADATA_KEY.to_string(), serde_json::to_string(meta).unwrap())])
}

fn expect_format_error(bytes: &[u8], needle: &str) {
    match Pipeline::<B>::from_bytes(bytes, &Default::default()) {
        Err(Error::Format(msg)) => assert!(msg.contains(needle), "message '{msg}' lacks '{needle}'"),
        Err(other) => panic!("expected a format error containing '{needle}', got {other}"),
        Ok(_) => panic!("malformed file accepted (expected '{needle}')"),
    }
}

#[test]
fn round_trip_is_bit_exact_for_both_prior_kinds() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let (bytes, tensors, meta) = model_bytes(prior);
        let p = Pipeline::<B>::from_bytes(&bytes, &Default::default()).unwrap();
        assert_eq!(p.meta(), &meta);
        let back = parameter_values(p.networks());
        assert_eq!(back.len(), tensors.len());
        for (name, (shape, values)) in &tensors {
            let (s2, v2) = &back[name];
            assert_eq!(shape, s2, "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(values), bits(v2), "{name} changed in the round trip");
        }
        // And again through a file: the bytes written are the bytes read.
        let dir = tempdir();
        let path = dir.join("m.safetensors");
        p.save(&path).unwrap();
        let p2 = Pipeline::<B>::load(&path, &Default::default()).unwrap();
        assert_eq!(checkpoint::to_bytes(p2.networks(), p2.meta()).unwrap(), std::fs::read(&path).unwrap());
    }
}

#[test]
fn missing_tensor_is_named() {
    let (_, mut t, meta) = model_bytes(PriorKind::Learned);
    t.remove("velocity.final_proj.weight");
    let bytes = to_safetensors_bytes(&t, meta_map(&meta)).unwrap();
    expect_format_error(&bytes, "missing tensor 'velocity.final_proj.weight'");
}

#[test]
fn extra_tensor_is_named() {
    let (_, mut t, meta) = model_bytes(PriorKind::Learned);
    t.insert("velocity.bogus".into(), (vec![2], vec![0.0, 1.0]));
    let bytes = to_safetensors_bytes(&t, meta_map(&meta)).unwrap();
    expect_format_error(&bytes, "unexpected tensor 'velocity.bogus'");
}

#[test]
fn gaussian_file_with_aux_tensors_is_rejected() {
    let (_, learned, _) = model_bytes(PriorKind::Learned);
    let (_, _, gauss_meta) = model_bytes(PriorKind::Gaussian);
    let bytes = to_safetensors_bytes(&learned, meta_map(&gauss_meta)).unwrap();
    expect_format_error(&bytes, "not part of this model's networks");
}

#[test]
fn wrong_shape_is_named() {
    let (_, mut t, meta) = model_bytes(PriorKind::Learned);
    let e = t.get_mut("latent.input.weight").unwrap();
    e.0 = vec![e.0[1], e.0[0]];
    let bytes = to_safetensors_bytes(&t, meta_map(&meta)).unwrap();
    expect_format_error(&bytes, "tensor 'latent.input.weight' has shape");
}

#[test]
fn wrong_dtype_is_rejected() {
    let (_, t, meta) = model_bytes(PriorKind::Gaussian);
    // Re-encode one tensor as I32 with the same byte size.
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = t
        .iter()
        .map(|(k, (s, v))| {
            (k.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), safetensors::Dtype::F32)
        })
        .collect();
    owned[0].3 = safetensors::Dtype::I32;
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(k, s, b, d)| (k.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, &Some(meta_map(&meta))).unwrap();
    expect_format_error(&bytes, "dtype I32");
}

#[test]
fn non_finite_weights_are_rejected() {
    let (_, mut t, meta) = model_bytes(PriorKind::Gaussian);
    t.get_mut("velocity.patch_embed.weight").unwrap().1[5] = f32::NAN;
    let bytes = to_safetensors_bytes(&t, meta_map(&meta)).unwrap();
    expect_format_error(&bytes, "non-finite");
}

#[test]
fn newer_format_version_is_refused_clearly() {
    let (_, t, mut meta) = model_bytes(PriorKind::Learned);
    meta.format_version = lediflow::FORMAT_VERSION + 1;
    let bytes = to_safetensors_bytes(&t, meta_map(&meta)).unwrap();
    expect_format_error(&bytes, "newer than this library supports");
}

#[test]
fn a_version_that_cannot_hold_the_network_is_refused_on_load_and_on_save() {
    // A per-pixel head needs format 2: a file that says 1 would be misread by older libraries.
    let mut cfg = common::tiny_config(4, 16, PriorKind::Gaussian);
    cfg.dit.pixel_head = 4;
    let nets = common::random_networks(&cfg, 1);
    let mut meta = ModelMeta::new(cfg, serde_json::Value::Null);
    assert_eq!(meta.format_version, 2);
    meta.format_version = 1;
    let t: Tensors = parameter_values(&nets);
    expect_format_error(&to_safetensors_bytes(&t, meta_map(&meta)).unwrap(), "cannot hold this network");
    assert!(matches!(lediflow::checkpoint::to_bytes(&nets, &meta), Err(lediflow::Error::InvalidArgument(_))));
}

#[test]
fn the_writer_refuses_files_the_reader_would_refuse() {
    let cfg = common::tiny_config(4, 16, PriorKind::Gaussian);
    let nets = common::random_networks(&cfg, 1);
    let mut meta = ModelMeta::new(cfg, serde_json::Value::Null);
    meta.sampling.time_shift = Some(1000.0);
    assert!(matches!(lediflow::checkpoint::to_bytes(&nets, &meta), Err(lediflow::Error::InvalidArgument(_))));
    meta.sampling.time_shift = None;
    use burn::module::Module;
    let broken = lediflow::model::Networks { velocity: nets.velocity.clone().map(&mut NanFirst(true)), ..nets };
    let e = lediflow::checkpoint::to_bytes(&broken, &meta).unwrap_err();
    assert!(e.to_string().contains("NaN or infinity"), "{e}");
}

/// Sets the first element of the first float parameter it meets to NaN.
struct NanFirst(bool);

impl<Bk: burn::prelude::Backend> burn::module::ModuleMapper<Bk> for NanFirst {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::prelude::Tensor<Bk, D>>,
    ) -> burn::module::Param<burn::prelude::Tensor<Bk, D>> {
        if !std::mem::take(&mut self.0) {
            return param;
        }
        let (id, t, mapper) = param.consume();
        let mut v = t.to_data().convert::<f32>().into_vec::<f32>().unwrap();
        v[0] = f32::NAN;
        let t = burn::prelude::Tensor::from_data(burn::tensor::TensorData::new(v, t.dims()), &t.device());
        burn::module::Param::from_mapped_value(id, t, mapper)
    }
}

#[test]
fn truncated_file_is_rejected() {
    let (bytes, _, _) = model_bytes(PriorKind::Learned);
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        expect_format_error(&bytes[..cut], "not a valid safetensors file");
    }
}

#[test]
fn hostile_headers_are_rejected() {
    // Header length far beyond the buffer.
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    expect_format_error(&b, "not a valid safetensors file");
    // Header that is not JSON.
    let junk = b"\x01\x02garbage";
    let mut b = (junk.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(junk);
    expect_format_error(&b, "not a valid safetensors file");
    // Tensor whose offsets point outside the data section.
    let header = br#"{"x":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&[0u8; 16]);
    expect_format_error(&b, "not a valid safetensors file");
}

#[test]
fn metadata_problems_are_named() {
    let (_, t, meta) = model_bytes(PriorKind::Learned);
    let no_meta = to_safetensors_bytes(&t, HashMap::new()).unwrap();
    expect_format_error(&no_meta, "not a lediflow model file");
    let bad_json = to_safetensors_bytes(&t, HashMap::from([(METADATA_KEY.into(), "{not json".into())])).unwrap();
    expect_format_error(&bad_json, "not valid JSON");
    let mut v = serde_json::to_value(&meta).unwrap();
    v["config"]["image"]["channels"] = 2.into();
    let bad_cfg = to_safetensors_bytes(&t, HashMap::from([(METADATA_KEY.into(), v.to_string())])).unwrap();
    expect_format_error(&bad_cfg, "channels must be 1, 3 or 4");
    let mut v = serde_json::to_value(&meta).unwrap();
    v["config"]["dit"]["dim"] = 1_000_000_000u64.into();
    let huge = to_safetensors_bytes(&t, HashMap::from([(METADATA_KEY.into(), v.to_string())])).unwrap();
    expect_format_error(&huge, "dit: dim");
    let mut v = serde_json::to_value(&meta).unwrap();
    v.as_object_mut().unwrap().remove("config");
    let missing = to_safetensors_bytes(&t, HashMap::from([(METADATA_KEY.into(), v.to_string())])).unwrap();
    expect_format_error(&missing, "does not match the schema");
}

#[test]
fn failed_save_leaves_the_old_file_and_no_temp() {
    let (bytes, _, _) = model_bytes(PriorKind::Gaussian);
    let dir = tempdir();
    let path = dir.join("model.safetensors");
    std::fs::write(&path, b"previous").unwrap();
    // A directory in the way of the rename makes the write fail after the temp file exists.
    let blocked = dir.join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    assert!(checkpoint::write_atomic(&blocked, &bytes).is_err());
    assert!(blocked.join("keep").exists());
    checkpoint::write_atomic(&path, &bytes).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn missing_file_is_an_io_error() {
    let r = Pipeline::<B>::load("/nonexistent/dir/model.safetensors", &Default::default());
    assert!(matches!(r, Err(Error::Io(_))));
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lediflow-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn fp16_files_load_and_sample_close_to_fp32() {
    let cfg = tiny_config(4, 16, PriorKind::Learned);
    let nets = random_networks(&cfg, 12);
    let meta = ModelMeta::new(cfg, serde_json::Value::Null);
    let b32 = checkpoint::to_bytes(&nets, &meta).unwrap();
    let b16 = checkpoint::to_bytes_as(&nets, &meta, checkpoint::StoreDtype::F16).unwrap();
    assert!(b16.len() < b32.len() * 6 / 10);
    let p32 = Pipeline::<B>::from_bytes(&b32, &Default::default()).unwrap();
    let p16 = Pipeline::<B>::from_bytes(&b16, &Default::default()).unwrap();
    let o = lediflow::SampleOptions { seed: 2, ..Default::default() };
    let a = to_vec(p32.sample(2, &o).unwrap());
    let b = to_vec(p16.sample(2, &o).unwrap());
    assert!(max_abs_diff(&a, &b) < 0.05, "fp16 changed samples by {}", max_abs_diff(&a, &b));
}
