//! Table-driven tests of route building and matching, cookies and sticky tokens.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use super::*;

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// Header pairs as tests write them.
type Pairs<'a> = [(&'a str, &'a str)];

fn view<'a>(
    method: &'a str,
    host: Option<&'a str>,
    target: &'a str,
    headers: &'a Pairs<'a>,
) -> RequestView<'a> {
    RequestView {
        method: method.as_bytes(),
        host: host.map(str::as_bytes),
        target: target.as_bytes(),
        headers: &*Box::leak(Box::new(headers)),
    }
}

fn table(specs: &[RouteSpec]) -> RouteTable {
    RouteTable::build(specs).unwrap_or_else(|e| panic!("{specs:?} rejected: {e:?}"))
}

/// A table holding only `spec`; whether `req` matches it.
fn one_hits(spec: &RouteSpec, req: &RequestView<'_>) -> bool {
    match table(std::slice::from_ref(spec)).find(req) {
        Some(0) => true,
        None => false,
        Some(i) => panic!("one route, found index {i}"),
    }
}

fn catch_all(pool: usize) -> RouteSpec {
    RouteSpec::new(ActionSpec::proxy(pool))
}

fn s(v: &str) -> String {
    v.to_string()
}

fn pair(a: &str, b: &str) -> Option<(String, String)> {
    Some((s(a), s(b)))
}

// ---------------------------------------------------------------------------------
// One condition kind at a time.
// ---------------------------------------------------------------------------------

#[test]
fn host_condition() {
    let rows: &[(&str, Option<&str>, bool)] = &[
        ("api.example.com", Some("api.example.com"), true),
        ("api.example.com", Some("API.Example.COM"), true),
        ("API.Example.com", Some("api.example.com"), true),
        ("api.example.com", Some("api.example.com:8080"), true),
        ("api.example.com", Some("api.example.com."), true),
        ("api.example.com", Some("api.example.com.:443"), true),
        ("api.example.com.", Some("api.example.com"), true),
        ("api.example.com", Some(" api.example.com "), true),
        ("api.example.com", Some("api.example.com.."), false),
        ("api.example.com", Some("www.example.com"), false),
        ("api.example.com", Some("api.example.com.evil"), false),
        ("api.example.com", Some("xapi.example.com"), false),
        ("api.example.com", Some("[::1]:80"), false),
        ("api.example.com", Some(""), false),
        ("api.example.com", None, false),
        ("*.example.com", Some("a.example.com"), true),
        ("*.example.com", Some("a.b.example.com"), true),
        ("*.example.com", Some("A.EXAMPLE.com:80"), true),
        ("*.example.com", Some("a.example.com."), true),
        ("*.example.com", Some("example.com"), false),
        ("*.example.com", Some(".example.com"), false),
        ("*.example.com", Some("aexample.com"), false),
        ("*.example.com", Some("a.example.org"), false),
        ("*.example.com", Some("a.example.com.evil"), false),
        ("*.example.com", None, false),
        ("[::1]", Some("[::1]:80"), true),
        ("[::1]", Some("[::1]"), true),
        ("::1", Some("[0:0::1]:8080"), true),
        ("[2001:db8::a]", Some("[2001:DB8::A]"), true),
        ("[::1]", Some("[::2]:80"), false),
        ("[::1]", Some("::1"), false),
        ("[::1]", Some("[::1"), false),
        ("10.0.0.1", Some("10.0.0.1:80"), true),
        ("10.0.0.1", Some("10.0.0.10"), false),
        ("localhost", Some("localhost:"), true),
    ];
    for &(pattern, host, want) in rows {
        let spec = RouteSpec {
            host: Some(s(pattern)),
            ..catch_all(0)
        };
        let req = view("GET", host, "/", &[]);
        assert_eq!(one_hits(&spec, &req), want, "host {pattern:?} vs {host:?}");
    }
}

#[test]
fn request_host_normalization() {
    let rows: &[(&str, &str)] = &[
        ("a.example", "a.example"),
        ("a.example:80", "a.example"),
        ("a.example.", "a.example"),
        ("a.example.:80", "a.example"),
        ("A.Example", "A.Example"),
        (" a.example\t", "a.example"),
        ("[::1]:80", "[::1]"),
        ("[::1]", "[::1]"),
        ("[::1", "[::1"),
        // Not valid Host syntax; kept whole rather than cut at an inner colon.
        ("fe80::1", "fe80::1"),
        ("", ""),
    ];
    for &(raw, want) in rows {
        assert_eq!(host::normalize(raw.as_bytes()), want.as_bytes(), "{raw:?}");
    }
}

