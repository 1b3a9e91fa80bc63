//! The C ABI (`include/lediflow.h`, generated from this module by cbindgen).
//!
//! Only this layer knows about raw pointers. Every export runs inside [`guard`]: argument checks,
//! a status code, a thread-local message for [`ldf_last_error`], and `catch_unwind` so that no
//! panic ever unwinds into (or aborts) the host.
//!
//! Enumerations are fixed-width integer typedefs with `#define`d values rather than C `enum`s:
//! a host can pass any integer, and an unknown value must be a checked error here, never
//! undefined behaviour on the Rust side.

mod model;
mod params;

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::RwLock;

use once_cell::sync::OnceCell;

use crate::error::{Error, Result};
use crate::pipeline::CancelToken;

pub use model::*;
pub use params::*;

/// Major version of the library (matches Cargo.toml; checked by a test).
pub const LDF_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const LDF_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const LDF_VERSION_PATCH: u32 = 0;
/// Version of the binary interface: bumped whenever a change breaks callers compiled against an
/// older header (a struct that shrinks, a function whose meaning changes). Appending fields to
/// the `struct_size`-versioned structs does not break callers and does not bump it.
pub const LDF_ABI_VERSION: u32 = 1;

/// Most images, frames or latents one generation call takes (its `count` or `frames`): 0 or a
/// larger value is `LDF_ERR_INVALID_ARGUMENT` before anything is written. Larger jobs are
/// several calls with consecutive `first_index`.
pub const LDF_MAX_COUNT: u32 = 65536;
/// Largest `steps` and `latent_steps`.
pub const LDF_MAX_STEPS: u32 = 10000;
/// Largest `batch_size` (0 = the library's choice).
pub const LDF_MAX_BATCH: u32 = 4096;
/// Largest `inpaint_candidates`.
pub const LDF_MAX_INPAINT_CANDIDATES: u32 = 4096;
/// Most `variations` per image of `ldf_vary` (and count x variations is at most `LDF_MAX_COUNT`).
pub const LDF_MAX_VARIATIONS: u32 = 4096;
/// Most classes a class-conditional model has (`LdfModelInfo.class_count`).
pub const LDF_MAX_CLASSES: u32 = 1024;
/// Largest `guidance`.
pub const LDF_MAX_GUIDANCE: f32 = 100.0;

/// Result of every fallible call. `LDF_OK` is 0; on any other value `ldf_last_error()` says why.
pub type LdfStatus = i32;
pub const LDF_OK: LdfStatus = 0;
/// NULL where a pointer is required, a buffer too short, a count of 0 or above `LDF_MAX_COUNT`,
/// a NaN parameter or latent, an unknown enumeration value, a wrong `struct_size`, overlapping
/// input and output buffers.
pub const LDF_ERR_INVALID_ARGUMENT: LdfStatus = 1;
/// A file could not be read.
pub const LDF_ERR_IO: LdfStatus = 2;
/// A model file is malformed, inconsistent, or from an unknown format version.
pub const LDF_ERR_FORMAT: LdfStatus = 3;
/// Valid, but not possible with this build, machine or model (CUDA without a GPU or without
/// the `cuda` build feature; latents of a Gaussian-prior model).
pub const LDF_ERR_UNSUPPORTED: LdfStatus = 4;
/// The progress callback returned false or the cancel token was triggered. The model stays
/// usable; the output buffer holds whatever was finished.
pub const LDF_ERR_CANCELLED: LdfStatus = 5;
/// One image of the call needs more working memory than the model's memory limit allows
/// (checked before the call starts), or the GPU ran out of memory.
pub const LDF_ERR_OUT_OF_MEMORY: LdfStatus = 6;
/// A bug in lediflow (a caught panic). The message says what happened; please report it.
pub const LDF_ERR_INTERNAL: LdfStatus = 7;

/// Where a model runs.
pub type LdfDevice = u32;
pub const LDF_DEVICE_CPU: LdfDevice = 0;
/// The first CUDA GPU. Needs a build with the `cuda` feature and the NVIDIA driver; the first call
/// compiles GPU kernels and can take minutes.
pub const LDF_DEVICE_CUDA: LdfDevice = 1;

