//! Typed readings of the values people write: durations (`500ms`, `2h`), times (absolute, partial,
//! relative to now), status-code classes (`4xx`), addresses and CIDR blocks, globs.

use std::net::IpAddr;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use kaq_schema::time::parse_rfc3339;

/// Microseconds in each duration unit, longest suffixes first.
const UNITS: &[(&str, i64)] = &[
    ("ms", 1_000),
    ("us", 1),
    ("µs", 1),
    ("ns", 0), // below resolution: only 0 is accepted exactly
    ("s", 1_000_000),
    ("m", 60_000_000),
    ("h", 3_600_000_000),
    ("d", 86_400_000_000),
    ("w", 604_800_000_000),
];

/// A duration: `500ms`, `1.5s`, `2h`, `1h30m`, `7d`, or a bare number of seconds (`0.25`).
/// Microsecond resolution.
pub fn parse_duration(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    /// Longer than this (about 31 700 years) is surely a mistake, and near i64's range.
    const MAX_SECS: f64 = 1e12;
    if let Ok(secs) = t.parse::<f64>() {
        return (secs.is_finite() && secs.abs() <= MAX_SECS).then(|| (secs * 1e6).round() as i64);
    }
    let (neg, mut rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num: f64 = rest[..end].parse().ok().filter(|n: &f64| n.is_finite() && *n <= MAX_SECS)?;
        rest = &rest[end..];
        let (unit, per) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        if *per == 0 {
            // nanoseconds: round to microseconds
            total = total.checked_add((num / 1000.0).round() as i64)?;
        } else {
            total = total.checked_add((num * *per as f64).round() as i64)?;
        }
    }
    if total.unsigned_abs() > (MAX_SECS * 1e6) as u64 {
        return None;
    }
    Some(if neg { -total } else { total })
}

/// A point or span of time: `[start, end)` in microseconds. Absolute forms with full seconds give
/// a one-microsecond span; partial forms (`2026-11-20`, `2026-11-20T05`, `2026-11-20T05:30`)
/// cover their whole day, hour or minute. `now`, `now-2h`, `-2h` and `now+10m` are relative to
/// `now_us`.
pub fn parse_time(text: &str, now_us: i64) -> Option<(i64, i64)> {
    let t = text.trim();
    if let Some(rel) = t.strip_prefix("now") {
        if rel.is_empty() {
            return Some((now_us, now_us.checked_add(1)?));
        }
        let (sign, d) = match rel.as_bytes()[0] {
            b'-' => (-1, &rel[1..]),
            b'+' => (1, &rel[1..]),
            _ => return None,
        };
        let at = now_us.checked_add(parse_duration(d)?.checked_mul(sign)?)?;
        return Some((at, at.checked_add(1)?));
    }
    if let Some(d) = t.strip_prefix('-') {
        let at = now_us.checked_sub(parse_duration(d)?)?;
        return Some((at, at.checked_add(1)?));
    }
    if let Some(p) = parse_rfc3339(t) {
        return Some((p.micros, p.micros + 1));
    }
    let body = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')).unwrap_or(t);
    if let Ok(d) = NaiveDate::parse_from_str(body, "%Y-%m-%d") {
        let start = micros(d.and_time(NaiveTime::MIN));
        return Some((start, start + 86_400_000_000));
    }
    for (fmt, span) in [
        ("%Y-%m-%dT%H:%M:%S%.f", 1),
        ("%Y-%m-%dT%H:%M", 60_000_000),
        ("%Y-%m-%d %H:%M:%S%.f", 1),
        ("%Y-%m-%d %H:%M", 60_000_000),
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(body, fmt) {
            let start = micros(dt);
            return Some((start, start + span));
        }
    }
    if let Some((date, hour)) = body.split_once('T')
        && hour.len() == 2
        && let (Ok(d), Ok(h)) = (NaiveDate::parse_from_str(date, "%Y-%m-%d"), hour.parse::<u32>())
        && let Some(time) = NaiveTime::from_hms_opt(h, 0, 0)
    {
        let start = micros(d.and_time(time));
        return Some((start, start + 3_600_000_000));
    }
    None
}

fn micros(dt: NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_micros()
}

