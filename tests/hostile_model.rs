//! A model file is untrusted input: a few hundred bytes of metadata may name a network of many
//! gigabytes (within the config's bounds) and no tensors. Loading must fail on the missing
//! tensors before allocating that network. Its own test binary, so that the counting allocator
//! below sees only this test's allocations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use lediflow::checkpoint::{METADATA_KEY, to_safetensors_bytes};
use lediflow::{Error, ModelMeta, Pipeline, PriorKind};

/// System allocator that tracks the live and the peak number of bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

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
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_tiny_file_naming_a_huge_network_fails_without_allocating_it() {
    let mut cfg = tiny_config(4, 32, PriorKind::Learned);
    // ~200 M velocity-network parameters: 0.8 GB as f32 if the load built them.
    cfg.dit.dim = 1024;
    cfg.dit.depth = 16;
    cfg.dit.heads = 8;
    cfg.validate().expect("a valid config");
    let meta = ModelMeta::new(cfg, serde_json::json!({}));
    let metadata = HashMap::from([(METADATA_KEY.to_string(), serde_json::to_string(&meta).unwrap())]);
    let bytes = to_safetensors_bytes(&BTreeMap::new(), metadata).unwrap();
    assert!(bytes.len() < 4096, "the hostile file is {} bytes", bytes.len());

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    match Pipeline::<B>::from_bytes(&bytes, &Default::default()) {
        Err(Error::Format(msg)) => assert!(msg.contains("missing tensor"), "{msg}"),
        Err(other) => panic!("expected a format error, got {other}"),
        Ok(_) => panic!("a file without tensors loaded"),
    }
    let grew = PEAK.load(Ordering::Relaxed) - before;
    assert!(grew < 64 << 20, "loading allocated {} MB before failing", grew >> 20);
}
