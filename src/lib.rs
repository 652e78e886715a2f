//! ringway: a thread-per-core L4/L7 load-balancing proxy for Linux on io_uring.
//!
//! The crate is split into a pure core (configuration, balancing, and later HTTP/1
//! framing and health state) that makes every decision without sockets or clocks, and an
//! IO shell (`worker`, `app`) that only moves bytes and asks the core what to do. The
//! binary, the integration tests, `fuzz/` and `bench/` all link this library.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod config;
pub mod control;
pub mod flow_table;
pub mod health;
pub mod http1;
pub mod lb;
pub mod lifecycle;
pub mod log;
pub mod metrics;
pub mod proxy_protocol;
pub mod rate_limit;
pub mod route;
pub mod sdnotify;
pub mod signals;
pub mod snapshot;
pub mod sys;
pub mod tls;
pub mod worker;