/// `4xx` → 400..=499, `50x` → 500..=509: a status code with trailing `x`s.
pub fn parse_code_class(text: &str) -> Option<(i64, i64)> {
    let digits = text.trim_end_matches(['x', 'X']);
    let xs = text.len() - digits.len();
    if xs == 0 || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || text.len() > 6 {
        return None;
    }
    let scale = 10i64.pow(xs as u32);
    let lo = digits.parse::<i64>().ok()? * scale;
    Some((lo, lo + scale - 1))
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub net: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = text.split_once('/')?;
        let net: IpAddr = addr.parse().ok()?;
        let prefix: u8 = len.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, normalize(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as the IPv4 address they carry.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A `*`/`?` wildcard pattern matched against a whole string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    /// The text before the first wildcard, for a quick test.
    prefix: String,
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.pattern.iter().collect::<String>())
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let prefix = pattern.split(['*', '?']).next().unwrap_or("").to_string();
        Glob { pattern: pattern.chars().collect(), prefix }
    }

    /// The pattern as written (`*` any run, `?` one character).
    pub fn pattern(&self) -> String {
        self.pattern.iter().collect()
    }

    /// The literal runs between wildcards (for prefilters).
    pub fn literals(&self) -> Vec<String> {
        let s: String = self.pattern.iter().collect();
        s.split(['*', '?']).filter(|p| !p.is_empty()).map(str::to_string).collect()
    }

    pub fn matches(&self, text: &str) -> bool {
        if !text.starts_with(&self.prefix) {
            return false;
        }
        // Iterative wildcard matching with one backtrack point: linear in practice, never
        // exponential.
        let t: Vec<char> = text.chars().collect();
        let p = &self.pattern;
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
                ti += 1;
                pi += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

/// The words of a text, lowercased, split at every character that is not a letter or digit (the
/// tokenizer of free-text search; the index of issue 4 uses the same rule).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(500_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000));
        assert_eq!(parse_duration("2h"), Some(7_200_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000));
        assert_eq!(parse_duration("0.25"), Some(250_000));
        assert_eq!(parse_duration("250us"), Some(250));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn times() {
        let day = parse_time("2026-11-20", 0).unwrap();
        assert_eq!(day.1 - day.0, 86_400_000_000);
        let exact = parse_time("2026-11-20T05:00:00Z", 0).unwrap();
        assert_eq!(exact.0, day.0 + 5 * 3_600_000_000);
        assert_eq!(parse_time("2026-11-20T12:00Z", 0).unwrap().0, day.0 + 12 * 3_600_000_000);
        assert_eq!(parse_time("2026-11-20T05", 0).unwrap(), (exact.0, exact.0 + 3_600_000_000));
        assert_eq!(parse_time("now-2h", 10_000_000_000).unwrap().0, 10_000_000_000 - 7_200_000_000);
        assert_eq!(parse_time("-2h", 10_000_000_000).unwrap().0, 10_000_000_000 - 7_200_000_000);
        assert_eq!(parse_time("2026-11-20T05:00:00+01:00", 0).unwrap().0, exact.0 - 3_600_000_000);
        assert!(parse_time("yesterday", 0).is_none());
        assert!(parse_time("now--1e300", 0).is_none(), "no overflow");
        assert!(parse_time("now-1e300", 0).is_none());
        assert!(parse_time("2026-13-01", 0).is_none());
    }

    #[test]
    fn classes_cidrs_globs_words() {
        assert_eq!(parse_code_class("4xx"), Some((400, 499)));
        assert_eq!(parse_code_class("50x"), Some((500, 509)));
        assert_eq!(parse_code_class("xx"), None);
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.45".parse().unwrap()));
        assert!(c.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8::1".parse().unwrap()));
        let g = Glob::new("system:*:ci:*er");
        assert!(g.matches("system:serviceaccount:ci:deployer"));
        assert!(!g.matches("system:serviceaccount:ci:deploy"));
        assert!(Glob::new("a?c").matches("abc") && !Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*").matches(""));
        assert_eq!(words("pods \"web\" is Forbidden: x").collect::<Vec<_>>(), ["pods", "web", "is", "forbidden", "x"]);
    }
}
