//! Image files and raw pixel/mask buffers into encode, inpaint and vary.
#![no_main]

#[global_allocator]
static ALLOC: lediflow_fuzz::Counting = lediflow_fuzz::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| lediflow_fuzz::image_inputs(data));