/// Severity of a log message (the `log` crate's levels).
pub type LdfLogLevel = u32;
pub const LDF_LOG_OFF: LdfLogLevel = 0;
pub const LDF_LOG_ERROR: LdfLogLevel = 1;
pub const LDF_LOG_WARN: LdfLogLevel = 2;
pub const LDF_LOG_INFO: LdfLogLevel = 3;
pub const LDF_LOG_DEBUG: LdfLogLevel = 4;
pub const LDF_LOG_TRACE: LdfLogLevel = 5;

/// Receives the library's log messages: level, the module that logged (`target`), the message.
/// Both strings are valid only during the call. May be called from any thread that calls into
/// lediflow. Must not unwind (throw) into the library.
pub type LdfLogFn = Option<
    unsafe extern "C" fn(level: LdfLogLevel, target: *const c_char, message: *const c_char, user_data: *mut c_void),
>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

// `try_with` throughout: a host may call lediflow from a thread-exit destructor, after this
// thread's storage is gone, where `with` would panic outside any `catch_unwind` (an abort).

fn set_last_error(msg: &str) {
    // Interior NULs would truncate the message in C; show them instead.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = CString::default());
}

fn status_of(e: &Error) -> LdfStatus {
    match e {
        Error::InvalidArgument(_) => LDF_ERR_INVALID_ARGUMENT,
        Error::Io(_) => LDF_ERR_IO,
        Error::Format(_) => LDF_ERR_FORMAT,
        Error::Unsupported(_) => LDF_ERR_UNSUPPORTED,
        Error::Cancelled => LDF_ERR_CANCELLED,
        Error::OutOfMemory(_) => LDF_ERR_OUT_OF_MEMORY,
        Error::Internal(_) => LDF_ERR_INTERNAL,
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs one export: clears this thread's last error, catches panics, maps errors to statuses.
pub(crate) fn guard(what: &str, f: impl FnOnce() -> Result<()>) -> LdfStatus {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => LDF_OK,
        Ok(Err(e)) => {
            let status = status_of(&e);
            if status != LDF_ERR_CANCELLED {
                log::debug!("{what} failed: {e}");
            }
            set_last_error(&format!("{what}: {e}"));
            status
        }
        Err(p) => {
            let msg = panic_message(p.as_ref());
            log::error!("{what} panicked: {msg}");
            // GPU runtimes report exhausted device memory by panicking.
            let lower = msg.to_lowercase();
            if lower.contains("out of memory") || lower.contains("outofmemory") {
                set_last_error(&format!("{what}: out of memory: {msg}"));
                LDF_ERR_OUT_OF_MEMORY
            } else {
                set_last_error(&format!("{what}: internal error (caught panic): {msg}"));
                LDF_ERR_INTERNAL
            }
        }
    }
}

/// The library version, for example "0.1.0". Static storage; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ldf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The ABI version this library implements (`LDF_ABI_VERSION` of its header). A host compiled
/// against another ABI version should refuse to use it.
#[unsafe(no_mangle)]
pub extern "C" fn ldf_abi_version() -> u32 {
    LDF_ABI_VERSION
}

/// A constant English name of a status code ("LDF_OK", "LDF_ERR_IO", ... or "unknown status").
/// Static storage; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ldf_status_str(status: LdfStatus) -> *const c_char {
    let s: &'static std::ffi::CStr = match status {
        LDF_OK => c"LDF_OK",
        LDF_ERR_INVALID_ARGUMENT => c"LDF_ERR_INVALID_ARGUMENT",
        LDF_ERR_IO => c"LDF_ERR_IO",
        LDF_ERR_FORMAT => c"LDF_ERR_FORMAT",
        LDF_ERR_UNSUPPORTED => c"LDF_ERR_UNSUPPORTED",
        LDF_ERR_CANCELLED => c"LDF_ERR_CANCELLED",
        LDF_ERR_OUT_OF_MEMORY => c"LDF_ERR_OUT_OF_MEMORY",
        LDF_ERR_INTERNAL => c"LDF_ERR_INTERNAL",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// Why the last failing lediflow call on this thread failed ("" after a call that succeeded).
/// Every call that returns an `LdfStatus` resets it. The pointer stays valid until the next
/// lediflow call on this thread; copy the text to keep it. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ldf_last_error() -> *const c_char {
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Whether `device` can be used here: `LDF_OK`, or `LDF_ERR_UNSUPPORTED` with the reason in
/// `ldf_last_error()` (no `cuda` feature in this build, no driver, no GPU).
#[unsafe(no_mangle)]
pub extern "C" fn ldf_device_available(device: LdfDevice) -> LdfStatus {
    guard("ldf_device_available", || model::check_device(device))
}

// ---------------------------------------------------------------------------------------------
// Cancellation

/// A flag another thread can raise to stop a running call (`LdfSampleParams.cancel`). The call
/// returns `LDF_ERR_CANCELLED` after the solver step it is in. A raised token stays raised (and
/// cancels every call that uses it) until `ldf_cancel_reset`.
pub struct LdfCancel {
    token: CancelToken,
}

impl LdfCancel {
    /// The library's token this handle stands for (a call holds a clone of it).
    pub(crate) fn token(&self) -> CancelToken {
        self.token.clone()
    }
}

/// Creates a cancel token in `*out` (NULL on failure). Free it with `ldf_cancel_free`.
///
/// # Safety
/// `out` must be NULL or point to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_cancel_new(out: *mut *mut LdfCancel) -> LdfStatus {
    guard("ldf_cancel_new", || {
        if out.is_null() {
            return crate::error::invalid("out is NULL");
        }
        let token = Box::new(LdfCancel { token: CancelToken::new() });
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { *out = Box::into_raw(token) };
        Ok(())
    })
}