#[test]
fn path_conditions() {
    use PathMatch::{Exact, Prefix, Regex};
    let rows: &[(PathMatch, &str, bool)] = &[
        (Prefix(s("/v1/")), "/v1/users", true),
        (Prefix(s("/v1/")), "/v1/", true),
        (Prefix(s("/v1/")), "/v1/?q=1", true),
        (Prefix(s("/v1/")), "/v1", false),
        (Prefix(s("/v1/")), "/V1/users", false),
        (Prefix(s("/v1/")), "/v2/v1/", false),
        (Prefix(s("/v1/")), "/v1?next=/v1/", false),
        (Prefix(s("/")), "*", false),
        (Prefix(s("/x")), "http://a.example/x?y", true),
        (Prefix(s("/x")), "http://a.example?/x", false),
        (Prefix(s("/api")), "/public/../api", false),
        (Exact(s("/healthz")), "/healthz", true),
        (Exact(s("/healthz")), "/healthz?verbose=1", true),
        (Exact(s("/healthz")), "/healthz/", false),
        (Exact(s("/healthz")), "/healthz2", false),
        (Exact(s("/healthz")), "/Healthz", false),
        (Exact(s("/")), "http://a.example?x", true),
        (Exact(s("/")), "", true),
        (Exact(s("*")), "*", true),
        (Regex(s("^/upload/[0-9]+$")), "/upload/42", true),
        (Regex(s("^/upload/[0-9]+$")), "/upload/42?x=1", true),
        (Regex(s("^/upload/[0-9]+$")), "/upload/42/x", false),
        (Regex(s("^/upload/[0-9]+$")), "/x/upload/42", false),
        (Regex(s("^/upload/[0-9]+$")), "/upload/", false),
        (Regex(s("/upload/")), "/x/upload/1", true),
        (Regex(s("^/a$")), "/a#frag", true),
        (Regex(s(r"\?")), "/a?b", false),
        (Regex(s("(?i)^/admin")), "/ADMIN/x", true),
    ];
    for (path, target, want) in rows {
        let spec = RouteSpec {
            path: Some(path.clone()),
            ..catch_all(0)
        };
        let req = view("GET", Some("h"), target, &[]);
        assert_eq!(one_hits(&spec, &req), *want, "{path:?} vs {target:?}");
    }
}

#[test]
fn request_path_rows() {
    let rows: &[(&str, &str)] = &[
        ("/a/b?c=d", "/a/b"),
        ("/a/b", "/a/b"),
        ("/?", "/"),
        ("/a#f", "/a"),
        ("*", "*"),
        ("", "/"),
        ("http://h.example/p?q", "/p"),
        ("HTTPS://h.example:8443/p/q", "/p/q"),
        ("http://h.example", "/"),
        ("http://h.example?q", "/"),
        ("weird", "weird"),
        ("1http://h/p", "1http://h/p"),
    ];
    for &(target, want) in rows {
        let req = view("GET", None, target, &[]);
        assert_eq!(req.path(), want.as_bytes(), "target {target:?}");
    }
}

#[test]
fn method_condition() {
    let rows: &[(&str, &str, bool)] = &[
        ("POST", "POST", true),
        ("POST", "post", false),
        ("POST", "GET", false),
        ("POST", "POSTX", false),
        ("POST", "", false),
        ("PURGE", "PURGE", true),
    ];
    for &(cond, method, want) in rows {
        let spec = RouteSpec {
            method: Some(s(cond)),
            ..catch_all(0)
        };
        let req = view(method, Some("h"), "/", &[]);
        assert_eq!(one_hits(&spec, &req), want, "{cond:?} vs {method:?}");
    }
}

