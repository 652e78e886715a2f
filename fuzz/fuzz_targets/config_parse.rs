//! Config parsing never panics, and whatever it accepts is internally consistent: every
//! listener names an existing pool, every pool has backends, every weight is at least 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(config) => {
            assert!(!config.listeners.is_empty());
            for listener in &config.listeners {
                assert!(listener.protocol.pool() < config.pools.len());
                assert!(!listener.timeouts.connect.is_zero());
            }
            for pool in &config.pools {
                assert!(!pool.backends.is_empty());
                assert!(pool.backends.iter().all(|b| b.weight >= 1));
            }
        }
        Err(errors) => assert!(!errors.is_empty(), "a rejection must say why"),
    }
});
