//! `tuning.busy_poll` end to end: the real binary with busy polling on serves HTTP and L4
//! traffic, keeps its worker polling for the budget after activity, then sleeps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http_backend::{HttpBackend, HttpBehaviour, HttpClient};
use common::{checksum, pattern, send_and_receive_all, Backend, Behaviour, Proxy};

/// CPU time (user + system) the thread called `comm` of process `pid` has used.
fn thread_cpu(pid: u32, comm: &str) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list threads");
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim_end() != comm {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).expect("thread stat");
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("stat name") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf reads a constant and has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        return Duration::from_millis(ticks * 1000 / hz);
    }
    panic!("no thread {comm} in process {pid}");
}

/// Whether the proxy said its workers fell back to epoll (no io_uring here), where
/// busy polling is not available.
fn on_epoll(proxy: &Proxy) -> bool {
    proxy
        .startup_log
        .iter()
        .any(|l| l.contains("running on the epoll driver"))
}

/// CPU time the worker thread of process `pid` uses while `work` runs and over `window`
/// after it. The window is a measurement, not a wait for an event: nothing ends it early.
fn worker_cpu(pid: u32, window: Duration, work: impl FnOnce()) -> Duration {
    let before = thread_cpu(pid, "ringway-w0");
    work();
    std::thread::sleep(window);
    thread_cpu(pid, "ringway-w0").saturating_sub(before)
}

/// A hello backend, a one-worker HTTP proxy in front of it with `busy_poll: budget`, and a
/// keep-alive client connected to the proxy.
fn start(budget: &str) -> (HttpBackend, Proxy, HttpClient) {
    let web = HttpBackend::start(HttpBehaviour::Hello { id: "b".into() });
    let proxy = Proxy::start(&http_config(web.addr(), budget), &[]);
    let client = HttpClient::connect(proxy.addr("web"));
    (web, proxy, client)
}

fn http_config(backend: std::net::SocketAddr, budget: &str) -> String {
    format!(
        "(workers: 1,\n listeners: [(name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [(pool: \"p\")]))],\n pools: [(name: \"p\", backends: [(addr: \"{backend}\")])],\n tuning: (busy_poll: \"{budget}\"))\n"
    )
}

#[test]
fn http_keep_alive_and_l4_relay_work_with_busy_polling() {
    let web = HttpBackend::start(HttpBehaviour::Hello { id: "b".into() });
    let echo = Backend::start(Behaviour::Echo);
    let config = format!(
        "(workers: 1,\n listeners: [\n  (name: \"web\", bind: \"127.0.0.1:0\", protocol: Http(routes: [(pool: \"p\")])),\n  (name: \"l4\", bind: \"127.0.0.1:0\", protocol: Tcp(pool: \"e\")),\n ],\n pools: [(name: \"p\", backends: [(addr: \"{}\")]), (name: \"e\", backends: [(addr: \"{}\")])],\n tuning: (busy_poll: \"50us\"))\n",
        web.addr(),
        echo.addr
    );
    let proxy = Proxy::start(&config, &[]);
    let mut client = HttpClient::connect(proxy.addr("web"));
    for i in 0..200 {
        let target = format!("/n/{i}");
        let r = client.request("GET", &target, &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("b GET {target}\n"));
    }
    assert_eq!(web.accepts(), 1, "one pooled upstream connection");
    let data = Arc::new(pattern(4 << 20, 7));
    let back = send_and_receive_all(common::connect(proxy.addr("l4")), data.clone());
    assert_eq!(back.len(), data.len());
    assert_eq!(checksum(&back), checksum(&data));
}

#[test]
fn worker_polls_for_the_budget_after_activity_then_sleeps() {
    // A budget long enough to show up in the thread's CPU time (10 ms clock ticks).
    let (_web, proxy, mut client) = start("100ms");
    assert_eq!(client.request("GET", "/", &[], b"").status, 200);
    // The spinner now runs for 100 ms after that request, then stops. Over a window
    // six times as long, a worker that never stopped would use about the whole window;
    // the lower bound leaves room for a machine busy with other tests.
    let window = Duration::from_millis(600);
    let used = worker_cpu(proxy.pid(), window, || {});
    assert!(
        used <= Duration::from_millis(350),
        "the worker kept polling while idle: {used:?} of CPU in {window:?}"
    );
    if on_epoll(&proxy) {
        assert!(
            used <= Duration::from_millis(50),
            "polled on epoll: {used:?}"
        );
    } else {
        assert!(
            used >= Duration::from_millis(30),
            "the worker did not poll after the request: {used:?} of CPU"
        );
    }
    // Activity restarts it, and it still answers.
    assert_eq!(client.request("GET", "/again", &[], b"").status, 200);
}

#[test]
fn zero_budget_never_polls() {
    let (_web, proxy, mut client) = start("0s");
    let used = worker_cpu(proxy.pid(), Duration::from_millis(300), || {
        for _ in 0..20 {
            assert_eq!(client.request("GET", "/", &[], b"").status, 200);
        }
    });
    assert!(
        used <= Duration::from_millis(50),
        "a worker without busy polling used {used:?} of CPU"
    );
}

#[test]
fn a_reload_turns_busy_polling_on_and_off() {
    let (web, proxy, mut client) = start("0s");
    if on_epoll(&proxy) {
        return; // no busy polling on epoll: `worker_polls_for_the_budget...` covers it
    }
    let pid = proxy.pid();
    let reload = |budget: &str| {
        std::fs::write(&proxy.config_path, http_config(web.addr(), budget)).unwrap();
        proxy.signal(libc::SIGHUP);
        proxy.wait_log("reload: ", Duration::from_secs(10));
    };
    let mut cpu_after_a_request = |window: Duration| {
        assert_eq!(client.request("GET", "/", &[], b"").status, 200);
        worker_cpu(pid, window, || {})
    };
    reload("100ms");
    let on = cpu_after_a_request(Duration::from_millis(600));
    assert!(
        (Duration::from_millis(30)..=Duration::from_millis(350)).contains(&on),
        "after turning it on: {on:?} of CPU"
    );
    reload("0s");
    let off = cpu_after_a_request(Duration::from_millis(300));
    assert!(
        off <= Duration::from_millis(50),
        "after turning it off: {off:?}"
    );
}
