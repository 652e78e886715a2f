//! Tests of parsing and validation as a whole; duration parsing has its own tests in
//! `duration.rs`.

use super::*;

use std::net::{IpAddr, Ipv4Addr};

/// The example from the issue, verbatim.
const ISSUE_SAMPLE: &str = r#"(
    workers: 2,
    listeners: [
        (name: "db", bind: "127.0.0.1:15432", protocol: Tcp(pool: "pg"),
         timeouts: (connect: "1s", idle: "5m")),
    ],
    pools: [
        (name: "pg", balance: RoundRobin, backends: [
            (addr: "127.0.0.1:25432", weight: 3),
            (addr: "127.0.0.1:25433"),
        ]),
    ],
)"#;

/// A valid config using most features; mistakes are made by editing it.
const BASE: &str = r#"(
    workers: 2,
    listeners: [
        (name: "db", bind: "127.0.0.1:15432", protocol: Tcp(pool: "pg"),
         timeouts: (connect: "1s", idle: "5m")),
        (name: "web", bind: "[::1]:8080", protocol: Tcp(pool: "www", relay: Buffered)),
    ],
    pools: [
        (name: "pg", balance: RoundRobin, backends: [
            (addr: "127.0.0.1:25432", weight: 3),
            (addr: "127.0.0.1:25433"),
        ]),
        (name: "www", balance: Maglev, backends: [(addr: "10.0.0.1:80")]),
    ],
    tuning: (pipe_bytes: 65536, copy_buffer_bytes: 16384, busy_poll: "50us"),
)"#;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Parse text that must be invalid, returning its errors.
fn errors_of(text: &str) -> Vec<ConfigError> {
    match Config::parse(text) {
        Ok(config) => panic!("expected errors, parsed {config:#?}\nfrom:\n{text}"),
        Err(errors) => errors,
    }
}

/// `BASE` with each `(from, to)` applied; each `from` must occur exactly once, so a
/// change to `BASE` cannot silently turn a case into a no-op.
fn edit_base(edits: &[(&str, &str)]) -> String {
    edits.iter().fold(BASE.to_string(), |text, (from, to)| {
        assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
        text.replace(from, to)
    })
}

fn path(error: &ConfigError) -> &str {
    match &error.location {
        Location::Path(path) => path,
        other => panic!("expected a field path, got {other:?} in {error}"),
    }
}

#[test]
fn issue_sample_parses_to_expected_values() {
    let config = Config::parse(ISSUE_SAMPLE).expect("issue sample must parse");
    let expected = Config {
        workers: Some(2),
        listeners: vec![Listener {
            name: "db".into(),
            bind: addr("127.0.0.1:15432"),
            protocol: Protocol::Tcp {
                pool: 0,
                relay: RelayMode::Splice,
            },
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                idle: Duration::from_secs(300),
            },
            proxy_protocol: ProxyAccept::None,
            max_flows: DEFAULT_MAX_FLOWS,
            max_connections: None,
            rate_limit: None,
            access_log: AccessLogFormat::Off,
            tls: None,
        }],
        pools: vec![Pool {
            name: "pg".into(),
            balance: Balance::RoundRobin,
            backends: vec![
                Backend {
                    addr: addr("127.0.0.1:25432"),
                    weight: 3,
                    backup: false,
                    max_connections: None,
                },
                Backend {
                    addr: addr("127.0.0.1:25433"),
                    weight: 1,
                    backup: false,
                    max_connections: None,
                },
            ],
            health: None,
            passive: Passive {
                consecutive_failures: 0,
                eject_for: DEFAULT_EJECT_FOR,
            },
            slow_start: Duration::ZERO,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            send_proxy: SendProxy::None,
            sticky: None,
            keepalive: Keepalive::default(),
            tls: None,
        }],
        tuning: Tuning {
            pipe_bytes: 1_048_576,
            copy_buffer_bytes: 65_536,
            busy_poll: DEFAULT_BUSY_POLL,
        },
        shutdown_grace: Duration::from_secs(30),
        admin: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn base_parses_with_every_field_honoured() {
    let config = Config::parse(BASE).expect("BASE must parse");
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(
        config.listeners[1].protocol,
        Protocol::Tcp {
            pool: 1,
            relay: RelayMode::Buffered
        }
    );
    assert_eq!(config.listeners[1].bind, addr("[::1]:8080"));
    assert_eq!(config.listeners[1].timeouts, Timeouts::default());
    assert_eq!(config.pools[1].balance, Balance::Maglev);
    assert_eq!(
        config.tuning,
        Tuning {
            pipe_bytes: 65_536,
            copy_buffer_bytes: 16_384,
            busy_poll: Duration::from_micros(50),
        }
    );
}

#[test]
fn defaults_fill_absent_optional_fields() {
    let text = r#"(
        listeners: [(name: "l", bind: "0.0.0.0:80", protocol: Tcp(pool: "p"))],
        pools: [(name: "p", backends: [(addr: "10.0.0.1:80")])],
    )"#;
    let config = Config::parse(text).unwrap();
    assert_eq!(config.workers, None);
    assert_eq!(config.tuning, Tuning::default());
    assert_eq!(config.tuning.pipe_bytes, 1_048_576);
    assert_eq!(config.tuning.copy_buffer_bytes, 65_536);
    assert_eq!(
        config.tuning.busy_poll,
        Duration::from_micros(50),
        "a worker polls 50 µs after activity unless told otherwise"
    );
    let listener = &config.listeners[0];
    assert_eq!(
        listener.protocol,
        Protocol::Tcp {
            pool: 0,
            relay: RelayMode::Splice
        }
    );
    assert_eq!(listener.timeouts.connect, Duration::from_secs(3));
    assert_eq!(listener.timeouts.idle, Duration::from_secs(300));
    assert_eq!(config.pools[0].balance, Balance::RoundRobin);
    assert_eq!(config.pools[0].backends[0].weight, 1);
}

