//! Timestamps as microseconds since the Unix epoch, UTC.
//!
//! The API server writes `MicroTime` values as `2026-11-20T05:00:00.123456Z`. That exact shape is
//! parsed and printed by hand (it is on the hot path of every event); any other RFC 3339 form falls
//! back to chrono and is reported as non-canonical so that callers can keep the original text.

use std::cell::Cell;

use chrono::{DateTime, NaiveDate};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// A parsed timestamp, and whether printing it with [`format_micros`] gives back the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub micros: Micros,
    pub canonical: bool,
}

/// Parses an RFC 3339 timestamp. Returns `None` when the text is not a valid timestamp.
pub fn parse_rfc3339(s: &str) -> Option<Parsed> {
    if let Some(micros) = parse_canonical(s.as_bytes()) {
        return Some(Parsed { micros, canonical: true });
    }
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    let micros = dt.timestamp_micros();
    Some(Parsed { micros, canonical: format_micros(micros) == s })
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, exactly.
fn parse_canonical(b: &[u8]) -> Option<Micros> {
    if b.len() != 27
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[26] != b'Z'
    {
        return None;
    }
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let frac = digits(&b[20..26])?;
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = day_number(b[..10].try_into().expect("ten bytes"))?;
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + s * 1_000_000 + frac)
}

thread_local! {
    /// The last date read on this thread (`YYYY-MM-DD`, valid) and its day number: the events of
    /// a log come in time order, most of them on the same day as the one before.
    static LAST_DAY: Cell<([u8; 10], i64)> = const { Cell::new(([0; 10], 0)) };
}

/// The day number of a `YYYY-MM-DD` date; `None` when it is not a date.
fn day_number(date: [u8; 10]) -> Option<i64> {
    let (last, days) = LAST_DAY.get();
    if last == date {
        return Some(days);
    }
    let (y, mo, d) = (digits(&date[0..4])?, digits(&date[5..7])?, digits(&date[8..10])?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    LAST_DAY.set((date, days));
    Some(days)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of `days_from_civil`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Prints microseconds the way the API server does: `2026-11-20T05:00:00.123456Z`.
pub fn format_micros(micros: Micros) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        // Outside what four digits hold: let chrono print it (never produced by an API server).
        return DateTime::from_timestamp_micros(micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
    }
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// The calendar date and hour of a timestamp, for Hive partition names.
pub fn date_hour(micros: Micros) -> (NaiveDate, u32) {
    let secs = micros.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let date = NaiveDate::from_ymd_opt(y as i32, m, d).unwrap_or_default();
    (date, (secs.rem_euclid(86_400) / 3600) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip_matches_chrono() {
        for s in [
            "2026-11-20T05:00:00.123456Z",
            "1970-01-01T00:00:00.000000Z",
            "2000-02-29T23:59:59.999999Z",
            "1969-12-31T23:59:59.500000Z",
            "2018-10-25T13:58:49.730588Z",
        ] {
            let p = parse_rfc3339(s).unwrap();
            assert!(p.canonical, "{s}");
            let chrono = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(p.micros, chrono, "{s}");
            assert_eq!(format_micros(p.micros), s);
        }
    }

    #[test]
    fn other_forms_parse_but_are_not_canonical() {
        let p = parse_rfc3339("2020-05-05T16:16:37Z").unwrap();
        assert!(!p.canonical);
        assert_eq!(format_micros(p.micros), "2020-05-05T16:16:37.000000Z");
        let p = parse_rfc3339("2020-05-05T18:16:37.5+02:00").unwrap();
        assert_eq!(format_micros(p.micros), "2020-05-05T16:16:37.500000Z");
        assert!(parse_rfc3339("2020-02-30T00:00:00.000000Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("").is_none());
    }

    /// Days read one after another (the last one's number is kept): each timestamp gives what
    /// chrono gives, and a bad date after a good one is still refused.
    #[test]
    fn dates_in_a_row_match_chrono() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut micros = 1_700_000_000_000_000i64;
        for i in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small steps (the same day), now and then a jump of days, back or forth.
            micros += match x % 10 {
                0 => (x % 9_000_000_000_000) as i64 - 4_000_000_000_000,
                _ => (x % 60_000_000) as i64,
            };
            let text = format_micros(micros);
            let p = parse_rfc3339(&text).unwrap();
            assert!(p.canonical, "{text}");
            assert_eq!(p.micros, DateTime::parse_from_rfc3339(&text).unwrap().timestamp_micros(), "{text}");
            if i % 7 == 0 {
                let bad = format!("{}-13{}", &text[..4], &text[7..]);
                assert!(parse_rfc3339(&bad).is_none(), "{bad}");
                let bad = format!("{}x{}", &text[..9], &text[10..]);
                assert!(parse_rfc3339(&bad).is_none(), "{bad}");
            }
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00.000000Z").is_some());
        assert!(parse_rfc3339("2023-02-29T00:00:00.000000Z").is_none());
    }

    #[test]
    fn date_hour_of_a_timestamp() {
        let p = parse_rfc3339("2026-11-20T05:59:59.999999Z").unwrap();
        let (d, h) = date_hour(p.micros);
        assert_eq!(d.to_string(), "2026-11-20");
        assert_eq!(h, 5);
    }
}
