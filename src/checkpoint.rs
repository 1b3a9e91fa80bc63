//! The model file: ONE `.safetensors` file with every network of a pipeline (tensor names are
//! module paths such as `velocity.blocks.0.qkv.weight`) and a JSON document under the
//! metadata key `lediflow` holding the format version, the full config and provenance.
//!
//! Loading trusts nothing: the header is parsed by the safetensors crate (which checks sizes
//! and offsets), the JSON config is range-checked before any tensor is allocated, and the
//! tensor set must match the networks the config describes exactly: names, dtype, shapes.
//! Writing goes to a temporary file in the same directory that is synced and then renamed over
//! the target, so a crash never leaves a half-written model.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Networks;

/// The newest file format version this build reads and writes. 2: the image network may
/// predict the clean image (`dit.prediction = "data"`) or have a per-pixel head
/// (`dit.pixel_head`); such files say 2 so that older libraries, which would read
/// the output as a velocity or not know the head's tensors, refuse them with a version message.
/// 3: the model is class-conditional (`classes`, and its networks' class tables). Every file is
/// written with the oldest version that reads it right ([`format_version_for`]).
pub const FORMAT_VERSION: u32 = 3;

/// The format version a file with `config` is written with: the oldest that reads it right.
pub fn format_version_for(config: &ModelConfig) -> u32 {
    let data = config.dit.prediction == crate::config::Prediction::Data;
    if !config.classes.is_unconditional() {
        3
    } else if data || config.dit.pixel_head > 0 {
        2
    } else {
        1
    }
}
/// Metadata key holding the JSON [`ModelMeta`].
pub const METADATA_KEY: &str = "lediflow";

/// Named f32 tensors: path -> (shape, values).
pub type NamedTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Everything in a model file besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format_version: u32,
    pub config: ModelConfig,
    pub provenance: Provenance,
    /// Sampling settings the model's maker recommends; a call that leaves a setting to the model
    /// (e.g. `SampleOptions::time_shift` = None) uses them. Absent in older files.
    #[serde(default, skip_serializing_if = "SamplingDefaults::is_empty")]
    pub sampling: SamplingDefaults,
}

/// Recommended sampling settings stored in a model file (`lediflow convert --time-shift`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingDefaults {
    /// The image flow's solver-grid shift ([`crate::flow::time_grid`]); None = 1 (equal steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_shift: Option<f32>,
}

impl SamplingDefaults {
    pub fn is_empty(&self) -> bool {
        self.time_shift.is_none()
    }

    /// Checks the values against the ranges sampling accepts (a model file is untrusted input).
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.time_shift
            && !crate::pipeline::valid_time_shift(t)
        {
            return Err(Error::Format(format!("sampling.time_shift must be in [0.01, 100], got {t}")));
        }
        Ok(())
    }
}

/// Where a model came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// lediflow version that wrote the file.
    pub library_version: String,
    /// Seconds since the Unix epoch when the file was written.
    pub created_unix: u64,
    /// Free-form training record (data set, steps, batch, final losses, command line).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl ModelMeta {
    pub fn new(config: ModelConfig, training: serde_json::Value) -> Self {
        let created_unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Self {
            format_version: format_version_for(&config),
            config,
            provenance: Provenance { library_version: env!("CARGO_PKG_VERSION").to_string(), created_unix, training },
            sampling: SamplingDefaults::default(),
        }
    }
}

/// Collects (dotted module path -> (shape, f32 values)) for every float parameter.
struct Collector {
    path: Vec<String>,
    out: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    with_values: bool,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let (shape, values) = if self.with_values {
            let t = param.val();
            (
                t.dims().to_vec(),
                t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 conversion of a float tensor"),
            )
        } else {
            // Without initialising the parameter: a model file is checked against these shapes
            // before any weight is allocated, so a few hundred bytes of metadata naming a huge
            // network cannot make loading allocate (and abort the host) before it fails.
            (param.lazy_shape().to_vec(), Vec::new())
        };
        self.out.insert(self.path.join("."), (shape, values));
    }
}