#[test]
fn optional_fields_need_no_some() {
    // Every optional field written bare, and sub-structs given only partially.
    let text = r#"(
        workers: 3,
        listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p", relay: Buffered),
                     timeouts: (idle: "90s"))],
        pools: [(name: "p", balance: Random, backends: [(addr: "10.0.0.1:80", weight: 7)])],
        tuning: (copy_buffer_bytes: 4096),
    )"#;
    let config = Config::parse(text).unwrap();
    assert_eq!(config.workers, Some(3));
    assert_eq!(
        config.listeners[0].protocol,
        Protocol::Tcp {
            pool: 0,
            relay: RelayMode::Buffered
        }
    );
    assert_eq!(config.listeners[0].timeouts.idle, Duration::from_secs(90));
    assert_eq!(
        config.listeners[0].timeouts.connect,
        DEFAULT_CONNECT_TIMEOUT
    );
    assert_eq!(config.pools[0].balance, Balance::Random);
    assert_eq!(config.pools[0].backends[0].weight, 7);
    assert_eq!(config.tuning.copy_buffer_bytes, 4_096);
    assert_eq!(config.tuning.pipe_bytes, DEFAULT_PIPE_BYTES);
    assert_eq!(config.tuning.busy_poll, DEFAULT_BUSY_POLL);
    assert_eq!(config.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
    let text = text.replace("workers: 3,", "workers: 3, shutdown_grace: \"1.5s\",");
    let config = Config::parse(&text).unwrap();
    assert_eq!(config.shutdown_grace, Duration::from_millis(1_500));
}

#[test]
fn every_balance_name_parses() {
    let cases = [
        ("RoundRobin", Balance::RoundRobin),
        ("LeastConnections", Balance::LeastConnections),
        ("SourceHash", Balance::SourceHash),
        ("Maglev", Balance::Maglev),
        ("PowerOfTwo", Balance::PowerOfTwo),
        ("Random", Balance::Random),
    ];
    for (name, expected) in cases {
        let text = edit_base(&[("balance: Maglev", &format!("balance: {name}"))]);
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(config.pools[1].balance, expected, "{name}");
    }
}

#[test]
fn default_config_file_parses() {
    let config = Config::parse(include_str!("../../conf/ringway.ron"))
        .unwrap_or_else(|errors| panic!("conf/ringway.ron is invalid: {errors:?}"));
    assert_eq!(config.workers, None, "the default runs one worker per core");
    assert_eq!(config.listeners.len(), 2);
    let web = &config.listeners[0];
    assert_eq!(web.bind, addr("127.0.0.1:8080"));
    let routes = &web.protocol.http().expect("an HTTP listener").routes;
    assert_eq!(routes.names, ["home", "health", "app"]);
    let listener = &config.listeners[1];
    assert_eq!(listener.bind, addr("127.0.0.1:8000"));
    let pool = listener.protocol.pool().expect("an L4 listener");
    let pool = &config.pools[pool];
    assert_eq!(pool.name, "local");
    assert_eq!(
        pool.backends,
        vec![Backend {
            addr: addr("127.0.0.1:8001"),
            weight: 1,
            backup: false,
            max_connections: None,
        }]
    );
}

#[test]
fn bad_example_file_has_exactly_three_errors() {
    let errors = errors_of(include_str!("../../conf/bad-example.ron"));
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (path(e), e.message.as_str()))
        .collect();
    let expected = [
        ("listeners[0].protocol.pool", "unknown pool \"web\""),
        (
            "pools[0].backends[0].addr",
            "invalid socket address \"10.0.0.1\"",
        ),
        ("pools[0].backends[1].weight", "weight must be at least 1"),
    ];
    assert_eq!(found.len(), expected.len(), "errors: {found:#?}");
    for ((path, message), (want_path, fragment)) in found.iter().zip(expected) {
        assert_eq!(*path, want_path);
        assert!(
            message.contains(fragment),
            "{path}: {message:?} lacks {fragment:?}"
        );
    }
}

/// One mistake made by editing `BASE`: (edits, expected path, message fragments).
type MistakeCase = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static [&'static str],
);

