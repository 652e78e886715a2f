//! HTTP/1 response parsing on arbitrary bytes: never panics, and the invariants checked by
//! `ringway::http1::fuzzing::fuzz_response` hold (see that module's docs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ringway::http1::fuzzing::fuzz_response(data);
});
