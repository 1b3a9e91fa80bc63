//! What each fuzz target does with its input. Shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and by the stable test that replays the committed seed corpus and every
//! input that once failed (`tests/fuzz_regressions.rs`), so a finding stays fixed.
//!
//! Every target checks the library's promises, not only "no crash": a status is one of the
//! documented codes and never `LDF_ERR_INTERNAL` (a caught panic), a failing call says why in
//! `ldf_last_error()`, a refused call writes nothing into the caller's buffer, kept pixels of an
//! inpainting come back byte for byte, and a model file that is refused made the loader allocate
//! no more than a small fixed bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use lediflow::capi::*;
use lediflow::checkpoint;
use lediflow::model::Networks;
use lediflow::{CpuBackend, Model, ModelConfig, ModelMeta, PriorKind, SampleOptions};

// ---------------------------------------------------------------------------------------------
// Allocation accounting (each binary installs `Counting` as its global allocator).

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live and peak bytes.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Bytes the loader may allocate beyond a few copies of the file before it refuses one.
pub const LOAD_BOUND: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// Reading arguments out of the fuzzer's bytes (zeros once they run out).

struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
    fn flag(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// A size argument: mostly small and cheap, sometimes just past `limit` or absurd.
    fn size(&mut self, small: u32, limit: u32) -> u32 {
        match self.u8() % 8 {
            0 => 0,
            1 => limit.saturating_add(1 + u32::from(self.u8())),
            2 => u32::MAX,
            _ => u32::from(self.u8()) % (small + 1),
        }
    }
    /// `n` bytes of the input, repeated to length (zeros for an empty input).
    fn fill(&mut self, n: usize) -> Vec<u8> {
        let take = n.min(self.data.len());
        let (head, rest) = self.data.split_at(take);
        self.data = rest;
        if head.is_empty() {
            return vec![0; n];
        }
        head.iter().copied().cycle().take(n).collect()
    }
    fn rest(self) -> &'a [u8] {
        self.data
    }
}

// ---------------------------------------------------------------------------------------------
// The tiny models the call targets run on (built once per process).

struct Tiny {
    learned: usize,
    gaussian: usize,
    learned_model: Model,
}

/// The `tiny` preset made smaller still (a file of tens of kilobytes, so the fuzzer mutates and
/// loads it quickly), stored as f16. The learned-prior one is class-conditional (three classes,
/// both flows), the Gaussian one unconditional.
fn tiny_bytes(prior: PriorKind) -> Vec<u8> {
    let mut cfg = ModelConfig::preset("tiny", 4, 16, prior).expect("the tiny preset");
    if prior == PriorKind::Learned {
        cfg.classes.names = vec!["floor".into(), "item".into(), "creature".into()];
        cfg.classes.image_flow = true;
    }
    cfg.aux.base_channels = 4;
    cfg.latent.hidden = 16;
    cfg.dit.dim = 16;
    cfg.dit.heads = 1;
    cfg.validate().expect("a valid config");
    let nets = Networks::<CpuBackend>::new(&cfg, &Default::default());
    let meta = ModelMeta::new(cfg, serde_json::json!({"fuzz": true}));
    checkpoint::to_bytes_as(&nets, &meta, checkpoint::StoreDtype::F16).expect("serialise")
}

fn tiny() -> &'static Tiny {
    static TINY: OnceLock<Tiny> = OnceLock::new();
    TINY.get_or_init(|| {
        let load = |prior| {
            let bytes = tiny_bytes(prior);
            let mut m = ptr::null_mut();
            // SAFETY: valid buffer and out pointer.
            let s = unsafe { ldf_model_load_from_memory(bytes.as_ptr(), bytes.len(), LDF_DEVICE_CPU, &mut m) };
            assert_eq!(s, LDF_OK, "the tiny model loads");
            m as usize
        };
        let learned_model = Model::from_bytes(&tiny_bytes(PriorKind::Learned), Default::default()).expect("tiny");
        Tiny { learned: load(PriorKind::Learned), gaussian: load(PriorKind::Gaussian), learned_model }
    })
}