#[test]
fn each_single_mistake_is_reported_at_its_path() {
    let cases: &[MistakeCase] = &[
        // Shutdown grace.
        (
            &[("tuning: (", "shutdown_grace: \"0s\", tuning: (")],
            "shutdown_grace",
            &["must be greater than zero"],
        ),
        (
            &[("tuning: (", "shutdown_grace: \"soon\", tuning: (")],
            "shutdown_grace",
            &["\"soon\""],
        ),
        // Socket addresses.
        (
            &[("\"127.0.0.1:15432\"", "\"localhost:15432\"")],
            "listeners[0].bind",
            &["invalid socket address \"localhost:15432\"", "host names"],
        ),
        (
            &[("\"127.0.0.1:15432\"", "\"127.0.0.1\"")],
            "listeners[0].bind",
            &["invalid socket address \"127.0.0.1\"", "missing port"],
        ),
        (
            &[("\"[::1]:8080\"", "\"::1:8080\"")],
            "listeners[1].bind",
            &["invalid socket address \"::1:8080\"", "brackets"],
        ),
        (
            &[("\"[::1]:8080\"", "\"[::1]:80800\"")],
            "listeners[1].bind",
            &["invalid socket address \"[::1]:80800\"", "port \"80800\""],
        ),
        (
            &[("\"[::1]:8080\"", "\"\"")],
            "listeners[1].bind",
            &["invalid socket address \"\"", "empty"],
        ),
        (
            &[("\"127.0.0.1:25433\"", "\"10.0.0.1\"")],
            "pools[0].backends[1].addr",
            &["invalid socket address \"10.0.0.1\""],
        ),
        (
            &[("\"10.0.0.1:80\"", "\"backend.internal:80\"")],
            "pools[1].backends[0].addr",
            &["invalid socket address \"backend.internal:80\""],
        ),
        (
            &[("\"10.0.0.1:80\"", "\"10.0.0.1:0\"")],
            "pools[1].backends[0].addr",
            &["\"10.0.0.1:0\"", "port 0"],
        ),
        // Durations.
        (
            &[("connect: \"1s\"", "connect: \"1\"")],
            "listeners[0].timeouts.connect",
            &["invalid duration \"1\"", "missing unit"],
        ),
        (
            &[("connect: \"1s\"", "connect: \"-1s\"")],
            "listeners[0].timeouts.connect",
            &["invalid duration \"-1s\"", "negative"],
        ),
        (
            &[("idle: \"5m\"", "idle: \"5min\"")],
            "listeners[0].timeouts.idle",
            &["invalid duration \"5min\"", "unknown unit \"min\""],
        ),
        (
            &[("idle: \"5m\"", "idle: \"\"")],
            "listeners[0].timeouts.idle",
            &["invalid duration \"\"", "empty"],
        ),
        (
            &[("connect: \"1s\"", "connect: \"0s\"")],
            "listeners[0].timeouts.connect",
            &["must be greater than zero", "\"0s\""],
        ),
        (
            &[("idle: \"5m\"", "idle: \"0.0ms\"")],
            "listeners[0].timeouts.idle",
            &["must be greater than zero", "\"0.0ms\""],
        ),
        (
            &[("idle: \"5m\"", "idle: \"9000h\"")],
            "listeners[0].timeouts.idle",
            &["\"9000h\" is too long"],
        ),
        (
            &[("idle: \"5m\"", "idle: \"99999999999999999999h\"")],
            "listeners[0].timeouts.idle",
            &["invalid duration \"99999999999999999999h\"", "too large"],
        ),
        // Weights.
        (
            &[("weight: 3", "weight: 0")],
            "pools[0].backends[0].weight",
            &["weight must be at least 1, got 0"],
        ),
        (
            &[("weight: 3", "weight: 4294967296")],
            "pools[0].backends[0].weight",
            &["weight 4294967296 is too large"],
        ),
        // References and emptiness.
        (
            &[("Tcp(pool: \"pg\")", "Tcp(pool: \"x\")")],
            "listeners[0].protocol.pool",
            &["unknown pool \"x\"", "defined pools: \"pg\", \"www\""],
        ),
        (
            &[("backends: [(addr: \"10.0.0.1:80\")]", "backends: []")],
            "pools[1].backends",
            &["a pool needs at least one backend"],
        ),
        (
            &[(", backends: [(addr: \"10.0.0.1:80\")]", "")],
            "pools[1].backends",
            &["a pool needs at least one backend"],
        ),
        (
            &[("name: \"db\"", "name: \"\"")],
            "listeners[0].name",
            &["name must not be empty"],
        ),
        (
            &[
                ("name: \"www\"", "name: \" \""),
                ("pool: \"www\"", "pool: \"pg\""),
            ],
            "pools[1].name",
            &["name must not be empty", "\" \""],
        ),
        // Duplicates.
        (
            &[("name: \"web\"", "name: \"db\"")],
            "listeners[1].name",
            &["duplicate listener name \"db\"", "listeners[0]"],
        ),
        (
            &[
                ("name: \"www\"", "name: \"pg\""),
                ("pool: \"www\"", "pool: \"pg\""),
            ],
            "pools[1].name",
            &["duplicate pool name \"pg\"", "pools[0]"],
        ),
        (
            &[("\"[::1]:8080\"", "\"127.0.0.1:15432\"")],
            "listeners[1].bind",
            &["duplicate bind address \"127.0.0.1:15432\"", "listeners[0]"],
        ),
        (
            &[("\"127.0.0.1:25433\"", "\"127.0.0.1:25432\"")],
            "pools[0].backends[1].addr",
            &[
                "duplicate backend address \"127.0.0.1:25432\"",
                "backends[0]",
            ],
        ),
        // Ranges.
        (
            &[("workers: 2", "workers: 0")],
            "workers",
            &["between 1 and 1024, got 0"],
        ),
        (
            &[("workers: 2", "workers: 1025")],
            "workers",
            &["between 1 and 1024, got 1025"],
        ),
        (
            &[("pipe_bytes: 65536", "pipe_bytes: 65537")],
            "tuning.pipe_bytes",
            &["power of two", "got 65537"],
        ),
        (
            &[("pipe_bytes: 65536", "pipe_bytes: 2048")],
            "tuning.pipe_bytes",
            &["between 4096 and 16777216", "got 2048"],
        ),
        (
            &[("pipe_bytes: 65536", "pipe_bytes: 33554432")],
            "tuning.pipe_bytes",
            &["got 33554432"],
        ),
        (
            &[("copy_buffer_bytes: 16384", "copy_buffer_bytes: 512")],
            "tuning.copy_buffer_bytes",
            &["between 1024 and 16777216, got 512"],
        ),
        (
            &[("copy_buffer_bytes: 16384", "copy_buffer_bytes: 16777217")],
            "tuning.copy_buffer_bytes",
            &["got 16777217"],
        ),
        (
            &[("busy_poll: \"50us\"", "busy_poll: \"101ms\"")],
            "tuning.busy_poll",
            &["\"101ms\" is too long", "at most 100ms"],
        ),
        (
            &[("busy_poll: \"50us\"", "busy_poll: \"50\"")],
            "tuning.busy_poll",
            &["invalid duration \"50\""],
        ),
    ];
    for (edits, want_path, fragments) in cases {
        let text = edit_base(edits);
        let errors = errors_of(&text);
        assert_eq!(
            errors.len(),
            1,
            "{edits:?}: expected one error, got {errors:#?}"
        );
        let error = &errors[0];
        assert_eq!(path(error), *want_path, "{edits:?}: {error}");
        for fragment in *fragments {
            assert!(
                error.message.contains(fragment),
                "{edits:?}: {:?} lacks {fragment:?}",
                error.message
            );
        }
    }
}

