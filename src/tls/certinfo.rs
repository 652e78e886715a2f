//! Reading the few X.509 fields rustls does not expose: validity dates, the
//! names a server certificate covers, and the subject DN of a client
//! certificate.

use std::fmt::Write as _;

use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("invalid certificate: {e}"))
}

/// Checks that every certificate in the chain is currently valid and returns
/// the DNS names the leaf serves: its SAN DNS names, or its CN when it has
/// none (what browsers no longer accept, but our own SNI matching may).
/// Names are lowercased and stripped of a trailing dot.
pub(crate) fn check_chain(chain: &[CertificateDer<'_>]) -> Result<Vec<String>, String> {
    let now = ASN1Time::now();
    let mut names = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let cert = parse(der)?;
        let which = if i == 0 {
            "certificate".to_string()
        } else {
            format!("chain certificate #{i}")
        };
        let validity = cert.validity();
        if now < validity.not_before {
            return Err(format!(
                "{which} is not valid before {}",
                validity.not_before
            ));
        }
        if now > validity.not_after {
            return Err(format!("{which} expired on {}", validity.not_after));
        }
        if i == 0 {
            names = leaf_names(&cert);
        }
    }
    Ok(names)
}

fn leaf_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(n) => Some(normalize(n)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(normalize),
        );
    }
    names.retain(|n| !n.is_empty());
    names
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// RFC 4514 string of the certificate's subject, most specific RDN first.
pub(crate) fn subject_dn(der: &CertificateDer<'_>) -> Option<String> {
    let cert = parse(der).ok()?;
    Some(format_dn(cert.subject()))
}

fn format_dn(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    // RFC 4514 lists RDNs in reverse order of the ASN.1 sequence.
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attr(&mut out, attr);
        }
    }
    out
}

fn push_attr(out: &mut String, attr: &AttributeTypeAndValue<'_>) {
    let oid = attr.attr_type();
    match oid2abbrev(oid, oid_registry()) {
        Ok(abbrev)
            if abbrev
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            out.push_str(abbrev)
        }
        _ => out.push_str(&oid.to_id_string()),
    }
    out.push('=');
    match attr.as_str() {
        Ok(s) => escape_value(out, s),
        // Other string types (BMPString, T61String...) are rare in client
        // certificates; RFC 4514's "#hex" form keeps them lossless (we hex
        // the value bytes rather than the full BER, which is close enough).
        Err(_) => {
            out.push('#');
            for b in attr.attr_value().data {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// RFC 4514 escaping, plus `\XX` for every byte outside printable ASCII: the
/// result goes into an HTTP header, where control bytes would allow header
/// injection and non-ASCII bytes are not reliably handled downstream.
fn escape_value(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (i, ch) in value.char_indices() {
        let special = matches!(ch, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(ch, '#' | ' '))
            || (i == last && ch == ' ');
        if special {
            out.push('\\');
            out.push(ch);
        } else if ch.is_ascii_graphic() || ch == ' ' {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape_value;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        escape_value(&mut out, s);
        out
    }

    #[test]
    fn escapes_specials_and_controls() {
        assert_eq!(esc("a,b+c"), "a\\,b\\+c");
        assert_eq!(esc(" #x "), "\\ #x\\ ");
        assert_eq!(esc("#x"), "\\#x");
        assert_eq!(esc("evil\r\nX: y\0"), "evil\\0D\\0AX: y\\00");
        assert_eq!(esc("\u{7f}é"), "\\7F\\C3\\A9");
    }
}
