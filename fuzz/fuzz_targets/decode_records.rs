//! Decoding never panics on any line, and an event that decodes prints back to JSON that
//! decodes to the same event.
#![no_main]

use kaq_schema::{DecodeOptions, decode_event, decode_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = kaq_schema::redact::redact_raw(data);
        return;
    };
    let _ = kaq_schema::redact::redact_raw(data);
    for keep_secrets in [false, true] {
        let opts = DecodeOptions::keeping_secrets(keep_secrets);
        decode_records(text, &opts, &mut |r| {
            if let Ok(ev) = r {
                let json = ev.to_json().to_string();
                let again = decode_event(&json, &opts).expect("printed event decodes");
                assert_eq!(again.to_json(), ev.to_json());
            }
        });
    }
});