#[test]
fn valid_edge_values_are_accepted() {
    // The bounds themselves, and things that look odd but are fine.
    let cases: &[&[(&str, &str)]] = &[
        &[("workers: 2", "workers: 1")],
        &[("workers: 2", "workers: 1024")],
        &[("pipe_bytes: 65536", "pipe_bytes: 4096")],
        &[("pipe_bytes: 65536", "pipe_bytes: 16777216")],
        &[("copy_buffer_bytes: 16384", "copy_buffer_bytes: 1024")],
        &[("copy_buffer_bytes: 16384", "copy_buffer_bytes: 16777216")],
        &[("weight: 3", "weight: 4294967295")],
        &[("idle: \"5m\"", "idle: \"8760h\"")],
        &[("connect: \"1s\"", "connect: \"1us\"")],
        // Two listeners on port 0 each get their own ephemeral port.
        &[
            ("\"127.0.0.1:15432\"", "\"127.0.0.1:0\""),
            ("\"[::1]:8080\"", "\"127.0.0.1:0\""),
        ],
        // The same address may serve in two different pools.
        &[("\"10.0.0.1:80\"", "\"127.0.0.1:25432\"")],
        // A listener and a pool may share a name: they are different kinds of thing.
        &[("name: \"web\"", "name: \"www\"")],
    ];
    for edits in cases {
        let text = edit_base(edits);
        if let Err(errors) = Config::parse(&text) {
            panic!("{edits:?} should be valid, got {errors:#?}");
        }
    }
}

#[test]
fn missing_or_empty_listeners_is_an_error() {
    let pools = r#"pools: [(name: "p", backends: [(addr: "10.0.0.1:80")])]"#;
    for text in [format!("({pools})"), format!("(listeners: [], {pools})")] {
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(path(&errors[0]), "listeners");
        assert!(errors[0].message.contains("at least one listener"));
    }
}

#[test]
fn unknown_pool_with_no_pools_says_so() {
    let errors =
        errors_of(r#"(listeners: [(name: "l", bind: "127.0.0.1:1", protocol: Tcp(pool: "p"))])"#);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "listeners[0].protocol.pool: unknown pool \"p\" (no pools are defined)"
    );
}

#[test]
fn several_mistakes_are_all_reported_in_order() {
    let text = r#"(
        workers: 0,
        listeners: [
            (name: "a", bind: "127.0.0.1", protocol: Tcp(pool: "nope"),
             timeouts: (connect: "fast", idle: "0s")),
            (name: "a", bind: "127.0.0.1:9000", protocol: Tcp(pool: "p")),
        ],
        pools: [
            (name: "p", backends: [
                (addr: "10.0.0.1:80", weight: 0),
                (addr: "10.0.0.1:80"),
                (addr: "localhost:80"),
            ]),
            (name: "p", backends: []),
            (name: "", backends: [(addr: "10.0.0.9:80")]),
        ],
        tuning: (pipe_bytes: 1000, copy_buffer_bytes: 1),
    )"#;
    let errors = errors_of(text);
    let found: Vec<&str> = errors.iter().map(path).collect();
    let expected = [
        "workers",
        "listeners[0].bind",
        "listeners[0].protocol.pool",
        "listeners[0].timeouts.connect",
        "listeners[0].timeouts.idle",
        "listeners[1].name",
        "pools[0].backends[0].weight",
        "pools[0].backends[1].addr",
        "pools[0].backends[2].addr",
        "pools[1].name",
        "pools[1].backends",
        "pools[2].name",
        "tuning.pipe_bytes",
        "tuning.copy_buffer_bytes",
    ];
    assert_eq!(found, expected, "errors: {errors:#?}");
}