/// The parameter names and shapes of a module, in a stable order. Leaves lazily initialised
/// parameters uninitialised.
pub fn parameter_shapes<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, Vec<usize>> {
    let mut c = Collector { path: Vec::new(), out: BTreeMap::new(), with_values: false };
    module.visit(&mut c);
    c.out.into_iter().map(|(k, (s, _))| (k, s)).collect()
}

/// Every float parameter of a module with its values.
pub fn parameter_values<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut c = Collector { path: Vec::new(), out: BTreeMap::new(), with_values: true };
    module.visit(&mut c);
    c.out
}

/// Replaces every float parameter by the tensor of the same path from `source`.
struct Loader<'a> {
    path: Vec<String>,
    source: &'a NamedTensors,
}

impl<B: Backend> ModuleMapper<B> for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, old, mapper) = param.consume();
        let name = self.path.join(".");
        // Names and shapes were checked against the same module before mapping.
        let (shape, values) = &self.source[&name];
        let device = old.device();
        let mut t = Tensor::<B, D>::from_data(TensorData::new(values.clone(), shape.clone()), &device);
        if old.is_require_grad() {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Element type of the tensors in a written model file. Files are always read back as f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreDtype {
    F32,
    /// Half the size; weights are rounded to the nearest f16 (about 3 significant digits).
    F16,
}

/// Serialises named f32 tensors plus metadata into safetensors bytes.
pub fn to_safetensors_bytes(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    to_safetensors_bytes_as(tensors, metadata, StoreDtype::F32)
}

/// Like [`to_safetensors_bytes`], storing the tensors as `dtype`.
pub fn to_safetensors_bytes_as(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: HashMap<String, String>,
    dtype: StoreDtype,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| {
            let b = match dtype {
                StoreDtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                StoreDtype::F16 => v.iter().flat_map(|x| f32_to_half(*x).to_le_bytes()).collect(),
            };
            (k.clone(), shape.clone(), b)
        })
        .collect();
    let st_dtype = match dtype {
        StoreDtype::F32 => Dtype::F32,
        StoreDtype::F16 => Dtype::F16,
    };
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            TensorView::new(st_dtype, shape.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Internal(format!("tensor view {k}: {e}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, &Some(metadata)).map_err(|e| Error::Internal(format!("serialize: {e}")))
}

/// Temporary files `write_atomic` is writing right now, so that a process about to exit at once
/// (the CLI's second Ctrl-C) can remove them instead of leaving `.NAME.PID.tmp` behind.
static PENDING_TEMP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers a temporary file for the lifetime of the guard.
struct PendingTemp(PathBuf);

impl PendingTemp {
    fn new(path: PathBuf) -> Self {
        PENDING_TEMP.lock().unwrap_or_else(|e| e.into_inner()).push(path.clone());
        PendingTemp(path)
    }
}

impl Drop for PendingTemp {
    fn drop(&mut self) {
        PENDING_TEMP.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != &self.0);
    }
}

/// Removes the temporary files of writes still in progress, for a process about to exit without
/// finishing them. Never leaves a half-written target: a write whose temp file was removed fails
/// its rename, and the target keeps its previous contents.
pub fn remove_pending_temp_files() {
    remove_pending_temp_files_where(|_| true);
}

fn remove_pending_temp_files_where(pick: impl Fn(&Path) -> bool) {
    let pending = PENDING_TEMP.lock().unwrap_or_else(|e| e.into_inner());
    for p in pending.iter().filter(|p| pick(p)) {
        let _ = std::fs::remove_file(p);
    }
}

/// Removes the temporary files that writers killed before they could finish (`.NAME.PID.tmp`
/// of a process that no longer runs) from `dir`, optionally only those of the target `name`. A
/// SIGKILL mid-write leaves its target whole (the previous version) and such a file beside it.
pub fn remove_stale_temp_files(dir: &Path, name: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(inner) = file.strip_prefix('.').and_then(|f| f.strip_suffix(".tmp")) else { continue };
        let Some((target, pid)) = inner.rsplit_once('.') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if name.is_some_and(|n| n != target) || pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// Whether a process with this id exists (on other systems than Unix: assumed so).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name =
        path.file_name().ok_or_else(|| Error::InvalidArgument(format!("not a file path: {}", path.display())))?;
    let tmp = dir.join(format!(".{}.{}.tmp", file_name.to_string_lossy(), std::process::id()));
    let _pending = PendingTemp::new(tmp.clone());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Encodes networks and metadata as model-file bytes.
pub fn to_bytes<B: Backend>(nets: &Networks<B>, meta: &ModelMeta) -> Result<Vec<u8>> {
    to_bytes_as(nets, meta, StoreDtype::F32)
}

/// Encodes networks and metadata as model-file bytes with tensors stored as `dtype`.
pub fn to_bytes_as<B: Backend>(nets: &Networks<B>, meta: &ModelMeta, dtype: StoreDtype) -> Result<Vec<u8>> {
    // A file is written only if this library would load it back.
    let invalid = |e: Error| match e {
        Error::Format(m) => Error::InvalidArgument(m),
        e => e,
    };
    meta.config.validate()?;
    meta.sampling.validate().map_err(invalid)?;
    check_version(meta).map_err(invalid)?;
    let json = serde_json::to_string(meta).map_err(|e| Error::Internal(format!("metadata json: {e}")))?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    let values = parameter_values(nets);
    if let Some((name, _)) = values.iter().find(|(_, (_, v))| v.iter().any(|x| !x.is_finite())) {
        return Err(Error::InvalidArgument(format!("tensor '{name}' holds a NaN or infinity")));
    }
    if dtype == StoreDtype::F16
        && let Some((name, _)) = values.iter().find(|(_, (_, v))| v.iter().any(|x| x.abs() > 65504.0))
    {
        return Err(Error::InvalidArgument(format!("tensor '{name}' has values beyond the f16 range")));
    }
    to_safetensors_bytes_as(&values, metadata, dtype)
}

/// f32 to IEEE half, rounding to nearest even (finite inputs within the half range).
pub fn f32_to_half(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal half: shift the mantissa (with its implicit 1) into place, round to even.
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let rounded = if rem > mid || (rem == mid && half & 1 == 1) { half + 1 } else { half };
        return sign | rounded as u16;
    }
    let half = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    let rounded = if rem > 0x1000 || (rem == 0x1000 && half & 1 == 1) { half + 1 } else { half };
    sign | rounded as u16
}

/// Saves networks and metadata to `path` atomically.
pub fn save<B: Backend>(path: &Path, nets: &Networks<B>, meta: &ModelMeta) -> Result<()> {
    write_atomic(path, &to_bytes(nets, meta)?)
}

/// Parses and checks the metadata of model-file bytes without touching the tensors.
pub fn read_meta(bytes: &[u8]) -> Result<ModelMeta> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::Format(format!("not a valid safetensors file: {e}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| Error::Format(format!("no '{METADATA_KEY}' metadata: not a lediflow model file")))?;
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::Format(format!("metadata is not valid JSON: {e}")))?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| Error::Format("metadata has no format_version".into()))?;
    if version > FORMAT_VERSION as u64 {
        return Err(Error::Format(format!(
            "model file format version {version} is newer than this library supports ({FORMAT_VERSION}); upgrade lediflow"
        )));
    }
    if version == 0 {
        return Err(Error::Format("model file format version 0 is not valid".into()));
    }
    let meta: ModelMeta =
        serde_json::from_value(value).map_err(|e| Error::Format(format!("metadata does not match the schema: {e}")))?;
    meta.config.validate()?;
    meta.sampling.validate()?;
    check_version(&meta)?;
    Ok(meta)
}

/// A file's format version must be able to hold its network: an older library reading a
/// version-1 file with a version-2 feature would compute something else without noticing.
fn check_version(meta: &ModelMeta) -> Result<()> {
    let needed = format_version_for(&meta.config);
    if !(needed..=FORMAT_VERSION).contains(&meta.format_version) {
        return Err(Error::Format(format!(
            "format version {} cannot hold this network (its image flow needs version {needed} to {FORMAT_VERSION})",
            meta.format_version
        )));
    }
    Ok(())
}

/// Reads the tensors of `bytes` and checks them against what `nets` expects.
fn read_tensors(bytes: &[u8], expected: &BTreeMap<String, Vec<usize>>) -> Result<NamedTensors> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| Error::Format(format!("not a valid safetensors file: {e}")))?;
    let mut out = HashMap::new();
    for (name, view) in st.iter() {
        let Some(shape) = expected.get(name) else {
            return Err(Error::Format(format!("unexpected tensor '{name}' (not part of this model's networks)")));
        };
        if view.shape() != shape.as_slice() {
            return Err(Error::Format(format!(
                "tensor '{name}' has shape {:?}, the config requires {:?}",
                view.shape(),
                shape
            )));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            other => {
                return Err(Error::Format(format!(
                    "tensor '{name}' has dtype {other:?}; only F32 and F16 are supported"
                )));
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Format(format!("tensor '{name}' holds a non-finite value at element {i}")));
        }
        out.insert(name.to_string(), (shape.clone(), values));
    }
    if let Some(missing) = expected.keys().find(|k| !out.contains_key(*k)) {
        return Err(Error::Format(format!("missing tensor '{missing}'")));
    }
    Ok(out)
}

