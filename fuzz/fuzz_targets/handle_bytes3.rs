//! `handle()` of a 3.x handler (`RequestReplyHandler::v3`) on arbitrary bytes, with
//! functions that run a script from their message bytes through the typed API (see the
//! fuzz crate's `v3` module). The bytes are also decoded with prost, independently, to say
//! what the answer must be.
//!
//! Property: no panic escapes; an `Ok` decodes as a 3.x `FromFunction`: the handshake,
//! listing exactly the missing declared states, when one is missing (and nothing ran), or
//! otherwise the result carrying exactly the messages, delayed messages, cancellations,
//! egress messages and state mutations the script made; every state read returns what the
//! request carried or the batch wrote; an `Err` is a 400, 404, 413 or 500 (the script's own
//! failure's status when it failed) with a short, escaped message, and no reply at all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statefun_sync_fuzz::install_panic_hook;
use statefun_sync_fuzz::v3::{check, handler, prepare, take};

fuzz_target!(|data: &[u8]| {
    install_panic_hook();
    prepare(data);
    let result = handler().handle(data);
    check(&result, &take());
});