/// The bytes of a valid tiny model file, for the seed corpus of `model_bytes`.
pub fn tiny_model_file(prior: PriorKind) -> Vec<u8> {
    tiny_bytes(prior)
}

fn last_error() -> String {
    // SAFETY: never NULL, valid until the next call on this thread.
    unsafe { CStr::from_ptr(ldf_last_error()) }.to_string_lossy().into_owned()
}

/// The promises every status keeps.
fn check_status(what: &str, s: LdfStatus) {
    assert!((LDF_OK..=LDF_ERR_INTERNAL).contains(&s), "{what}: undocumented status {s}");
    let msg = last_error();
    assert_ne!(s, LDF_ERR_INTERNAL, "{what}: internal error: {msg}");
    if s == LDF_OK {
        assert!(msg.is_empty(), "{what}: succeeded but left the message {msg:?}");
    } else {
        assert!(!msg.is_empty(), "{what}: status {s} without a message");
    }
}

// ---------------------------------------------------------------------------------------------
// Target 1: a model file's bytes.

/// Loads `data` as a model file through the C entry point; a refused file must have cost no
/// more than `LOAD_BOUND` plus a few copies of itself, a loaded one must describe itself and
/// sample one image.
pub fn model_bytes(data: &[u8]) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut m = ptr::null_mut();
    // SAFETY: `data` is readable for its length (a dangling but non-null pointer when empty).
    let s = unsafe { ldf_model_load_from_memory(data.as_ptr(), data.len(), LDF_DEVICE_CPU, &mut m) };
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    check_status("ldf_model_load_from_memory", s);
    if s != LDF_OK {
        assert!(m.is_null(), "a refused load left a model behind");
        let bound = LOAD_BOUND + 4 * data.len();
        assert!(grew <= bound, "a refused file of {} bytes made the loader allocate {grew} bytes", data.len());
        return;
    }
    let mut info = LdfModelInfo { struct_size: size_of::<LdfModelInfo>() as u32, ..Default::default() };
    // SAFETY: a live model and a writable info struct.
    check_status("ldf_model_info", unsafe { ldf_model_info(m, &mut info) });
    let params = LdfSampleParams { steps: 1, latent_steps: 1, ..Default::default() };
    let mut out = vec![0u8; info.image_bytes];
    // SAFETY: a live model, valid params, a buffer of one image.
    let s = unsafe { ldf_sample(m, 1, &params, out.as_mut_ptr(), out.len()) };
    check_status("ldf_sample on a fuzzed model", s);
    // SAFETY: the model from the load above.
    unsafe { ldf_model_free(m) };
}

// ---------------------------------------------------------------------------------------------
// Target 2: the C entry points with arbitrary arguments and buffers.

/// A caller's buffer: `len` bytes filled with a sentinel, at an offset that may misalign it.
struct Buf {
    mem: Vec<u64>,
    offset: usize,
    len: usize,
}

const SENTINEL: u8 = 0xA5;

impl Buf {
    fn new(len: usize, offset: usize) -> Self {
        let words = (len + offset).div_ceil(8) + 1;
        let mut b = Buf { mem: vec![0; words], offset, len };
        b.bytes_mut().fill(SENTINEL);
        b
    }
    fn with(content: &[u8], offset: usize) -> Self {
        let mut b = Buf::new(content.len(), offset);
        b.bytes_mut().copy_from_slice(content);
        b
    }
    fn ptr(&mut self) -> *mut u8 {
        // SAFETY: offset + len stays inside `mem`.
        unsafe { (self.mem.as_mut_ptr() as *mut u8).add(self.offset) }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: offset + len bytes are inside `mem`.
        unsafe { std::slice::from_raw_parts((self.mem.as_ptr() as *const u8).add(self.offset), self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), len) }
    }
    fn untouched(&self) -> bool {
        self.bytes().iter().all(|&b| b == SENTINEL)
    }
}