/// IEEE half to f32 (for fp16 model files).
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Loads networks and metadata from model-file bytes onto `device`.
pub fn from_bytes<B: Backend>(bytes: &[u8], device: &B::Device) -> Result<(Networks<B>, ModelMeta)> {
    let meta = read_meta(bytes)?;
    let nets = Networks::<B>::new(&meta.config, device);
    let expected = parameter_shapes(&nets);
    let tensors = read_tensors(bytes, &expected)?;
    let nets = load_into(nets, &tensors);
    Ok((nets, meta))
}

/// Loads a model file from `path`.
pub fn load<B: Backend>(path: &Path, device: &B::Device) -> Result<(Networks<B>, ModelMeta)> {
    let bytes = std::fs::read(path)?;
    from_bytes(&bytes, device)
}

/// Maps already-validated tensors into a module.
pub fn load_into<B: Backend, M: Module<B>>(module: M, tensors: &NamedTensors) -> M {
    module.map(&mut Loader { path: Vec::new(), source: tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temp file is listed while its write is in progress and removed by the exit path; once
    /// the write is over it is forgotten, and a finished target is never touched.
    #[test]
    fn pending_temp_files_are_listed_while_written_and_removed_on_exit() {
        let dir = std::env::temp_dir().join(format!("lediflow-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mine = |p: &Path| p.starts_with(&dir);
        let tmp = dir.join(".m.safetensors.1.tmp");
        {
            let _pending = PendingTemp::new(tmp.clone());
            std::fs::write(&tmp, b"half").unwrap();
            remove_pending_temp_files_where(mine);
            assert!(!tmp.exists(), "the exit path leaves the temp file of a write in progress");
        }
        std::fs::write(&tmp, b"not ours any more").unwrap();
        remove_pending_temp_files_where(mine);
        assert!(tmp.exists(), "a temp file whose write ended is still removed");
        let target = dir.join("m.safetensors");
        write_atomic(&target, b"whole").unwrap();
        remove_pending_temp_files_where(mine);
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert!(!PENDING_TEMP.lock().unwrap().iter().any(|p| p.starts_with(&dir)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn half_round_trip() {
        for x in [0.0f32, 1.0, -2.0, 0.1, 65504.0, 6.0e-8, 1.0e-5, -2.5, 1234.5] {
            let back = half_to_f32(f32_to_half(x));
            assert!((back - x).abs() <= x.abs() * 1e-3 + 6e-8, "{x} -> {back}");
        }
        // Round to nearest even at the exact midpoint between 1.0 and the next half.
        assert_eq!(f32_to_half(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_half(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    }

    #[test]
    fn half_conversion() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0000), 0.0);
        assert_eq!(half_to_f32(0x7bff), 65504.0);
        assert_eq!(half_to_f32(0x0001), 5.960_464_5e-8);
    }
}
