//! The command line: `check`, `--version`, `--help`, and startup failures of `run`.

mod common;

use std::process::{Command, Output};

use common::*;

fn ringway(args: &[&str]) -> Output {
    Command::new(ringway_bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ringway")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_default_config() {
    let out = ringway(&["check", "-c", "conf/ringway.ron"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "conf/ringway.ron: ok");
}

#[test]
fn check_short_flag_form_works() {
    let out = ringway(&["-t", "-c", "conf/ringway.ron"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "conf/ringway.ron: ok");
}

#[test]
fn check_reports_all_three_errors_with_their_paths() {
    let out = ringway(&["check", "-c", "conf/bad-example.ron"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.ends_with("error(s)")).collect();
    assert_eq!(lines.len(), 3, "stderr: {err}");
    for (line, path, fragment) in [
        (
            lines[0],
            "listeners[0].protocol.pool",
            "unknown pool \"web\"",
        ),
        (
            lines[1],
            "pools[0].backends[0].addr",
            "invalid socket address \"10.0.0.1\"",
        ),
        (lines[2], "pools[0].backends[1].weight", "at least 1"),
    ] {
        assert!(line.starts_with("conf/bad-example.ron: "), "{line}");
        assert!(line.contains(&format!("{path}: ")), "{line} lacks {path}");
        assert!(line.contains(fragment), "{line} lacks {fragment}");
    }
    assert!(err.contains("3 error(s)"), "{err}");
}

#[test]
fn check_reports_syntax_errors_with_line_and_column() {
    let dir = scratch_dir("cli");
    let path = dir.join("broken.ron");
    std::fs::write(
        &path,
        "(\n    workers: 2,\n    listeners: [ (name: \"x\" bind: \"127.0.0.1:1\") ],\n)\n",
    )
    .unwrap();
    let out = ringway(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    let location = first
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or("");
    let mut parts = location.splitn(3, ':');
    let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let column: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    assert_eq!(line, 3, "{err}");
    assert!(column > 20, "{err}");
}

#[test]
fn check_missing_file_fails_with_the_io_error() {
    let out = ringway(&["check", "-c", "/nonexistent/ringway.ron"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_and_help() {
    let out = ringway(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("ringway {}", env!("CARGO_PKG_VERSION"))
    );
    let out = ringway(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["run", "check", "--version"] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
    let out = ringway(&["run", "--help"]);
    assert!(text(&out.stdout).contains("--workers"));
}

#[test]
fn run_with_invalid_config_exits_nonzero_with_every_error() {
    let out = ringway(&["run", "-c", "conf/bad-example.ron"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().count(),
        3,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_on_an_address_in_use_exits_nonzero_and_says_which() {
    // A plain listener without SO_REUSEPORT: ringway's reuseport bind must fail on it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = scratch_dir("cli");
    let path = dir.join("inuse.ron");
    std::fs::write(
        &path,
        tcp_config(1, "Splice", "RoundRobin", &[(dead_addr(), 1)], "")
            .replace("127.0.0.1:0", &addr.to_string()),
    )
    .unwrap();
    let out = ringway(&["run", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("listener l4") && err.contains(&addr.to_string()),
        "{err}"
    );
}

#[test]
fn workers_flag_overrides_the_config() {
    let echo = Backend::start(Behaviour::Echo);
    let config = tcp_config(1, "Splice", "RoundRobin", &[(echo.addr, 1)], "");
    let dir = scratch_dir("cli");
    let path = dir.join("w.ron");
    std::fs::write(&path, &config).unwrap();
    let out = ringway(&["run", "-c", path.to_str().unwrap(), "--workers", "0"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects 0 workers");
    let proxy = Proxy::start_with_args(&config, &["--workers", "3"], &[]);
    let threads = std::fs::read_dir(format!("/proc/{}/task", proxy.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ringway-w"))
        .count();
    assert_eq!(threads, 3);
}