/// An output buffer for `need` bytes: exact, short, long, empty or NULL, maybe misaligned.
fn out_buf(r: &mut Bytes, need: usize) -> (Option<Buf>, usize) {
    let offset = if r.u8().is_multiple_of(8) { 1 + usize::from(r.u8() % 3) } else { 0 };
    match r.u8() % 8 {
        0 => (None, need),
        1 => (Some(Buf::new(need.saturating_sub(1), offset)), need.saturating_sub(1)),
        2 => (Some(Buf::new(0, offset)), 0),
        3 => (Some(Buf::new(need + 7, offset)), need + 7),
        _ => (Some(Buf::new(need, offset)), need),
    }
}

fn out_ptr(b: &mut Option<Buf>) -> *mut u8 {
    b.as_mut().map_or(ptr::null_mut(), Buf::ptr)
}

/// Sample params: NULL, the defaults, or fields set from the input (valid or not).
fn params(r: &mut Bytes) -> Option<Box<[u64; 32]>> {
    if r.u8().is_multiple_of(6) {
        return None;
    }
    let mut storage = Box::new([0u64; 32]); // 256 bytes, more than any struct_size read
    let p = storage.as_mut_ptr() as *mut LdfSampleParams;
    // SAFETY: 256 writable, aligned bytes.
    let s = unsafe { ldf_sample_params_init_sized(p, size_of::<LdfSampleParams>()) };
    assert_eq!(s, LDF_OK);
    // SAFETY: initialised above.
    let q = unsafe { &mut *p };
    q.steps = 1 + u32::from(r.u8() % 2);
    q.latent_steps = 1 + u32::from(r.u8() % 2);
    q.inpaint_candidates = u32::from(r.u8() % 3);
    let fields = r.u32();
    let bit = |i: u32| fields & (1 << i) != 0;
    if bit(0) {
        q.struct_size = match r.u8() % 4 {
            0 => r.u32(),
            1 => 80,
            2 => size_of::<LdfSampleParams>() as u32 + 8,
            _ => u32::from(r.u8()),
        };
    }
    if bit(1) {
        q.steps = r.size(3, LDF_MAX_STEPS);
    }
    if bit(2) {
        q.seed = r.u64();
    }
    if bit(3) {
        q.first_index = r.u64();
    }
    if bit(4) {
        q.solver = r.u32() % 6;
    }
    if bit(5) {
        q.prior_scale = r.f32();
    }
    if bit(6) {
        q.latent_steps = r.size(3, LDF_MAX_STEPS);
    }
    if bit(7) {
        q.latent_solver = r.u32() % 6;
    }
    if bit(8) {
        q.inpaint_candidates = r.size(3, LDF_MAX_INPAINT_CANDIDATES);
    }
    if bit(9) {
        q.interpolation = r.u32() % 4;
    }
    if bit(10) {
        q.batch_size = r.size(3, LDF_MAX_BATCH);
    }
    if bit(11) {
        q.time_shift = f64::from(r.f32());
    }
    if bit(12) {
        q.tileable = r.u32();
    }
    if bit(13) {
        q.reserved = r.u32();
    }
    if bit(15) {
        q.class_id = if r.flag() { LDF_CLASS_NONE } else { r.size(3, 1024) };
    }
    if bit(16) {
        q.guidance = if r.flag() { r.f32() } else { f32::from(r.u8()) / 64.0 };
    }
    if bit(14) {
        q.progress = Some(progress);
        q.user_data = usize::from(r.u8()) as *mut std::ffi::c_void; // cancel after this many steps
    }
    Some(storage)
}

unsafe extern "C" fn progress(step: u32, _total: u32, user_data: *mut std::ffi::c_void) -> bool {
    (step as usize) < user_data as usize
}

fn params_ptr(p: &Option<Box<[u64; 32]>>) -> *const LdfSampleParams {
    p.as_ref().map_or(ptr::null(), |b| b.as_ptr() as *const LdfSampleParams)
}