#[test]
fn header_condition() {
    let rows: &[((&str, &str), &Pairs<'_>, bool)] = &[
        (("x-canary", "1"), &[("x-canary", "1")], true),
        (("x-canary", "1"), &[("X-Canary", "1")], true),
        (("X-CANARY", "1"), &[("x-canary", "1")], true),
        (("x-canary", "1"), &[("x-canary", " 1\t")], true),
        (
            ("x-canary", "1"),
            &[("x-canary", "2"), ("x-canary", "1")],
            true,
        ),
        (
            ("x-canary", "1"),
            &[("a", "b"), ("x-canary", "1"), ("c", "d")],
            true,
        ),
        (("x-canary", "1"), &[("x-canary", "1, 2")], false),
        (("x-canary", "1"), &[("x-canary", "11")], false),
        (("x-canary", "1"), &[("x-canary", "")], false),
        (("x-canary", "1"), &[("x-canaryx", "1")], false),
        (("x-canary", "1"), &[("canary", "1")], false),
        (("x-canary", "1"), &[], false),
        (("x-canary", ""), &[("x-canary", "  ")], true),
        (("x-canary", "a b"), &[("x-canary", "a b")], true),
        (("x-canary", "a b"), &[("x-canary", "a  b")], false),
    ];
    for &((name, value), headers, want) in rows {
        let spec = RouteSpec {
            header: pair(name, value),
            ..catch_all(0)
        };
        let req = view("GET", Some("h"), "/", headers);
        assert_eq!(
            one_hits(&spec, &req),
            want,
            "({name:?}, {value:?}) vs {headers:?}"
        );
    }
}

#[test]
fn cookie_condition() {
    let rows: &[(&Pairs<'_>, bool)] = &[
        (&[("cookie", "tier=beta")], true),
        (&[("Cookie", "a=1; tier=beta")], true),
        (&[("cookie", "a=1;tier=beta;b=2")], true),
        (
            &[("cookie", "a=1"), ("x", "y"), ("cookie", "tier=beta")],
            true,
        ),
        (&[("cookie", "tier=\"beta\"")], true),
        (&[("cookie", " tier = beta ")], true),
        (&[("cookie", "tier=alpha; tier=beta")], true),
        (&[("cookie", "junk; tier=beta")], true),
        (&[("cookie", "Tier=beta")], false),
        (&[("cookie", "tiers=beta")], false),
        (&[("cookie", "xtier=beta")], false),
        (&[("cookie", "tier=betamax")], false),
        (&[("cookie", "tier=Beta")], false),
        (&[("cookie", "tier=\"beta")], false),
        (&[("cookie", "tier")], false),
        (&[("cookie", "a=tier=beta")], false),
        (&[("set-cookie", "tier=beta")], false),
        (&[("x-cookie", "tier=beta")], false),
        (&[("tier", "beta")], false),
        (&[], false),
    ];
    let spec = RouteSpec {
        cookie: pair("tier", "beta"),
        ..catch_all(0)
    };
    for &(headers, want) in rows {
        let req = view("GET", Some("h"), "/", headers);
        assert_eq!(one_hits(&spec, &req), want, "{headers:?}");
    }
}

#[test]
fn cookie_value_rows() {
    let rows: &[(&str, &Pairs<'_>, Option<&str>)] = &[
        ("sid", &[("cookie", "a=1; sid=abc")], Some("abc")),
        ("sid", &[("cookie", "sid=\"abc\"")], Some("abc")),
        ("sid", &[("cookie", "a=1"), ("Cookie", "sid=x")], Some("x")),
        ("sid", &[("cookie", "sid=first; sid=second")], Some("first")),
        ("sid", &[("cookie", "sid=")], Some("")),
        ("sid", &[("cookie", "sid=\"\"")], Some("")),
        ("sid", &[("cookie", "sid = a b ")], Some("a b")),
        ("sid", &[("cookie", "SID=abc")], None),
        ("sid", &[("cookie", "sidx=1; xsid=2")], None),
        ("sid", &[("set-cookie", "sid=abc")], None),
        ("sid", &[], None),
    ];
    for &(name, headers, want) in rows {
        let got = cookie_value(&headers, name);
        assert_eq!(got, want.map(str::as_bytes), "{name:?} in {headers:?}");
        assert_eq!(view("GET", None, "/", headers).cookie(name), got);
    }
}

#[test]
fn cookie_value_borrows_from_the_request() {
    let buf = b"cookie: a=1; sid=\"tok\"".to_vec();
    let fields = [(&buf[..6], &buf[8..])];
    let value = cookie_value(&fields, "sid").expect("present");
    let range = buf.as_ptr_range();
    assert!(range.contains(&value.as_ptr()), "not a slice of the buffer");
    assert_eq!(value, b"tok");
}

#[test]
fn header_sources() {
    let spec = RouteSpec {
        header: pair("x-canary", "1"),
        ..catch_all(0)
    };
    let t = table(&[spec]);
    let bytes: [(&[u8], &[u8]); 2] = [(b"a", b"b"), (b"X-Canary", b"1")];
    let slice: &[(&[u8], &[u8])] = &bytes;
    let vec = bytes.to_vec();
    let strs = vec![("x-canary", "1")];
    let iter = IterHeaders(bytes.iter().copied());
    let sources: [(&dyn HeaderSource<'_>, bool); 6] = [
        (&bytes, true),
        (&slice, true),
        (&vec, true),
        (&strs, true),
        (&iter, true),
        (&NoHeaders, false),
    ];
    for (i, (headers, want)) in sources.into_iter().enumerate() {
        let req = RequestView {
            method: b"GET",
            host: None,
            target: b"/",
            headers,
        };
        assert_eq!(t.find(&req).is_some(), want, "source {i}");
        // IterHeaders is visited once per use: a second query sees the same fields.
        assert_eq!(t.find(&req).is_some(), want, "source {i}, again");
    }
    let req = view("GET", None, "/", &[("a", " x "), ("A", "y")]);
    assert_eq!(req.header("a"), Some(&b"x"[..]));
    assert_eq!(req.header("b"), None);
}

// ---------------------------------------------------------------------------------
// Combinations and order.
// ---------------------------------------------------------------------------------

#[test]
fn every_condition_must_hold() {
    let spec = RouteSpec {
        host: Some(s("api.example.com")),
        path: Some(PathMatch::Prefix(s("/upload/"))),
        method: Some(s("POST")),
        header: pair("x-canary", "1"),
        cookie: pair("tier", "beta"),
        action: ActionSpec::proxy(3),
    };
    let good: &Pairs<'_> = &[("x-canary", "1"), ("cookie", "tier=beta")];
    let no_header: &Pairs<'_> = &[("cookie", "tier=beta")];
    let no_cookie: &Pairs<'_> = &[("x-canary", "1")];
    let rows: &[(&str, &str, &str, &Pairs<'_>, bool)] = &[
        ("POST", "api.example.com", "/upload/1", good, true),
        ("GET", "api.example.com", "/upload/1", good, false),
        ("POST", "web.example.com", "/upload/1", good, false),
        ("POST", "api.example.com", "/download/1", good, false),
        ("POST", "api.example.com", "/upload/1", no_header, false),
        ("POST", "api.example.com", "/upload/1", no_cookie, false),
        ("POST", "api.example.com", "/upload/1", &[], false),
    ];
    for &(method, host, target, headers, want) in rows {
        let req = view(method, Some(host), target, headers);
        assert_eq!(
            one_hits(&spec, &req),
            want,
            "{method} {host} {target} {headers:?}"
        );
    }
}

/// The routes of the documented example config, in order.
fn example_routes() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            host: Some(s("api.example.com")),
            path: Some(PathMatch::Prefix(s("/v1/"))),
            ..catch_all(0)
        },
        RouteSpec {
            path: Some(PathMatch::Exact(s("/healthz"))),
            ..RouteSpec::new(ActionSpec::respond(200, "ok\n"))
        },
        RouteSpec {
            header: pair("x-canary", "1"),
            ..catch_all(1)
        },
        RouteSpec {
            cookie: pair("tier", "beta"),
            ..catch_all(1)
        },
        RouteSpec {
            method: Some(s("POST")),
            path: Some(PathMatch::Regex(s("^/upload/[0-9]+$"))),
            ..catch_all(0)
        },
        RouteSpec {
            path: Some(PathMatch::Prefix(s("/"))),
            action: ActionSpec::Proxy {
                pool: 2,
                set_request_headers: vec![(s("x-env"), s("prod"))],
                remove_request_headers: vec![],
                set_response_headers: vec![],
                remove_response_headers: vec![s("server")],
                client_subject_header: None,
            },
            ..catch_all(2)
        },
    ]
}

#[test]
fn first_match_wins_in_the_example_config() {
    let t = table(&example_routes());
    assert_eq!(t.len(), 6);
    /// Method, Host, target, fields, expected route.
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a Pairs<'a>,
        Option<usize>,
    );
    let rows: &[Row<'_>] = &[
        ("GET", Some("api.example.com"), "/v1/users", &[], Some(0)),
        // Route 0 also wants the host; /healthz on the API host is not under /v1/.
        ("GET", Some("api.example.com"), "/healthz", &[], Some(1)),
        (
            "GET",
            Some("api.example.com:443"),
            "/v1/x",
            &[("x-canary", "1")],
            Some(0),
        ),
        ("GET", Some("www.example.com"), "/v1/users", &[], Some(5)),
        ("GET", None, "/healthz?full", &[], Some(1)),
        ("GET", None, "/healthz", &[("x-canary", "1")], Some(1)),
        (
            "GET",
            None,
            "/x",
            &[("x-canary", "1"), ("cookie", "tier=beta")],
            Some(2),
        ),
        ("GET", None, "/x", &[("cookie", "tier=beta")], Some(3)),
        ("POST", None, "/upload/7", &[], Some(4)),
        ("PUT", None, "/upload/7", &[], Some(5)),
        (
            "POST",
            None,
            "/upload/7",
            &[("cookie", "tier=beta")],
            Some(3),
        ),
        ("GET", None, "/", &[], Some(5)),
        // Only the catch-all's `/` prefix stands between these and a 404.
        ("OPTIONS", None, "*", &[], None),
        ("GET", None, "x", &[], None),
    ];
    for &(method, host, target, headers, want) in rows {
        let req = view(method, host, target, headers);
        assert_eq!(t.find(&req), want, "{req:?} {headers:?}");
        assert_eq!(t.lookup(&req).map(|(i, _)| i), want);
    }
}

#[test]
fn no_match_and_catch_all() {
    let specific = RouteSpec {
        host: Some(s("a.example")),
        ..catch_all(0)
    };
    let req = view("GET", Some("b.example"), "/", &[]);
    assert_eq!(table(std::slice::from_ref(&specific)).find(&req), None);
    assert_eq!(table(&[]).find(&req), None);
    assert!(table(&[]).is_empty());
    // A route with no condition matches everything, including a request with nothing.
    let t = table(&[specific, catch_all(7)]);
    assert_eq!(t.find(&req), Some(1));
    assert_eq!(t.find(&view("X", None, "", &[])), Some(1));
    assert!(matches!(t.action(1), Action::Proxy { pool: 7, .. }));
    // Two catch-alls: the first wins.
    assert_eq!(table(&[catch_all(1), catch_all(2)]).find(&req), Some(0));
}

// ---------------------------------------------------------------------------------
// Actions.
// ---------------------------------------------------------------------------------

#[test]
fn actions_are_normalized() {
    let t = table(&example_routes());
    match t.action(5) {
        Action::Proxy {
            pool,
            request,
            response,
            client_subject: None,
        } => {
            assert_eq!(*pool, 2);
            assert_eq!(&*request.set, &[("x-env".into(), "prod".into())]);
            assert!(request.remove.is_empty());
            assert!(request.drops(b"X-Env"), "a set replaces the received field");
            assert!(!request.drops(b"x-envy"));
            assert!(response.set.is_empty());
            assert_eq!(&*response.remove, &["server".into()]);
            assert!(response.drops(b"Server"));
            assert!(!response.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(t.action(0), Action::Proxy { request, response, .. }
        if request.is_empty() && response.is_empty())
    );
    assert_eq!(
        t.action(1),
        &Action::Respond {
            status: 200,
            body: "ok\n".into(),
            content_type: DEFAULT_CONTENT_TYPE.into(),
        }
    );

    let spec = RouteSpec::new(ActionSpec::Proxy {
        pool: 0,
        set_request_headers: vec![(s("X-Forwarded-Env"), s("a b"))],
        remove_request_headers: vec![s("X-Debug"), s("x-debug")],
        set_response_headers: vec![],
        remove_response_headers: vec![],
        client_subject_header: None,
    });
    match table(&[spec]).action(0) {
        Action::Proxy { request, .. } => {
            assert_eq!(&*request.set, &[("x-forwarded-env".into(), "a b".into())]);
            assert_eq!(
                &*request.remove,
                &["x-debug".into()],
                "lower-cased, deduplicated"
            );
        }
        other => panic!("{other:?}"),
    }
    let spec = RouteSpec::new(ActionSpec::Respond {
        status: 503,
        body: s("{}"),
        content_type: Some(s("application/json")),
    });
    assert!(matches!(table(&[spec]).action(0),
        Action::Respond { status: 503, content_type, .. } if &**content_type == "application/json"));
}

// ---------------------------------------------------------------------------------
// Build errors.
// ---------------------------------------------------------------------------------

/// One bad field per row: the single error's field and a piece of its message.
#[test]
fn build_error_rows() {
    let proxy_edits = |set_req: &[(&str, &str)], rm_req: &[&str], rm_resp: &[&str]| {
        RouteSpec::new(ActionSpec::Proxy {
            pool: 0,
            set_request_headers: set_req.iter().map(|(n, v)| (s(n), s(v))).collect(),
            remove_request_headers: rm_req.iter().map(|n| s(n)).collect(),
            set_response_headers: vec![],
            remove_response_headers: rm_resp.iter().map(|n| s(n)).collect(),
            client_subject_header: None,
        })
    };
    let with_host = |h: &str| RouteSpec {
        host: Some(s(h)),
        ..catch_all(0)
    };
    let with_path = |p: PathMatch| RouteSpec {
        path: Some(p),
        ..catch_all(0)
    };
    let respond = |status: u16, body: &str, ct: Option<&str>| {
        RouteSpec::new(ActionSpec::Respond {
            status,
            body: s(body),
            content_type: ct.map(s),
        })
    };
    let rows: Vec<(RouteSpec, &str, &str)> = vec![
        (with_host(""), "host", "empty"),
        (with_host("*"), "host", "leave `host` out"),
        (with_host("*.*.example.com"), "host", "has '*'"),
        (with_host("a.*.example.com"), "host", "only a leading"),
        (with_host("api.example.com:8080"), "host", "has a port"),
        (with_host("[::1]:80"), "host", "IPv6 literal"),
        (with_host("[nope]"), "host", "IPv6 literal"),
        (with_host("a..b"), "host", "empty label"),
        (with_host(".example.com"), "host", "empty label"),
        (with_host("bad host"), "host", "has ' '"),
        (with_host("bücher.example"), "host", "punycode"),
        (with_host(&"a".repeat(64)), "host", "label longer"),
        (
            with_path(PathMatch::Prefix(s("v1/"))),
            "path_prefix",
            "start with '/'",
        ),
        (
            with_path(PathMatch::Prefix(s(""))),
            "path_prefix",
            "start with '/'",
        ),
        (
            with_path(PathMatch::Prefix(s("*"))),
            "path_prefix",
            "start with '/'",
        ),
        (
            with_path(PathMatch::Exact(s("/a?b=1"))),
            "path_exact",
            "'?'",
        ),
        (with_path(PathMatch::Exact(s("/a b"))), "path_exact", "' '"),
        (
            with_path(PathMatch::Regex(s("(unclosed"))),
            "path_regex",
            "not a valid regex",
        ),
        (
            with_path(PathMatch::Regex(s("[z-a]"))),
            "path_regex",
            "not a valid regex",
        ),
        (
            RouteSpec {
                method: Some(s("post")),
                ..catch_all(0)
            },
            "method",
            "write \"POST\"",
        ),
        (
            RouteSpec {
                method: Some(s("GE T")),
                ..catch_all(0)
            },
            "method",
            "not a method token",
        ),
        (
            RouteSpec {
                method: Some(s("")),
                ..catch_all(0)
            },
            "method",
            "not a method token",
        ),
        (
            RouteSpec {
                header: pair("x canary", "1"),
                ..catch_all(0)
            },
            "header",
            "not a valid field name",
        ),
        (
            RouteSpec {
                header: pair("x-canary", "1\r\nx: y"),
                ..catch_all(0)
            },
            "header",
            "control character",
        ),
        (
            RouteSpec {
                header: pair("x-canary", " 1"),
                ..catch_all(0)
            },
            "header",
            "surrounding whitespace",
        ),
        (
            RouteSpec {
                cookie: pair("ti er", "beta"),
                ..catch_all(0)
            },
            "cookie",
            "not a valid cookie name",
        ),
        (
            RouteSpec {
                cookie: pair("tier", "be;ta"),
                ..catch_all(0)
            },
            "cookie",
            "not a cookie value",
        ),
        (
            RouteSpec {
                cookie: pair("tier", "\"beta\""),
                ..catch_all(0)
            },
            "cookie",
            "not a cookie value",
        ),
        (
            proxy_edits(&[("x-a", "1\nx-b: 2")], &[], &[]),
            "set_request_headers",
            "control",
        ),
        (
            proxy_edits(&[("x a", "1")], &[], &[]),
            "set_request_headers",
            "field name",
        ),
        (
            proxy_edits(&[("Content-Length", "5")], &[], &[]),
            "set_request_headers",
            "managed",
        ),
        (
            proxy_edits(&[("x-a", "1"), ("X-A", "2")], &[], &[]),
            "set_request_headers",
            "twice",
        ),
        (
            proxy_edits(&[], &["transfer-encoding"], &[]),
            "remove_request_headers",
            "managed",
        ),
        (
            proxy_edits(&[], &["Host"], &[]),
            "remove_request_headers",
            "required",
        ),
        (
            proxy_edits(&[], &[""], &[]),
            "remove_request_headers",
            "field name",
        ),
        (
            proxy_edits(&[("x-a", "1")], &["x-a"], &[]),
            "remove_request_headers",
            "also in",
        ),
        (
            proxy_edits(&[], &[], &["connection"]),
            "remove_response_headers",
            "managed",
        ),
        (respond(99, "", None), "status", "200..=599"),
        (respond(101, "", None), "status", "200..=599"),
        (respond(600, "", None), "status", "200..=599"),
        (respond(204, "x", None), "body", "no body"),
        (respond(304, "x", None), "body", "no body"),
        (respond(200, "", Some("")), "content_type", "empty"),
        (
            respond(200, "", Some("text/html\r\n")),
            "content_type",
            "control",
        ),
    ];
    for (spec, field, needle) in rows {
        let errors = RouteTable::build(&[catch_all(0), spec.clone()])
            .expect_err(&format!("{spec:?} accepted"));
        assert_eq!(errors.len(), 1, "{spec:?}: {errors:?}");
        let e = &errors[0];
        assert_eq!((e.route, e.field), (1, field), "{spec:?}: {e:?}");
        assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
    }
}

/// Edge cases that look odd but are valid.
#[test]
fn accepted_specs() {
    let rows: Vec<RouteSpec> = vec![
        RouteSpec {
            host: Some(s("*.com")),
            ..catch_all(0)
        },
        RouteSpec {
            host: Some(s("_srv.internal.")),
            ..catch_all(0)
        },
        RouteSpec {
            host: Some(s("2001:db8::1")),
            ..catch_all(0)
        },
        RouteSpec {
            method: Some(s("PURGE")),
            path: Some(PathMatch::Exact(s("*"))),
            ..catch_all(0)
        },
        RouteSpec {
            header: pair("x-empty", ""),
            cookie: pair("c", ""),
            ..catch_all(0)
        },
        RouteSpec::new(ActionSpec::Proxy {
            pool: 9,
            set_request_headers: vec![(s("host"), s("backend.internal"))],
            remove_request_headers: vec![s("x-debug")],
            set_response_headers: vec![(s("x-a"), s("1\t2"))],
            remove_response_headers: vec![s("x-a-b")],
            client_subject_header: None,
        }),
        RouteSpec::new(ActionSpec::respond(204, "")),
        RouteSpec::new(ActionSpec::respond(599, "é")),
    ];
    for spec in rows {
        assert!(
            RouteTable::build(std::slice::from_ref(&spec)).is_ok(),
            "{spec:?}"
        );
    }
}

#[test]
fn build_collects_every_error() {
    let specs = vec![
        catch_all(0),
        RouteSpec {
            host: Some(s("*.*.example.com")),
            path: Some(PathMatch::Regex(s("("))),
            ..catch_all(0)
        },
        RouteSpec {
            method: Some(s("get")),
            header: pair("bad name", "1"),
            ..catch_all(0)
        },
        catch_all(1),
        RouteSpec {
            cookie: pair("tier", "be ta"),
            ..RouteSpec::new(ActionSpec::respond(99, "x"))
        },
        RouteSpec::new(ActionSpec::Proxy {
            pool: 0,
            set_request_headers: vec![(s("x-a"), s("1\r\nx-b: 2")), (s("content-length"), s("5"))],
            remove_request_headers: vec![],
            set_response_headers: vec![],
            remove_response_headers: vec![s("transfer-encoding")],
            client_subject_header: None,
        }),
        RouteSpec {
            path: Some(PathMatch::Prefix(s("v1/"))),
            ..RouteSpec::new(ActionSpec::respond(204, "x"))
        },
    ];
    let errors = RouteTable::build(&specs).expect_err("bad routes accepted");
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.route, e.field)).collect();
    assert_eq!(
        got,
        [
            (1, "host"),
            (1, "path_regex"),
            (2, "method"),
            (2, "header"),
            (4, "cookie"),
            (4, "status"),
            (5, "set_request_headers"),
            (5, "set_request_headers"),
            (5, "remove_response_headers"),
            (6, "path_prefix"),
            (6, "body"),
        ],
        "{errors:#?}"
    );
    assert_eq!(
        errors[2].to_string(),
        "routes[2].method: \"get\": methods are case-sensitive; write \"GET\""
    );
}

#[test]
fn path_match_one_of() {
    let p = || Some(s("/a"));
    assert_eq!(PathMatch::one_of(None, None, None), Ok(None));
    assert_eq!(
        PathMatch::one_of(p(), None, None),
        Ok(Some(PathMatch::Prefix(s("/a"))))
    );
    assert_eq!(
        PathMatch::one_of(None, p(), None),
        Ok(Some(PathMatch::Exact(s("/a"))))
    );
    assert_eq!(
        PathMatch::one_of(None, None, p()),
        Ok(Some(PathMatch::Regex(s("/a"))))
    );
    let err = PathMatch::one_of(p(), None, p()).unwrap_err();
    assert!(err.ends_with("got path_prefix and path_regex"), "{err}");
    let err = PathMatch::one_of(p(), p(), p()).unwrap_err();
    assert!(
        err.contains("path_prefix and path_exact and path_regex"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------
// Sticky sessions.
// ---------------------------------------------------------------------------------

fn addr(a: &str) -> SocketAddr {
    a.parse().expect("socket address")
}

#[test]
fn siphash_matches_reference_vectors() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let msg: Vec<u8> = (0..64).collect();
    // From the SipHash paper (appendix A) and its reference implementation's vectors.
    assert_eq!(cookie::siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
    assert_eq!(cookie::siphash24(&key, &msg[..1]), 0x74f8_39c5_93dc_67fd);
    assert_eq!(cookie::siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
    // And against std's (deprecated, still SipHash-2-4) hasher at every length.
    #[allow(deprecated)]
    for len in 0..msg.len() {
        use std::hash::Hasher;
        let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
        let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
        let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
        h.write(&msg[..len]);
        assert_eq!(
            cookie::siphash24(&key, &msg[..len]),
            h.finish(),
            "len {len}"
        );
    }
}

#[test]
fn sticky_token_is_stable_and_opaque() {
    // Pinned: a change here would move every sticky client on upgrade.
    let pinned = sticky_token(addr("10.0.0.1:8080"));
    assert_eq!(std::str::from_utf8(&pinned), Ok("dd6c34649d430368"));
    let rows = [
        "10.0.0.1:8080",
        "10.0.0.1:8081",
        "10.0.0.2:8080",
        "[2001:db8::1]:8080",
        "[2001:db8::2]:8080",
        "[::]:0",
        "0.0.0.0:0",
    ];
    let tokens: Vec<[u8; 16]> = rows.iter().map(|a| sticky_token(addr(a))).collect();
    for (i, t) in tokens.iter().enumerate() {
        assert!(
            t.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)),
            "{rows:?}[{i}] token {t:?} is not lower-case hex"
        );
        assert_eq!(*t, sticky_token(addr(rows[i])), "same address, same token");
        for (j, u) in tokens.iter().enumerate().skip(i + 1) {
            assert_ne!(t, u, "{} and {} collide", rows[i], rows[j]);
        }
    }
    // An IPv4-mapped IPv6 backend is the same backend.
    assert_eq!(
        sticky_token(addr("[::ffff:10.0.0.1]:8080")),
        sticky_token(addr("10.0.0.1:8080"))
    );
    // The key matters, and the default is just one key.
    let a = addr("10.0.0.1:8080");
    assert_ne!(
        sticky_token_keyed(a, &[1; 16]),
        sticky_token_keyed(a, &[2; 16])
    );
    assert_ne!(sticky_token_keyed(a, &[1; 16]), sticky_token(a));
    assert_eq!(sticky_token_keyed(a, b"ringway-sticky-1"), sticky_token(a));
}

#[test]
fn sticky_cookie_round_trip() {
    let token = sticky_token(addr("192.168.1.5:80"));
    let mut out = b"set-cookie: ".to_vec();
    sticky_set_cookie("rw_srv", &token, &mut out);
    let text = String::from_utf8(out).unwrap();
    let tok = std::str::from_utf8(&token).unwrap();
    assert_eq!(
        text,
        format!("set-cookie: rw_srv={tok}; Path=/; HttpOnly; SameSite=Lax")
    );
    // What the browser sends back finds the same token.
    let cookie = format!("theme=dark; rw_srv={tok}");
    let headers = [("cookie", cookie.as_str())];
    assert_eq!(cookie_value(&headers, "rw_srv"), Some(&token[..]));
    assert!(is_valid_cookie_name("rw_srv"));
    assert!(!is_valid_cookie_name("rw srv"));
    assert!(!is_valid_cookie_name(""));
}

// ---------------------------------------------------------------------------------
// Sharing and allocation.
// ---------------------------------------------------------------------------------

#[test]
fn table_is_send_sync_and_clones_share_routes() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RouteTable>();
    let t = table(&example_routes());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let core = t.clone();
            std::thread::spawn(move || {
                let req = view("POST", None, "/upload/12", &[]);
                (
                    core.find(&req),
                    std::ptr::addr_of!(*core.action(4)) as usize,
                )
            })
        })
        .collect();
    for h in handles {
        let (found, action) = h.join().unwrap();
        assert_eq!(found, Some(4));
        assert_eq!(
            action,
            std::ptr::addr_of!(*t.action(4)) as usize,
            "action shared"
        );
    }
}