#[test]
fn parse_errors_give_line_and_column() {
    // (text, line, column, message fragment)
    let cases: &[(&str, usize, usize, &str)] = &[
        // Missing comma between two fields on line 3.
        (
            "(\n    workers: 2,\n    listeners: [] pools: [],\n)",
            3,
            19,
            "expected comma",
        ),
        // Misspelled top-level field.
        (
            "(\n    workers: 2,\n    listners: [],\n)",
            3,
            5,
            "unexpected field named `listners`",
        ),
        // Unknown field inside a backend.
        (
            "(\n  pools: [\n    (name: \"p\", backends: [(addr: \"1.2.3.4:5\", wieght: 2)]),\n  ],\n)",
            3,
            48,
            "unexpected field named `wieght` in `Backend`",
        ),
        // Wrong type: a quoted weight.
        (
            "(\n  pools: [\n    (name: \"p\", backends: [(addr: \"1.2.3.4:5\", weight: \"2\")]),\n  ],\n)",
            3,
            56,
            "expected integer",
        ),
        // A protocol that does not exist.
        (
            "(\n  listeners: [(name: \"l\", bind: \"1.2.3.4:5\",\n    protocol: Quic(pool: \"p\"))],\n)",
            3,
            15,
            "unexpected variant named `Quic` in enum `Protocol`",
        ),
        // An HTTP listener takes routes, not a pool.
        (
            "(\n  listeners: [(name: \"l\", bind: \"1.2.3.4:5\",\n    protocol: Http(pool: \"p\"))],\n)",
            3,
            20,
            "unexpected field named `pool` in `Http`",
        ),
        // Unknown balance algorithm.
        (
            "(pools: [(name: \"p\", balance: Fastest, backends: [])])",
            1,
            31,
            "unexpected variant named `Fastest`",
        ),
        // An empty file.
        ("", 1, 1, "expected opening `(`"),
    ];
    for (text, line, column, fragment) in cases {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        let error = &errors[0];
        assert_eq!(
            error.location,
            Location::Position {
                line: *line,
                column: *column
            },
            "{text}: {error}"
        );
        assert!(
            error.message.contains(fragment),
            "{text}: {:?} lacks {fragment:?}",
            error.message
        );
    }
}

#[test]
fn errors_display_location_then_message() {
    let at_position = ConfigError {
        location: Location::Position {
            line: 3,
            column: 14,
        },
        message: "expected comma".into(),
    };
    assert_eq!(at_position.to_string(), "3:14: expected comma");
    let at_path = ConfigError {
        location: Location::Path("pools[1].backends[0].addr".into()),
        message: "invalid socket address \"10.0.0.1\"".into(),
    };
    assert_eq!(
        at_path.to_string(),
        "pools[1].backends[0].addr: invalid socket address \"10.0.0.1\""
    );
    // And a real one, end to end.
    let errors = errors_of("(\n    workers: 2\n    listeners: [],\n)");
    assert_eq!(errors[0].to_string(), "3:5: expected comma");
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("ringway-config-test-{}.ron", std::process::id()));
    std::fs::write(&path, ISSUE_SAMPLE).unwrap();
    let loaded = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded, Config::parse(ISSUE_SAMPLE));
    assert!(loaded.is_ok());
}

#[test]
fn load_of_a_missing_file_is_one_error_naming_it() {
    let path = Path::new("/nonexistent/ringway/definitely-missing.ron");
    let errors = Config::load(path).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].location,
        Location::Path(path.display().to_string())
    );
    assert!(
        errors[0].message.starts_with("cannot read config file: "),
        "{}",
        errors[0]
    );
    let io_text = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    assert!(
        errors[0].message.contains("No such file") || errors[0].message.contains(&io_text),
        "{}",
        errors[0]
    );
}

#[test]
fn ipv6_and_unspecified_binds_are_accepted() {
    let text = edit_base(&[("\"127.0.0.1:15432\"", "\"0.0.0.0:15432\"")]);
    let config = Config::parse(&text).unwrap();
    assert_eq!(
        config.listeners[0].bind.ip(),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    );
    assert!(config.listeners[1].bind.is_ipv6());
}

/// The health, passive, slow-start and backup fields of the issue, exactly as written.
#[test]
fn health_settings_parse_as_written() {
    let text = r#"(
        admin: "127.0.0.1:9901",
        listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p"))],
        pools: [(name: "p", backends: [(addr: "10.0.0.1:80"), (addr: "10.0.0.2:80", backup: true)],
            health: (check: Http(path: "/healthz", expect: 200), interval: "1s", timeout: "500ms",
                     rise: 2, fall: 3),
            passive: (consecutive_failures: 5, eject_for: "30s"),
            slow_start: "10s",
            panic_threshold: 25)],
    )"#;
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(config.admin, Some(addr("127.0.0.1:9901")));
    let pool = &config.pools[0];
    assert_eq!(
        pool.health,
        Some(HealthCheck {
            check: CheckKind::Http {
                path: "/healthz".into(),
                expect: 200,
                host: None
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
        })
    );
    assert_eq!(pool.passive.consecutive_failures, 5);
    assert_eq!(pool.passive.eject_for, Duration::from_secs(30));
    assert_eq!(pool.slow_start, Duration::from_secs(10));
    assert_eq!(pool.panic_threshold, 25);
    assert!(!pool.backends[0].backup && pool.backends[1].backup);
    let tcp = text.replace(r#"Http(path: "/healthz", expect: 200)"#, "Tcp");
    let config = Config::parse(&tcp).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        config.pools[0].health.as_ref().map(|h| &h.check),
        Some(&CheckKind::Tcp)
    );
}

