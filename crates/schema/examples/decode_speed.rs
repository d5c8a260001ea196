//! Instruction counts of decoding one way (for callgrind): `decode_speed FILE all|base|full|ignore`.
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let mode = std::env::args().nth(2).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let fields = if mode == "base" { kaq_schema::Fields::BASE } else { kaq_schema::Fields::ALL };
    let opts = kaq_schema::DecodeOptions { keep_secrets: false, fields };
    let mut n = 0;
    for l in text.lines() {
        let ok = match mode.as_str() {
            "full" => kaq_schema::decode_full(l, &opts).is_ok(),
            "ignore" => serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok(),
            _ => kaq_schema::decode_event(l, &opts).is_ok(),
        };
        n += usize::from(ok);
    }
    println!("{n}");
}
