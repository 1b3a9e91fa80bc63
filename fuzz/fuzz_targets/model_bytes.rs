//! A model file's bytes: safetensors header, metadata JSON, tensor data.
#![no_main]

#[global_allocator]
static ALLOC: lediflow_fuzz::Counting = lediflow_fuzz::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| lediflow_fuzz::model_bytes(data));