/// After a call: its status keeps the promises, and a refused call wrote nothing.
fn after(what: &str, s: LdfStatus, out: &Option<Buf>) {
    check_status(what, s);
    if s == LDF_ERR_INVALID_ARGUMENT
        && let Some(b) = out
    {
        assert!(b.untouched(), "{what}: refused ({}) but wrote into the buffer", last_error());
    }
}

/// One C call chosen by the input, with arguments and buffers from the input.
pub fn c_entry_points(data: &[u8]) {
    let t = tiny();
    let mut r = Bytes { data };
    let model = match r.u8() % 8 {
        0 => ptr::null(),
        1 | 2 => t.gaussian as *const LdfModel,
        _ => t.learned as *const LdfModel,
    };
    const IMAGE: usize = 16 * 16 * 4;
    const LATENT: usize = 8 * 4;
    let gaussian = model == t.gaussian as *const LdfModel;
    let op = r.u8() % 12;
    let p = params(&mut r);
    let pp = params_ptr(&p);
    let count = r.size(3, LDF_MAX_COUNT);
    let n = count.min(3) as usize;
    // SAFETY (every call below): pointers are NULL or point to buffers of the lengths passed.
    match op {
        0 => {
            let (mut out, len) = out_buf(&mut r, n * IMAGE);
            let s = unsafe { ldf_sample(model, count, pp, out_ptr(&mut out), len) };
            after("ldf_sample", s, &out);
        }
        1 => {
            let (mut out, len) = out_buf(&mut r, n * LATENT);
            let s = unsafe { ldf_sample_latents(model, count, pp, out_ptr(&mut out) as *mut f32, len) };
            after("ldf_sample_latents", s, &out);
            if s == LDF_OK && gaussian {
                panic!("a Gaussian-prior model gave latents");
            }
        }
        2 => {
            let z = r.fill(n * LATENT);
            let mut zb = Buf::with(&z, if r.flag() { 0 } else { 2 });
            let (mut out, len) = out_buf(&mut r, n * IMAGE);
            let s =
                unsafe { ldf_generate_from_latents(model, zb.ptr() as *const f32, count, pp, out_ptr(&mut out), len) };
            after("ldf_generate_from_latents", s, &out);
        }
        3 => {
            let px = r.fill(n * IMAGE);
            let mut pb = Buf::with(&px, 0);
            let (mut out, len) = out_buf(&mut r, n * LATENT);
            let s = unsafe { ldf_encode(model, pb.ptr(), count, out_ptr(&mut out) as *mut f32, len) };
            after("ldf_encode", s, &out);
        }
        4 => {
            let frames = count;
            let mut a = Buf::with(&r.fill(LATENT), 0);
            let mut b = Buf::with(&r.fill(LATENT), if r.flag() { 0 } else { 1 });
            let (mut out, len) = out_buf(&mut r, n * IMAGE);
            let s = unsafe {
                ldf_interpolate(model, a.ptr() as *const f32, b.ptr() as *const f32, frames, pp, out_ptr(&mut out), len)
            };
            after("ldf_interpolate", s, &out);
        }
        5 | 6 => inpaint(&mut r, model, count, n, pp, op == 6),
        7 => {
            let variations = r.size(3, LDF_MAX_VARIATIONS);
            let strength = if r.flag() { r.f32() } else { f32::from(r.u8()) / 255.0 };
            let px = r.fill(n * IMAGE);
            let mut pb = Buf::with(&px, 0);
            let (mut out, len) = out_buf(&mut r, n * variations.min(3) as usize * IMAGE);
            let s = unsafe { ldf_vary(model, pb.ptr(), count, variations, strength, pp, out_ptr(&mut out), len) };
            after("ldf_vary", s, &out);
            if s == LDF_OK && strength == 0.0 {
                let o = out.as_ref().expect("a buffer");
                let v = variations as usize;
                for (i, img) in px.chunks(IMAGE).enumerate() {
                    for j in 0..v {
                        let got = &o.bytes()[(i * v + j) * IMAGE..][..IMAGE];
                        assert_eq!(got, img, "strength 0 changed image {i}");
                    }
                }
            }
        }
        8 => {
            let size = match r.u8() % 4 {
                0 => size_of::<LdfModelInfo>() as u32,
                1 => 0,
                _ => u32::from(r.u8()),
            };
            let mut storage = [0u64; 32];
            let info = storage.as_mut_ptr() as *mut LdfModelInfo;
            unsafe { (*info).struct_size = size };
            let target = if r.flag() { info } else { ptr::null_mut() };
            let s = unsafe { ldf_model_info(model, target) };
            check_status("ldf_model_info", s);
            let bytes: Vec<u8> = storage.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert!(bytes[size as usize..].iter().all(|&b| b == 0), "ldf_model_info wrote past struct_size");
        }
        9 => {
            let size = usize::from(r.u8());
            let mut storage = [0xA5A5_A5A5_A5A5_A5A5u64; 40];
            let target = if r.flag() { storage.as_mut_ptr() as *mut LdfSampleParams } else { ptr::null_mut() };
            let s = unsafe { ldf_sample_params_init_sized(target, size) };
            check_status("ldf_sample_params_init_sized", s);
            let bytes: Vec<u8> = storage.iter().flat_map(|w| w.to_le_bytes()).collect();
            let written = if s == LDF_OK { size } else { 0 };
            assert!(bytes[written..].iter().all(|&b| b == SENTINEL), "params_init wrote past {written} bytes");
        }
        10 => {
            // A memory limit on a model of its own, so other inputs never see it.
            let m = Model::from_bytes(&tiny_bytes(PriorKind::Learned), Default::default()).expect("tiny");
            let limit = match r.u8() % 3 {
                0 => usize::from(r.u8()) << 10,
                1 => r.u32() as usize,
                _ => 0,
            };
            m.set_memory_limit(limit);
            let opts = SampleOptions { steps: 1, latent_steps: 1, ..Default::default() };
            let _ = m.sample(n.max(1), &opts);
        }
        _ => {
            let status = r.u32() as i32;
            // SAFETY: static storage, never NULL.
            let text = unsafe { CStr::from_ptr(ldf_status_str(status)) };
            assert!(!text.to_bytes().is_empty());
            let _ = ldf_device_available(r.u32());
            let mut tok = ptr::null_mut();
            let s = unsafe { ldf_cancel_new(if r.flag() { &mut tok } else { ptr::null_mut() }) };
            check_status("ldf_cancel_new", s);
            unsafe {
                ldf_cancel_request(tok);
                ldf_cancel_reset(tok);
                ldf_cancel_free(tok);
            }
        }
    }
}