#[test]
fn health_mistakes_are_all_reported() {
    let text = r#"(
        admin: "localhost:9901",
        listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p"))],
        pools: [(name: "p", backends: [(addr: "10.0.0.1:80")],
            health: (check: Http(path: "healthz", expect: 700), interval: "0s", rise: 0),
            passive: (consecutive_failures: 0, eject_for: "x"),
            slow_start: "-1s",
            panic_threshold: 101)],
    )"#;
    let errors = Config::parse(text).unwrap_err();
    let paths: Vec<String> = errors.iter().map(|e| e.location.to_string()).collect();
    for want in [
        "admin",
        "pools[0].health.check.path",
        "pools[0].health.check.expect",
        "pools[0].health.interval",
        "pools[0].health.rise",
        "pools[0].passive.consecutive_failures",
        "pools[0].passive.eject_for",
        "pools[0].slow_start",
        "pools[0].panic_threshold",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "missing {want} in {paths:?}"
        );
    }
    assert_eq!(errors.len(), 9, "{paths:?}");
}

#[test]
fn proxy_protocol_settings_parse() {
    for (accept, want) in [
        ("V1", ProxyAccept::V1),
        ("V2", ProxyAccept::V2),
        ("Any", ProxyAccept::Any),
        ("None", ProxyAccept::None),
    ] {
        let text = format!(
            r#"(listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p"),
                            proxy_protocol: (accept: {accept}))],
                pools: [(name: "p", backends: [(addr: "10.0.0.1:80")], send_proxy: V2)])"#
        );
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{accept}: {e:?}"));
        assert_eq!(config.listeners[0].proxy_protocol, want);
        assert_eq!(config.pools[0].send_proxy, SendProxy::V2);
    }
    let errors = Config::parse(
        r#"(listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p"),
                         proxy_protocol: (accept: V3))],
            pools: [(name: "p", backends: [(addr: "10.0.0.1:80")])])"#,
    )
    .unwrap_err();
    assert!(
        matches!(errors[0].location, Location::Position { .. }),
        "{errors:?}"
    );
}

#[test]
fn udp_listeners_parse_with_their_own_defaults() {
    let text = r#"(listeners: [
            (name: "dns", bind: "127.0.0.1:53", protocol: Udp(pool: "p")),
            (name: "dns2", bind: "127.0.0.1:54", protocol: Udp(pool: "p"),
             timeouts: (idle: "10s"), limits: (max_flows: 500)),
        ],
        pools: [(name: "p", balance: Maglev, backends: [(addr: "10.0.0.1:53")])])"#;
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(config.listeners[0].protocol, Protocol::Udp { pool: 0 });
    assert_eq!(config.listeners[0].timeouts.idle, DEFAULT_UDP_IDLE_TIMEOUT);
    assert_eq!(config.listeners[0].max_flows, DEFAULT_MAX_FLOWS);
    assert_eq!(config.listeners[1].timeouts.idle, Duration::from_secs(10));
    assert_eq!(config.listeners[1].max_flows, 500);
    let bad = text.replace("max_flows: 500", "max_flows: 0").replace(
        "protocol: Udp(pool: \"p\")),",
        "protocol: Udp(pool: \"p\"), proxy_protocol: (accept: V1)),",
    );
    let errors = Config::parse(&bad).unwrap_err();
    let paths: Vec<String> = errors.iter().map(|e| e.location.to_string()).collect();
    assert_eq!(
        paths,
        [
            "listeners[0].proxy_protocol",
            "listeners[1].limits.max_flows"
        ],
        "{errors:?}"
    );
}

#[test]
fn limits_and_rate_limits_parse_as_written() {
    let text = r#"(listeners: [(name: "l", bind: "127.0.0.1:80", protocol: Tcp(pool: "p"),
                     limits: (max_connections: 10000),
                     rate_limit: (per_ip: 100, per: "1s", burst: 200))],
        pools: [(name: "p", backends: [(addr: "10.0.0.1:80", max_connections: 500)])])"#;
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
    let listener = &config.listeners[0];
    assert_eq!(listener.max_connections, Some(10_000));
    assert_eq!(
        listener.rate_limit,
        Some(RateLimit {
            per_ip: 100,
            per: Duration::from_secs(1),
            burst: 200
        })
    );
    assert_eq!(config.pools[0].backends[0].max_connections, Some(500));
    // burst defaults to per_ip, per to one second.
    let short = text.replace(r#", per: "1s", burst: 200"#, "");
    let config = Config::parse(&short).unwrap();
    assert_eq!(
        config.listeners[0].rate_limit,
        Some(RateLimit {
            per_ip: 100,
            per: Duration::from_secs(1),
            burst: 100
        })
    );
    let bad = text
        .replace("max_connections: 10000", "max_connections: 0")
        .replace("per_ip: 100", "per_ip: 0")
        .replace("max_connections: 500", "max_connections: 0");
    let errors = Config::parse(&bad).unwrap_err();
    let paths: Vec<String> = errors.iter().map(|e| e.location.to_string()).collect();
    for want in [
        "listeners[0].limits.max_connections",
        "listeners[0].rate_limit.per_ip",
        "pools[0].backends[0].max_connections",
    ] {
        assert!(paths.iter().any(|p| p == want), "missing {want}: {paths:?}");
    }
}

