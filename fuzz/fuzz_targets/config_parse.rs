//! Config parsing never panics, and whatever it accepts is internally consistent: every
//! listener and every HTTP route names an existing pool, every pool has backends, every
//! weight is at least 1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::config::Config;
use ringway::route::ActionSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(config) => {
            assert!(!config.listeners.is_empty());
            for listener in &config.listeners {
                if let Some(pool) = listener.protocol.pool() {
                    assert!(pool < config.pools.len());
                }
                if let Some(http) = listener.protocol.http() {
                    assert_eq!(http.routes.specs.len(), http.routes.table.len());
                    assert_eq!(http.routes.specs.len(), http.routes.names.len());
                    for spec in &http.routes.specs {
                        if let ActionSpec::Proxy { pool, .. } = spec.action {
                            assert!(pool < config.pools.len());
                        }
                    }
                }
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
