//! PROXY protocol parsing on arbitrary bytes, in every accept mode: never panics, consumes
//! no more than it was given, bytes after the header do not change the result, every
//! proper prefix of an accepted header still needs more bytes (so it can never yield a
//! different complete result, nor a rejection), and accepted addresses survive
//! re-encoding with the detected version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringway::proxy_protocol::{encode, parse, Accept, Addresses, Version, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    for accept in [Accept::V1, Accept::V2, Accept::Any] {
        let Ok(Some((addresses, consumed))) = parse(data, accept) else {
            continue;
        };
        assert!(
            consumed > 0 && consumed <= data.len(),
            "consumed {consumed} of {}",
            data.len()
        );
        assert!(consumed <= MAX_HEADER_LEN);
        let header = &data[..consumed];
        assert_eq!(parse(header, accept), Ok(Some((addresses, consumed))));
        for k in 0..consumed {
            assert_eq!(parse(&header[..k], accept), Ok(None), "prefix of {k} bytes");
        }

        let version = if data[0] == b'P' {
            Version::V1
        } else {
            Version::V2
        };
        if let Addresses::Tcp {
            source,
            destination,
        } = addresses
        {
            let mut out = Vec::new();
            encode(version, source, destination, &mut out);
            assert_eq!(parse(&out, accept), Ok(Some((addresses, out.len()))));
            assert_eq!(parse(&out, Accept::Any), Ok(Some((addresses, out.len()))));
        }
    }
});
