//! `handle()` on arbitrary bytes, with functions that run a script from the message
//! bytes (see the fuzz crate's lib). Property: no panic escapes; an `Ok` decodes as a
//! `FromFunction` whose effects match what the script did; an `Err` is a 400, 404, 413 or 500
//! with a short, escaped message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statefun_sync_fuzz::{check, handler, install_panic_hook, reset, take};

fuzz_target!(|data: &[u8]| {
    install_panic_hook();
    reset();
    let result = handler().handle(data);
    check(&result, &take());
});