fn inpaint(r: &mut Bytes, model: *const LdfModel, count: u32, n: usize, pp: *const LdfSampleParams, in_place: bool) {
    const IMAGE: usize = 16 * 16 * 4;
    let px = r.fill(n * IMAGE);
    let mask = r.fill(n * 16 * 16);
    let mut mb = Buf::with(&mask, 0);
    if in_place {
        let mut pb = Buf::with(&px, 0);
        let (p, len) = (pb.ptr(), if r.flag() { n * IMAGE } else { (n * IMAGE).saturating_sub(r.u8() as usize) });
        let s = unsafe { ldf_inpaint(model, p, mb.ptr(), count, pp, p, len) };
        check_status("ldf_inpaint in place", s);
        if s == LDF_ERR_INVALID_ARGUMENT {
            assert_eq!(pb.bytes(), &px[..], "a refused in-place inpainting changed the pixels");
        }
        if s == LDF_OK {
            check_kept(&px, &mask, pb.bytes());
        }
        return;
    }
    // Sometimes an output that partly overlaps the input: refused.
    if r.u8().is_multiple_of(8) && n > 0 {
        let shift = 1 + usize::from(r.u8()) % (n * IMAGE);
        let mut both = Buf::new(n * IMAGE + shift, 0);
        both.bytes_mut()[..n * IMAGE].copy_from_slice(&px);
        let base = both.ptr();
        let s = unsafe { ldf_inpaint(model, base, mb.ptr(), count, pp, base.add(shift), n * IMAGE) };
        check_status("ldf_inpaint overlapping", s);
        assert_ne!(s, LDF_OK, "ldf_inpaint accepted an output overlapping its input");
        return;
    }
    let mut pb = Buf::with(&px, 0);
    let (mut out, len) = out_buf(r, n * IMAGE);
    let mask_ptr = if r.u8().is_multiple_of(16) { ptr::null() } else { mb.ptr() as *const u8 };
    let s = unsafe { ldf_inpaint(model, pb.ptr(), mask_ptr, count, pp, out_ptr(&mut out), len) };
    after("ldf_inpaint", s, &out);
    if s == LDF_OK {
        check_kept(&px, &mask, out.as_ref().expect("a buffer").bytes());
    }
}

