//! The query parser must never panic or hang, strict or lenient, and whatever parses must print
//! back to text that parses to the same query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(q) = kaq_syntax::parse(text) {
        let printed = q.to_string();
        if printed.len() <= kaq_syntax::MAX_QUERY_LEN {
            let again = kaq_syntax::parse(&printed).expect("printed query parses");
            assert!(q.eq_ignoring_spans(&again), "{text:?} printed as {printed:?} parses differently");
        }
    }
    let (_, diagnostics) = kaq_syntax::parse_lenient(text);
    for d in diagnostics {
        let _ = d.render(text);
    }
});
