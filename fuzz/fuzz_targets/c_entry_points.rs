//! The C entry points with arbitrary arguments and buffers on tiny models.
#![no_main]

#[global_allocator]
static ALLOC: lediflow_fuzz::Counting = lediflow_fuzz::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| lediflow_fuzz::c_entry_points(data));