/// Every pixel whose mask byte is non-zero comes back unchanged.
fn check_kept(pixels: &[u8], mask: &[u8], out: &[u8]) {
    for (i, &m) in mask.iter().enumerate() {
        if m != 0 {
            assert_eq!(out[i * 4..i * 4 + 4], pixels[i * 4..i * 4 + 4], "kept pixel {i} changed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Target 3: the image and mask inputs of inpaint and encode.

/// Image files (as the CLI reads them) and raw pixel and mask buffers of any length, through the
/// Rust API's encode, inpaint and vary.
pub fn image_inputs(data: &[u8]) {
    let t = tiny();
    let m = &t.learned_model;
    let mut r = Bytes { data };
    let opts = SampleOptions { steps: 1, latent_steps: 1, inpaint_candidates: 1, ..Default::default() };
    match r.u8() % 3 {
        0 => {
            // An image file and an optional mask file, split where the input says.
            let cut = usize::from(r.u8()) << 4;
            let rest = r.rest();
            let (img, mask) = rest.split_at(cut.min(rest.len()));
            let Ok(pixels) = lediflow::data::decode_image(img, 16, 4) else { return };
            assert_eq!(pixels.len(), 16 * 16 * 4);
            m.encode(&pixels).expect("a decoded image encodes");
            let mask = match lediflow::data::decode_image(mask, 16, 1) {
                Ok(mk) => mk,
                Err(_) => vec![0; 16 * 16],
            };
            let out = m.inpaint(&pixels, &mask, &opts).expect("a decoded image and mask inpaint");
            check_kept(&pixels, &mask, &out);
        }
        1 => {
            // Raw buffers of arbitrary lengths.
            let plen = usize::from(r.u8()) * 16 + usize::from(r.u8() % 16);
            let mlen = usize::from(r.u8()) * 4 + usize::from(r.u8() % 4);
            let pixels = r.fill(plen.min(3 * 1024));
            let mask = r.fill(mlen.min(3 * 256));
            let enc = m.encode(&pixels);
            assert_eq!(enc.is_ok(), !pixels.is_empty() && pixels.len().is_multiple_of(1024), "encode of {plen} bytes");
            let res = m.inpaint(&pixels, &mask, &opts);
            let valid = !pixels.is_empty() && pixels.len().is_multiple_of(1024) && mask.len() * 4 == pixels.len();
            assert_eq!(res.is_ok(), valid, "inpaint of {} pixel and {} mask bytes", pixels.len(), mask.len());
            if let Ok(out) = res {
                check_kept(&pixels, &mask, &out);
            }
        }
        _ => {
            let pixels = r.fill(1024);
            let strength = r.f32();
            let res = m.vary(&pixels, 1 + usize::from(r.u8() % 2), strength, &opts);
            assert_eq!(res.is_ok(), (0.0..=1.0).contains(&strength), "vary at strength {strength}");
        }
    }
}
