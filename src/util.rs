//! Small helpers with no better home.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic inside it (a third-party parser's, on malformed input) into
/// `Err(message)` without printing it: the caller reports it as an error about its input. The
/// default panic hook is silenced meanwhile, so call this from the thread that reads inputs
/// before other work starts.
pub fn panic_as_error<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    })
}