/// The `Http` listener exactly as the L7 issue writes it, with the pools it names.
const HTTP_SAMPLE: &str = r#"(
    listeners: [
        (name: "web", bind: "127.0.0.1:18080", protocol: Http(routes: [
            (host: "api.example.com", path_prefix: "/v1/", pool: "api"),
            (path_exact: "/healthz", respond: (status: 200, body: "ok\n")),
            (header: ("x-canary", "1"), pool: "canary"),
            (cookie: ("tier", "beta"), pool: "canary"),
            (method: "POST", path_regex: "^/upload/[0-9]+$", pool: "api"),
            (path_prefix: "/", pool: "web",
             set_request_headers: [("x-env", "prod")], remove_response_headers: ["server"]),
        ]), timeouts: (client_header: "10s", client_idle: "60s", connect: "1s",
                       upstream_response: "30s"),
           limits: (max_head_bytes: 32768, max_headers: 100, max_body_bytes: None)),
    ],
    pools: [
        (name: "api", backends: [(addr: "127.0.0.1:18091")]),
        (name: "canary", backends: [(addr: "127.0.0.1:18092")]),
        (name: "web", backends: [(addr: "127.0.0.1:18093")], sticky: Cookie(name: "rw_srv"),
         keepalive: (max_idle: 8, idle: "30s")),
    ],
)"#;