/// Counts this thread's allocations, so parallel tests don't disturb the count.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs while a thread's locals are torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; the counter is a const-initialized
// thread-local without destructor, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

// The library's unit-test binary only (the real binary installs mimalloc in main.rs).
#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn find_allocates_nothing() {
    // The counter itself works (otherwise a zero below proves nothing).
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8]))) >= 1);

    let t = table(&example_routes());
    let wildcard = table(&[
        RouteSpec {
            host: Some(s("*.example.com")),
            ..catch_all(0)
        },
        RouteSpec {
            host: Some(s("[::1]")),
            ..catch_all(0)
        },
    ]);
    let heads: [&Pairs<'_>; 3] = [
        &[],
        &[("x-canary", "2"), ("cookie", "a=1; tier=\"alpha\"")],
        &[("cookie", "a=1"), ("cookie", "tier=beta")],
    ];
    let targets = ["/v1/x?y", "/healthz", "/upload/123", "/upload/x", "/"];
    let hosts = [
        None,
        Some("api.example.com:80"),
        Some("[::1]:8080"),
        Some("A.example.com."),
    ];
    let methods = ["GET", "POST"];
    // Views are built up front: only `find` runs while counting.
    let mut reqs = Vec::new();
    for headers in heads {
        for target in targets {
            for host in hosts {
                for method in methods {
                    reqs.push(view(method, host, target, headers));
                }
            }
        }
    }
    let run = |reqs: &[RequestView<'_>]| {
        let mut found = 0usize;
        for r in reqs {
            found += t.find(r).unwrap_or(99) + wildcard.find(r).unwrap_or(99);
            found += usize::from(r.cookie("tier").is_some());
        }
        std::hint::black_box(found);
    };
    // Warm-up: the regex engine allocates its per-thread scratch space on first use.
    run(&reqs);
    assert_eq!(allocations_during(|| run(&reqs)), 0);
}