/// Raises the token: running and future calls that use it stop. Safe to call from any thread,
/// including while another thread is inside a call that uses the token. NULL is ignored.
///
/// # Safety
/// `cancel` must be NULL or a live token from `ldf_cancel_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_cancel_request(cancel: *const LdfCancel) {
    // SAFETY: the caller guarantees a live token or NULL.
    if let Some(c) = unsafe { cancel.as_ref() } {
        c.token.cancel();
    }
}

/// Lowers the token so it can be used for another call. NULL is ignored.
///
/// # Safety
/// `cancel` must be NULL or a live token from `ldf_cancel_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_cancel_reset(cancel: *const LdfCancel) {
    // SAFETY: the caller guarantees a live token or NULL.
    if let Some(c) = unsafe { cancel.as_ref() } {
        c.token.reset();
    }
}

/// Frees a token (NULL is a no-op). No call may be using it.
///
/// # Safety
/// `cancel` must be NULL or a token from `ldf_cancel_new` not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_cancel_free(cancel: *mut LdfCancel) {
    if !cancel.is_null() {
        // SAFETY: from Box::into_raw in ldf_cancel_new, freed once (the caller's contract).
        drop(unsafe { Box::from_raw(cancel) });
    }
}

// ---------------------------------------------------------------------------------------------
// Logging

#[derive(Clone, Copy)]
struct LogSink {
    f: unsafe extern "C" fn(LdfLogLevel, *const c_char, *const c_char, *mut c_void),
    user_data: usize,
}

struct HostLogger {
    sink: RwLock<Option<LogSink>>,
}

static HOST_LOGGER: HostLogger = HostLogger { sink: RwLock::new(None) };
/// Whether our logger became the process's `log` logger (only one can, ever).
static LOGGER_INSTALLED: OnceCell<bool> = OnceCell::new();

fn level_of(l: log::Level) -> LdfLogLevel {
    match l {
        log::Level::Error => LDF_LOG_ERROR,
        log::Level::Warn => LDF_LOG_WARN,
        log::Level::Info => LDF_LOG_INFO,
        log::Level::Debug => LDF_LOG_DEBUG,
        log::Level::Trace => LDF_LOG_TRACE,
    }
}

impl log::Log for HostLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        self.sink.read().map(|s| s.is_some()).unwrap_or(false)
    }

    fn log(&self, record: &log::Record) {
        // The read lock is held while the host's function runs, so `ldf_set_log_callback`
        // (which takes the write lock) returns only once no thread still runs the callback it
        // replaces: the host may then free that callback's user_data.
        let Ok(held) = self.sink.read() else { return };
        let Some(sink) = *held else { return };
        let target = CString::new(record.target().replace('\0', "")).unwrap_or_default();
        let msg = CString::new(record.args().to_string().replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: the host registered this function for exactly this signature; the strings
        // live until it returns.
        unsafe { (sink.f)(level_of(record.level()), target.as_ptr(), msg.as_ptr(), sink.user_data as *mut c_void) };
    }

    fn flush(&self) {}
}

