//! SNI-based certificate selection for listeners with several certificates.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Longest possible DNS name; longer SNI values cannot match anything.
const MAX_DNS_NAME: usize = 253;

/// Picks a certificate by SNI: exact name, then single-label wildcard, then
/// the first configured certificate. Tables are built once at load time so a
/// handshake only does hash lookups and an `Arc` clone.
pub(crate) struct SniResolver {
    /// Lowercased exact names.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in config order with their (lowercased) names. When two
    /// certificates claim the same name the earlier one wins, matching the
    /// "first is default" rule. Returns None when `certs` is empty.
    pub(crate) fn new(certs: Vec<(Arc<CertifiedKey>, Vec<String>)>) -> Option<Self> {
        let default = Arc::clone(&certs.first()?.0);
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (key, names) in certs {
            for name in names {
                let table = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent.to_string()),
                    None => (&mut exact, name),
                };
                table.0.entry(table.1).or_insert_with(|| Arc::clone(&key));
            }
        }
        Some(Self {
            exact,
            wildcard,
            default,
        })
    }

    /// Lookup for an already lowercased name without trailing dot.
    fn lookup(&self, name: &str) -> &Arc<CertifiedKey> {
        if let Some(key) = self.exact.get(name) {
            return key;
        }
        // A wildcard covers exactly one extra, non-empty leftmost label.
        if let Some((label, parent)) = name.split_once('.') {
            if !label.is_empty() {
                if let Some(key) = self.wildcard.get(parent) {
                    return key;
                }
            }
        }
        &self.default
    }

    /// Lookup for a raw SNI value. rustls already lowercases SNI, but we do
    /// not rely on that; lowercasing goes through a stack buffer so the
    /// common path allocates nothing.
    fn select(&self, sni: &str) -> &Arc<CertifiedKey> {
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        if !sni.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.lookup(sni);
        }
        if sni.len() > MAX_DNS_NAME {
            return &self.default;
        }
        let mut buf = [0u8; MAX_DNS_NAME];
        let lower = &mut buf[..sni.len()];
        lower.copy_from_slice(sni.as_bytes());
        lower.make_ascii_lowercase();
        match std::str::from_utf8(lower) {
            Ok(name) => self.lookup(name),
            Err(_) => &self.default,
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = match client_hello.server_name() {
            Some(sni) => self.select(sni),
            None => &self.default,
        };
        Some(Arc::clone(key))
    }
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the keys themselves are of no use in logs.
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::sign::any_supported_type;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    fn dummy(tag: u8) -> Arc<CertifiedKey> {
        let kp = rcgen::KeyPair::generate().unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
        let signer = any_supported_type(&key).unwrap();
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            signer,
        ))
    }

    fn tag(k: &Arc<CertifiedKey>) -> u8 {
        k.cert[0].as_ref()[0]
    }

    #[test]
    fn precedence() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = SniResolver::new(vec![
            (dummy(1), names(&["a.test"])),
            (dummy(2), names(&["*.w.test", "x.w.test"])),
            (dummy(3), names(&["y.w.test", "a.test"])),
        ])
        .unwrap();
        assert_eq!(tag(r.select("a.test")), 1);
        assert_eq!(tag(r.select("A.Test.")), 1);
        assert_eq!(tag(r.select("y.w.test")), 3);
        assert_eq!(tag(r.select("Z.W.TEST")), 2);
        assert_eq!(tag(r.select("w.test")), 1);
        assert_eq!(tag(r.select(".w.test")), 1);
        assert_eq!(tag(r.select("a.b.w.test")), 1);
        assert_eq!(tag(r.select(&"X".repeat(300))), 1);
        assert!(SniResolver::new(Vec::new()).is_none());
    }
}
