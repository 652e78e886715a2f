//! Where the matcher reads a request's header fields from, without copying them.

use std::ops::ControlFlow;

/// A request's header fields as the matcher sees them: borrowed from the request
/// buffer, in received order, a repeated name once per field line.
///
/// The trait is object-safe so [`RequestView`](super::RequestView) can hold a
/// `&dyn HeaderSource` and [`RouteTable::find`](super::RouteTable::find) is compiled
/// once rather than once per header container. The lifetime `'a` is the buffer's: the
/// slices handed to the visitor outlive the call, which is what lets
/// [`cookie_value`](super::cookie_value) return a slice of the request.
///
/// Ready-made sources, none of which copies or allocates:
/// - a slice, array or `Vec` of `(&[u8], &[u8])` or `(&str, &str)` pairs (a caller
///   can fill a stack array of pairs; tests write `[("cookie", "a=1")]`);
/// - [`IterHeaders`] around any cloneable iterator of byte-slice pairs, e.g. the HTTP/1
///   parser's field iterator: `IterHeaders(head.headers(buf).map(|f| (f.name, f.value)))`
///   (a closure that captures nothing is `Copy`, so the whole adapter is);
/// - [`NoHeaders`].
pub trait HeaderSource<'a> {
    /// Calls `f` with each field's name and value, in order, until `f` returns
    /// `Break`; returns `Break` exactly when `f` did.
    ///
    /// Names are passed as received (the matcher compares them case-insensitively);
    /// values may still carry surrounding whitespace (the matcher trims it).
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()>;
}

/// No header fields at all: `headers: &NoHeaders`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoHeaders;

impl<'a> HeaderSource<'a> for NoHeaders {
    fn for_each_header(
        &self,
        _: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// Adapts a cloneable iterator of `(name, value)` pairs; each visit walks a fresh
/// clone, so the source can be visited once per route condition.
#[derive(Clone, Copy, Debug)]
pub struct IterHeaders<I>(pub I);

impl<'a, I> HeaderSource<'a> for IterHeaders<I>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        for (name, value) in self.0.clone() {
            f(name, value)?;
        }
        ControlFlow::Continue(())
    }
}

// `'b: 'a` rather than one lifetime: a buffer of `'static` literals (or of a longer
// borrow) is then a source for any shorter request lifetime without a cast.
impl<'a, 'b: 'a> HeaderSource<'a> for [(&'b [u8], &'b [u8])] {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        for &(name, value) in self {
            f(name, value)?;
        }
        ControlFlow::Continue(())
    }
}

impl<'a, 'b: 'a> HeaderSource<'a> for [(&'b str, &'b str)] {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        for &(name, value) in self {
            f(name.as_bytes(), value.as_bytes())?;
        }
        ControlFlow::Continue(())
    }
}

// Arrays and vectors delegate to the slice impls: `dyn` coercion needs a sized type,
// so `headers: &[("a", "b")]` and `headers: &vec` work directly.
impl<'a, 'b: 'a, const N: usize> HeaderSource<'a> for [(&'b [u8], &'b [u8]); N] {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.as_slice().for_each_header(f)
    }
}

impl<'a, 'b: 'a, const N: usize> HeaderSource<'a> for [(&'b str, &'b str); N] {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.as_slice().for_each_header(f)
    }
}

impl<'a, 'b: 'a> HeaderSource<'a> for Vec<(&'b [u8], &'b [u8])> {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.as_slice().for_each_header(f)
    }
}

impl<'a, 'b: 'a> HeaderSource<'a> for Vec<(&'b str, &'b str)> {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.as_slice().for_each_header(f)
    }
}

/// A reference to a source is a source: `headers: &slice` for a `slice: &[(..)]`.
impl<'a, T: HeaderSource<'a> + ?Sized> HeaderSource<'a> for &T {
    fn for_each_header(
        &self,
        f: &mut dyn FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        (**self).for_each_header(f)
    }
}

/// Surrounding optional whitespace (SP / HTAB, RFC 9110 §5.6.3) removed.
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Whether some field named `name` (lower-case; compared case-insensitively) has
/// exactly `value` once its surrounding whitespace is trimmed. List values are not
/// split: `x-canary: 1, 2` does not hold `1`.
pub(super) fn has_header(headers: &dyn HeaderSource<'_>, name: &[u8], value: &[u8]) -> bool {
    headers
        .for_each_header(&mut |n, v| {
            if n.eq_ignore_ascii_case(name) && trim_ows(v) == value {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .is_break()
}

/// The trimmed value of the first field named `name` (case-insensitive).
pub(super) fn first_header<'a>(headers: &dyn HeaderSource<'a>, name: &[u8]) -> Option<&'a [u8]> {
    let mut found = None;
    let _ = headers.for_each_header(&mut |n, v| {
        if n.eq_ignore_ascii_case(name) {
            found = Some(trim_ows(v));
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}