/// Sends the library's log messages up to `max_level` to `callback` (NULL, or `LDF_LOG_OFF`,
/// stops them). Process-wide: the last call wins. Returns `LDF_ERR_UNSUPPORTED` when the process
/// already has another logger of Rust's `log` crate (for example a Rust host's own), in which case
/// lediflow's messages go there.
///
/// Once this returns, no thread runs the callback it replaced (calls in progress on other
/// threads are waited for), so that callback's `user_data` may be freed.
///
/// # Safety
/// `callback` must be NULL or a function that stays callable, with `user_data`, until it is
/// replaced. It may run on any thread that calls lediflow and must not call lediflow functions
/// itself.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_set_log_callback(
    callback: LdfLogFn,
    max_level: LdfLogLevel,
    user_data: *mut c_void,
) -> LdfStatus {
    guard("ldf_set_log_callback", || {
        let filter = match max_level {
            LDF_LOG_OFF => log::LevelFilter::Off,
            LDF_LOG_ERROR => log::LevelFilter::Error,
            LDF_LOG_WARN => log::LevelFilter::Warn,
            LDF_LOG_INFO => log::LevelFilter::Info,
            LDF_LOG_DEBUG => log::LevelFilter::Debug,
            LDF_LOG_TRACE => log::LevelFilter::Trace,
            other => return crate::error::invalid(format!("max_level {other} is not an LdfLogLevel (0..=5)")),
        };
        let installed = *LOGGER_INSTALLED.get_or_init(|| log::set_logger(&HOST_LOGGER).is_ok());
        if !installed {
            return Err(Error::Unsupported(
                "this process already has a logger for Rust's log crate; lediflow logs there".into(),
            ));
        }
        let sink = callback.map(|f| LogSink { f, user_data: user_data as usize });
        let filter = if sink.is_some() { filter } else { log::LevelFilter::Off };
        *HOST_LOGGER.sink.write().map_err(|_| Error::Internal("log sink lock poisoned".into()))? = sink;
        log::set_max_level(filter);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_macros_match_cargo_toml() {
        let parse = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(LDF_VERSION_MAJOR, parse(env!("CARGO_PKG_VERSION_MAJOR")));
        assert_eq!(LDF_VERSION_MINOR, parse(env!("CARGO_PKG_VERSION_MINOR")));
        assert_eq!(LDF_VERSION_PATCH, parse(env!("CARGO_PKG_VERSION_PATCH")));
        // SAFETY: static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(ldf_version()) }.to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn header_limits_are_the_pipelines() {
        use crate::pipeline as p;
        assert_eq!(LDF_MAX_COUNT as usize, p::MAX_COUNT);
        assert_eq!(LDF_MAX_STEPS as usize, p::MAX_STEPS);
        assert_eq!(LDF_MAX_BATCH as usize, p::MAX_BATCH);
        assert_eq!(LDF_MAX_INPAINT_CANDIDATES as usize, p::MAX_INPAINT_CANDIDATES);
        assert_eq!(LDF_MAX_VARIATIONS as usize, p::MAX_VARIATIONS);
        assert_eq!(LDF_MAX_CLASSES as usize, crate::config::MAX_CLASSES);
        assert_eq!(LDF_MAX_GUIDANCE, p::MAX_GUIDANCE);
    }

    #[test]
    fn panics_become_internal_errors() {
        let s = guard("test", || panic!("boom"));
        assert_eq!(s, LDF_ERR_INTERNAL);
        // SAFETY: valid until the next call on this thread.
        let msg = unsafe { std::ffi::CStr::from_ptr(ldf_last_error()) }.to_string_lossy().into_owned();
        assert!(msg.contains("boom"), "{msg}");
        assert_eq!(guard("test", || Ok(())), LDF_OK);
        // SAFETY: as above.
        assert!(unsafe { std::ffi::CStr::from_ptr(ldf_last_error()) }.to_bytes().is_empty());
    }
}