#[test]
fn issue_http_listener_parses_to_expected_values() {
    use crate::route::{ActionSpec, PathMatch};
    let config = Config::parse(HTTP_SAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
    let listener = &config.listeners[0];
    let http = listener.protocol.http().expect("an Http listener");
    assert_eq!(listener.protocol.pool(), None);
    assert_eq!(listener.timeouts.connect, Duration::from_secs(1));
    assert_eq!(
        http.timeouts,
        HttpTimeouts {
            client_header: Duration::from_secs(10),
            client_idle: Duration::from_secs(60),
            upstream_response: Duration::from_secs(30),
        }
    );
    assert_eq!(http.limits.max_head_bytes, 32768);
    assert_eq!(http.limits.max_headers, 100);
    assert_eq!(http.limits.max_body_bytes, None);
    let specs = &http.routes.specs;
    assert_eq!(specs.len(), 6);
    assert_eq!(http.routes.names, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(specs[0].host.as_deref(), Some("api.example.com"));
    assert_eq!(specs[0].path, Some(PathMatch::Prefix("/v1/".into())));
    assert_eq!(specs[0].action, ActionSpec::proxy(0));
    assert_eq!(specs[1].action, ActionSpec::respond(200, "ok\n"));
    assert_eq!(specs[2].header, Some(("x-canary".into(), "1".into())));
    assert_eq!(specs[3].cookie, Some(("tier".into(), "beta".into())));
    assert_eq!(specs[3].action, ActionSpec::proxy(1));
    assert_eq!(specs[4].method.as_deref(), Some("POST"));
    assert_eq!(
        specs[4].path,
        Some(PathMatch::Regex("^/upload/[0-9]+$".into()))
    );
    match &specs[5].action {
        ActionSpec::Proxy {
            pool,
            set_request_headers,
            remove_response_headers,
            ..
        } => {
            assert_eq!(*pool, 2);
            assert_eq!(
                set_request_headers,
                &[("x-env".to_string(), "prod".to_string())]
            );
            assert_eq!(remove_response_headers, &["server".to_string()]);
        }
        other => panic!("expected a proxy route, got {other:?}"),
    }
    assert_eq!(http.routes.table.len(), 6);
    let web = &config.pools[2];
    assert_eq!(
        web.sticky,
        Some(Sticky::Cookie {
            name: "rw_srv".into()
        })
    );
    assert_eq!(
        web.keepalive,
        Keepalive {
            max_idle: 8,
            idle: Duration::from_secs(30)
        }
    );
    assert_eq!(config.pools[0].keepalive, Keepalive::default());
    assert_eq!(listener.access_log, AccessLogFormat::Off);
}

#[test]
fn http_mistakes_are_reported_at_their_paths() {
    let http = |routes: &str, rest: &str| {
        format!(
            r#"(listeners: [(name: "web", bind: "127.0.0.1:18080", protocol: Http(routes: [{routes}]){rest})],
               pools: [(name: "p", backends: [(addr: "127.0.0.1:1")]){pool_rest}])"#,
            pool_rest = ""
        )
    };
    let cases: &[(String, &str, &str)] = &[
        (
            http(r#"(pool: "nope")"#, ""),
            "listeners[0].protocol.routes[0].pool",
            "unknown pool",
        ),
        (
            http(r#"(path_prefix: "/")"#, ""),
            "listeners[0].protocol.routes[0]",
            "needs pool",
        ),
        (
            http(r#"(pool: "p", respond: (status: 200))"#, ""),
            "listeners[0].protocol.routes[0]",
            "not both",
        ),
        (
            http(r#"(pool: "p"), (path_regex: "(", pool: "p")"#, ""),
            "listeners[0].protocol.routes[1].path_regex",
            "",
        ),
        (
            http(r#"(path_prefix: "/", path_exact: "/x", pool: "p")"#, ""),
            "listeners[0].protocol.routes[0].path_prefix",
            "at most one",
        ),
        (
            http(r#"(respond: (status: 99))"#, ""),
            "listeners[0].protocol.routes[0].respond.status",
            "",
        ),
        (
            http(
                r#"(pool: "p", set_request_headers: [("content-length", "1")])"#,
                "",
            ),
            "listeners[0].protocol.routes[0].set_request_headers",
            "",
        ),
        (
            http(
                r#"(respond: (status: 200), remove_response_headers: ["server"])"#,
                "",
            ),
            "listeners[0].protocol.routes[0]",
            "header edits",
        ),
        (
            http(r#"(name: "a", pool: "p"), (name: "a", pool: "p")"#, ""),
            "listeners[0].protocol.routes[1].name",
            "duplicate route name",
        ),
        (
            http(r#"(pool: "p")"#, r#", timeouts: (client_header: "0s")"#),
            "listeners[0].timeouts.client_header",
            "greater than zero",
        ),
        (
            http(r#"(pool: "p")"#, r#", limits: (max_head_bytes: 10)"#),
            "listeners[0].limits.max_head_bytes",
            "between",
        ),
        (
            http(r#"(pool: "p")"#, r#", limits: (max_headers: 0)"#),
            "listeners[0].limits.max_headers",
            "between",
        ),
    ];
    for (text, want_path, want_message) in cases {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(path(&errors[0]), *want_path, "{text}: {errors:?}");
        assert!(
            errors[0].message.contains(want_message),
            "{text}: {:?} lacks {want_message:?}",
            errors[0].message
        );
    }
}

#[test]
fn http_only_fields_on_l4_listeners_and_bad_pool_fields_are_errors() {
    let text = r#"(listeners: [(name: "db", bind: "127.0.0.1:1", protocol: Tcp(pool: "p"),
        timeouts: (upstream_response: "1s"), limits: (max_body_bytes: 5), access_log: Json)],
        pools: [(name: "p", backends: [(addr: "127.0.0.1:2")], sticky: Cookie(name: "a b"),
                 keepalive: (idle: "soon"))])"#;
    let errors = errors_of(text);
    let paths: Vec<&str> = errors.iter().map(path).collect();
    assert_eq!(
        paths,
        [
            "listeners[0].timeouts.upstream_response",
            "listeners[0].limits.max_body_bytes",
            "listeners[0].access_log",
            "pools[0].sticky.name",
            "pools[0].keepalive.idle",
        ],
        "{errors:?}"
    );
}

#[test]
fn tls_mistakes_are_each_reported_at_their_field() {
    let errors = errors_of(
        r#"(
        listeners: [
            (name: "tcp", bind: "127.0.0.1:1", protocol: Tcp(pool: "secure"),
             tls: (certificates: [(cert: "a.pem", key: "a.key")])),
            (name: "web", bind: "127.0.0.1:2", protocol: Http(routes: [
                (pool: "plain", client_subject_header: "x-client-subject"),
             ]),
             tls: (certificates: [(cert: "/nonexistent/ringway-test.pem",
                                   key: "/nonexistent/ringway-test.key")],
                   min_version: "1.1", alpn: ["h2"])),
        ],
        pools: [
            (name: "secure", backends: [(addr: "127.0.0.1:3")],
             tls: (sni: "not a name", ca: "/nonexistent/ringway-ca.pem")),
            (name: "plain", backends: [(addr: "127.0.0.1:4")]),
        ],
    )"#,
    );
    let at = |path: &str| {
        errors
            .iter()
            .find(|e| e.location == Location::Path(path.into()))
            .map(|e| e.message.clone())
            .unwrap_or_else(|| panic!("no error at {path}: {errors:#?}"))
    };
    assert!(at("listeners[0].tls").contains("only applies to Http"));
    assert!(at("listeners[0].protocol.pool").contains("speaks TLS"));
    assert!(at("listeners[1].tls.min_version").contains("\"1.1\""));
    assert!(at("listeners[1].tls.alpn[0]").contains("HTTP/1.x"));
    assert!(at("listeners[1].protocol.routes[0].client_subject_header").contains("client_auth"));
    assert!(at("pools[0].tls.sni").contains("not a name"));
    assert!(at("pools[0].tls.ca").contains("/nonexistent/ringway-ca.pem"));
}

#[test]
fn tls_certificate_files_are_read_and_named_in_errors() {
    let errors = errors_of(
        r#"(
        listeners: [(name: "web", bind: "127.0.0.1:2", protocol: Http(routes: [(pool: "p")]),
             tls: (certificates: [(cert: "/nonexistent/ringway-test.pem",
                                   key: "/dev/zero")]))],
        pools: [(name: "p", backends: [(addr: "127.0.0.1:4")])],
    )"#,
    );
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("listeners[0].tls.certificates[0].cert")
                && m.contains("/nonexistent/ringway-test.pem")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("listeners[0].tls.certificates[0].key")
                && m.contains("/dev/zero")),
        "{messages:#?}"
    );
}

#[test]
fn busy_poll_accepts_zero_up_to_its_bound() {
    for (written, expected) in [
        ("0s", Duration::ZERO),
        ("20us", Duration::from_micros(20)),
        ("0.5ms", Duration::from_micros(500)),
        ("100ms", crate::config::MAX_BUSY_POLL),
    ] {
        let text = edit_base(&[("busy_poll: \"50us\"", &format!("busy_poll: \"{written}\""))]);
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{written}: {e:?}"));
        assert_eq!(config.tuning.busy_poll, expected, "{written}");
    }
}
