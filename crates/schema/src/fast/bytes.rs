//! The common case read byte by byte: the same events the serde-driven common-case decoder
//! ([`super::decode_serde`]) reads, the same way, without serde's per-token bookkeeping.
//!
//! It takes only what it can read without doubt and gives up (false) on anything else, and the
//! next decoder tries: a control character anywhere in the line (JSON allows them only as
//! whitespace between tokens, which the API server does not write), a key written with an escape,
//! a `\u` escape of a UTF-16 surrogate, a number that is not a plain `i32` where one is read,
//! nesting deeper than [`MAX_DEPTH`], and everything the serde-driven decoder gives up on (an
//! unknown key, a duplicate, a `null`, an empty nested object, a timestamp not in the canonical
//! form). The end of each run of plain string bytes is found eight bytes at a time
//! ([`special`], in a machine word), which also finds the control characters. Every value it skips
//! is still checked to be JSON, so that a line it accepts is one the full decoder accepts (the
//! `fast_equals_full` tests in `tests/fast.rs` compare the two on hostile lines).

use std::borrow::Cow;

use super::keys::{self, EventKey, Known, ObjectRefKey, StatusKey, UserKey};
use crate::decode::Fields;
use crate::event::{Event, ObjectRef, Status, UserInfo};
use crate::time::parse_rfc3339;

/// Nesting this deep (in a value kept as text) is left to serde, which knows its own limit.
const MAX_DEPTH: u32 = 100;

/// Decodes `text` into `ev` (empty) when it is a common-case event written plainly (module
/// docs). False: it is not, and `ev` holds what was read before this reader gave up.
pub(super) fn decode<'a>(text: &'a str, fields: Fields, ev: &mut Event<'a>) -> bool {
    let text = trim_json_ws(text);
    // No pass for control characters: inside strings [`special`] finds them, and anywhere else
    // no rule of this reader takes one (only a space is skipped between tokens).
    let mut p = P { s: text, i: 0 };
    p.event(fields, ev).is_some() && p.i == text.len()
}

/// `text` without the whitespace JSON allows around a value (not `trim`: form feeds and other
/// Unicode spaces are not JSON whitespace).
fn trim_json_ws(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

/// Where the string whose first escape is at `at` (a backslash) ends: its closing quote. `None`
/// when it does not end before a control character or the end of the input.
fn written_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        // At a backslash: the byte after it is escaped (a `u`'s four hex digits are not special).
        i = special(b, i + 2)?;
        if b[i] == b'"' {
            return Some(i);
        }
    }
}

/// Where the first `"`, `\` or control character (below 0x20) at or after `from` is: what ends a
/// run of plain string bytes. `None` when there is none, or when the first is a control
/// character (JSON does not allow one unescaped in a string, and this reader leaves the line).
#[inline(always)]
fn special(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    // Sixteen bytes at a time in a vector register (SSE2 on x86-64, NEON on aarch64; plain
    // code elsewhere): a byte is special when it equals `"` or `\`, or when it is its own
    // minimum with 0x1f (unsigned: below 0x20).
    {
        use wide::u8x16;
        let (quote, backslash, control) = (u8x16::splat(b'"'), u8x16::splat(b'\\'), u8x16::splat(0x1f));
        while let Some(chunk) = b.get(i..i + 16) {
            let v = u8x16::new(chunk.try_into().expect("sixteen bytes"));
            let hits = v.simd_eq(quote) | v.simd_eq(backslash) | v.min(control).simd_eq(v);
            let mask = hits.to_bitmask();
            if mask != 0 {
                i += mask.trailing_zeros() as usize;
                return (b[i] >= 0x20).then_some(i);
            }
            i += 16;
        }
    }
    // Eight bytes at a time in a word: a byte's high bit is set in `(w - n) & !w` when the byte
    // is below `n`, and in no lower byte unless that one is too, so the lowest bit set is exact.
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let (q, s) = (w ^ (ONES * b'"' as u64), w ^ (ONES * b'\\' as u64));
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
        let mask = (below(q, 1) | below(s, 1) | below(w, 0x20)) & HIGH;
        if mask != 0 {
            i += mask.trailing_zeros() as usize / 8;
            return (b[i] >= 0x20).then_some(i);
        }
        i += 8;
    }
    while let Some(&x) = b.get(i) {
        if x == b'"' || x == b'\\' || x < 0x20 {
            return (x >= 0x20).then_some(i);
        }
        i += 1;
    }
    None
}

/// Whether `a` and `b` (of one length: a key and a known name) are equal, eight bytes at a time
/// (not a call to `memcmp` for a dozen bytes).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let word = |x: &[u8], i: usize| u64::from_le_bytes(x[i..i + 8].try_into().expect("eight bytes"));
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes, overlapping the word before when the length is not a multiple of 8.
    word(a, n - 8) == word(b, n - 8)
}

/// Marks key `bit` seen; a key seen twice leaves this decoder.
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    keys::first(seen, bit).then_some(())
}

/// A position in one line's text.
struct P<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> P<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// The next byte after spaces (the only whitespace left once control characters are out).
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        match self.bytes().get(self.i) {
            Some(b' ') => self.after_spaces(),
            c => c.copied(),
        }
    }

    /// [`P::peek`] past spaces (which the API server does not write).
    #[cold]
    fn after_spaces(&mut self) -> Option<u8> {
        let b = self.bytes();
        while b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
        b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Whether the next byte is `c` (then taken).
    fn take(&mut self, c: u8) -> bool {
        self.peek() == Some(c) && {
            self.i += 1;
            true
        }
    }

    /// A string, borrowed from the text unless it holds escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let (s, b) = (self.s, self.bytes());
        let start = self.i;
        let at = special(b, start)?;
        if b[at] == b'"' {
            self.i = at + 1;
            return Some(Cow::Borrowed(&s[start..at]));
        }
        // Room for the whole string as written (its unescaped form is no longer): grown a piece
        // at a time, a string with escapes all along (Go writes `&`, `<` and `>` as `\u0026`…;
        // quotes in an authorization reason) was reallocated about once an event.
        let mut out = String::with_capacity(written_end(b, at).map_or(at - start + 16, |end| end - start));
        out.push_str(&s[start..at]);
        self.i = at;
        loop {
            // At a backslash.
            self.i += 1;
            out.push(self.escape()?);
            let from = self.i;
            let at = special(b, from)?;
            out.push_str(&s[from..at]);
            self.i = at;
            if b[at] == b'"' {
                self.i = at + 1;
                return Some(Cow::Owned(out));
            }
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Option<char> {
        let b = self.bytes();
        let c = *b.get(self.i)?;
        self.i += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = b.get(self.i..self.i + 4)?;
                let mut v = 0u32;
                for &h in hex {
                    v = v << 4 | (h as char).to_digit(16)?;
                }
                self.i += 4;
                // Surrogates (pairs, or lone ones that serde rejects) are left to serde.
                char::from_u32(v)?
            }
            _ => return None,
        })
    }

    /// Skips a string, checking its escapes.
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let b = self.bytes();
        loop {
            let at = special(b, self.i)?;
            self.i = at + 1;
            if b[at] == b'"' {
                return Some(());
            }
            self.escape()?;
        }
    }

    /// A key of level `K`, its bit, and the colon after it. The keys are tried from `*next` on,
    /// the one after the key read last (the API server writes them in the table's order), each
    /// by comparing its bytes and the closing quote: a key written with an escape, or not in the
    /// table, matches none and leaves this reader.
    fn key<K: Known>(&mut self, next: &mut usize) -> Option<(K, u32)> {
        self.eat(b'"')?;
        let (table, rest) = (K::TABLE, &self.bytes()[self.i..]);
        let mut at = *next;
        for _ in 0..table.len() {
            if at >= table.len() {
                at = 0;
            }
            let (name, k) = table[at];
            let name = name.as_bytes();
            if rest.get(name.len()) == Some(&b'"') && same(&rest[..name.len()], name) {
                self.i += name.len() + 1;
                *next = at + 1;
                self.eat(b':')?;
                return Some((k, 1 << at));
            }
            at += 1;
        }
        None
    }

    /// The entries of an object whose keys are of level `K`, each given once: `entry` reads each
    /// value after its key. Returns how many.
    fn object<K: Known>(&mut self, mut entry: impl FnMut(&mut Self, K) -> Option<()>) -> Option<u32> {
        self.eat(b'{')?;
        if self.take(b'}') {
            return Some(0);
        }
        let (mut n, mut next, mut seen) = (0, 0, 0);
        loop {
            let (k, bit) = self.key::<K>(&mut next)?;
            once(&mut seen, bit)?;
            entry(self, k)?;
            n += 1;
            if !self.take(b',') {
                self.eat(b'}')?;
                return Some(n);
            }
        }
    }

    /// A list of strings, kept or only checked.
    fn strings(&mut self, keep: bool) -> Option<Option<Vec<Cow<'a, str>>>> {
        self.eat(b'[')?;
        let mut out = keep.then(Vec::new);
        if self.take(b']') {
            return Some(out);
        }
        loop {
            match &mut out {
                Some(v) => v.push(self.string()?),
                None => self.skip_string()?,
            }
            if !self.take(b',') {
                self.eat(b']')?;
                return Some(out);
            }
        }
    }

    /// Any JSON value, checked and skipped.
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                self.i += 1;
                if self.take(b'}') {
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip_value(depth + 1)?;
                    if !self.take(b',') {
                        return self.eat(b'}');
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.take(b']') {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.take(b',') {
                        return self.eat(b']');
                    }
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.bytes()[self.i..].starts_with(word.as_bytes()).then(|| self.i += word.len())
    }

    /// A JSON number; whether it is an integer (no fraction, no exponent).
    fn number(&mut self) -> Option<bool> {
        let b = self.bytes();
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.i = i;
        Some(integer)
    }

    /// An `i32` written as a plain integer.
    fn int(&mut self) -> Option<i32> {
        self.peek()?;
        let from = self.i;
        if !self.number()? {
            return None;
        }
        self.s[from..self.i].parse().ok()
    }

    /// A value kept as its JSON text (not `null`).
    fn raw(&mut self) -> Option<Cow<'a, str>> {
        self.peek()?;
        let from = self.i;
        self.skip_value(2)?;
        let text = &self.s[from..self.i];
        (text != "null").then_some(Cow::Borrowed(text))
    }

    /// A timestamp in the canonical form.
    fn timestamp(&mut self) -> Option<i64> {
        let text = self.string()?;
        parse_rfc3339(&text).filter(|p| p.canonical).map(|p| p.micros)
    }

    /// `user` or `impersonatedUser`; `groups` kept or only checked.
    fn user(&mut self, keep_groups: bool) -> Option<UserInfo<'a>> {
        let mut u = UserInfo::default();
        let n = self.object(|p, k: UserKey| {
            match k {
                UserKey::Username => u.username = Some(p.string()?),
                UserKey::Uid => u.uid = Some(p.string()?),
                UserKey::Groups => u.groups = p.strings(keep_groups)?,
                UserKey::Extra => u.extra = Some(p.raw()?),
            }
            Some(())
        })?;
        (n > 0).then_some(u)
    }

    /// A string kept, or only checked (the same checks: an event the query does not need a part of
    /// is accepted or left exactly as when it does).
    fn string_or_skip(&mut self, keep: bool) -> Option<Option<Cow<'a, str>>> {
        if keep { self.string().map(Some) } else { self.skip_string().map(|()| None) }
    }

    /// `objectRef`, its strings kept or only checked (empty when not kept).
    fn object_ref(&mut self, keep: bool) -> Option<ObjectRef<'a>> {
        let mut o = ObjectRef::default();
        let n = self.object(|p, k: ObjectRefKey| {
            *k.slot(&mut o) = p.string_or_skip(keep)?;
            Some(())
        })?;
        (n > 0).then_some(o)
    }

    /// `responseStatus`, its strings kept or only checked.
    fn status(&mut self, keep: bool) -> Option<Status<'a>> {
        let mut s = Status::default();
        let n = self.object(|p, k: StatusKey| {
            match k {
                StatusKey::Metadata => s.metadata = Some(p.raw()?),
                StatusKey::Status => s.status = p.string_or_skip(keep)?,
                StatusKey::Message => s.message = p.string_or_skip(keep)?,
                StatusKey::Reason => s.reason = p.string_or_skip(keep)?,
                StatusKey::Details => s.details = Some(p.raw()?),
                StatusKey::Code => s.code = Some(p.int()?),
            }
            Some(())
        })?;
        (n > 0).then_some(s)
    }

    /// `annotations`, kept or only checked.
    fn annotations(&mut self, keep: bool) -> Option<super::Pairs<'a>> {
        let mut out = keep.then(Vec::new);
        self.eat(b'{')?;
        if self.take(b'}') {
            return Some(out);
        }
        loop {
            match &mut out {
                Some(v) => {
                    let k = self.string()?;
                    self.eat(b':')?;
                    v.push((k, self.string()?));
                }
                None => {
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip_string()?;
                }
            }
            if !self.take(b',') {
                self.eat(b'}')?;
                return Some(out);
            }
        }
    }

    fn event(&mut self, fields: Fields, e: &mut Event<'a>) -> Option<()> {
        let want = |f: Fields| fields.has(f);
        self.object(|p, k: EventKey| {
            match k {
                EventKey::Text(t) => *t.slot(e) = Some(p.string()?),
                EventKey::User => e.user = Some(p.user(want(Fields::USER_GROUPS))?),
                EventKey::ImpersonatedUser => {
                    let u = p.user(want(Fields::IMPERSONATED_USER))?;
                    e.impersonated_user = want(Fields::IMPERSONATED_USER).then_some(u);
                }
                EventKey::SourceIps => e.source_ips = p.strings(want(Fields::SOURCE_IPS))?,
                EventKey::ObjectRef => {
                    let o = p.object_ref(want(Fields::OBJECT_REF))?;
                    e.object_ref = want(Fields::OBJECT_REF).then_some(o);
                }
                EventKey::ResponseStatus => {
                    let st = p.status(want(Fields::RESPONSE_STATUS))?;
                    e.response_status = want(Fields::RESPONSE_STATUS).then_some(st);
                }
                EventKey::RequestObject => {
                    let r = p.raw()?;
                    e.request_object = want(Fields::REQUEST_OBJECT).then_some(r);
                }
                EventKey::ResponseObject => {
                    let r = p.raw()?;
                    e.response_object = want(Fields::RESPONSE_OBJECT).then_some(r);
                }
                EventKey::RequestReceivedTimestamp => e.request_received = Some(p.timestamp()?),
                EventKey::StageTimestamp => e.stage_timestamp = Some(p.timestamp()?),
                EventKey::Annotations => e.annotations = p.annotations(want(Fields::ANNOTATIONS))?,
            }
            Some(())
        })
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`decode`] into a new event.
    fn read(text: &str, f: Fields) -> Option<Event<'_>> {
        let mut ev = Event::default();
        decode(text, f, &mut ev).then_some(ev)
    }

    /// What the API server writes, with the escapes its messages carry.
    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"33a88638-6b9d-429e-a05a-f9ee72ad43bb","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ci/pods?limit=500","verb":"create","user":{"username":"system:serviceaccount:ci:deployer","uid":"b3","groups":["system:serviceaccounts","system:authenticated"],"extra":{"k":["v"]}},"impersonatedUser":{"username":"bob"},"sourceIPs":["10.1.38.40","::1"],"userAgent":"argocd/v2.12.3 (linux/amd64)","objectRef":{"resource":"pods","namespace":"ci","name":"web-0","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"status":"Failure","message":"pods \"web-0\" is forbidden","reason":"Forbidden","details":{"name":"web-0","kind":"pods","causes":[{"n":-1.5e-3},true,false,null]},"code":403},"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"c","args":["a\\b","\u00e9\/"]}]}},"responseObject":{"kind":"Status","code":0},"requestReceivedTimestamp":"2026-11-20T00:00:00.031230Z","stageTimestamp":"2026-11-20T00:00:00.032687Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"deployer\" of ClusterRole \"deployer\"\n"}}"#;

    const PROJECTIONS: [Fields; 4] = [Fields::BASE, Fields::OBJECT_REF, Fields::ANNOTATIONS, Fields::ALL];

    #[test]
    fn reads_what_the_api_server_writes_as_serde_does() {
        for f in PROJECTIONS {
            let ev = read(LINE, f).expect("a plainly written event");
            assert_eq!(Some(&ev), super::super::decode_serde(LINE, f).as_ref(), "{f:?}");
        }
        let ev = read(LINE, Fields::ALL).unwrap();
        let reason = &ev.annotations.as_ref().unwrap()[1].1;
        assert!(matches!(reason, Cow::Owned(_)) && reason.ends_with("\"deployer\"\n"), "{reason}");
        assert_eq!(ev.response_status.as_ref().and_then(|s| s.code), Some(403));
        assert_eq!(ev.request_object.as_deref().map(|r| r.len()), Some(78));
    }

    /// The strings of `objectRef` and `responseStatus` are only checked when the projection does
    /// not keep them, and the checks are the same: a line is accepted or left whatever the
    /// projection, and what is kept reads the same.
    #[test]
    fn parts_not_kept_are_checked_as_when_kept() {
        let values = [
            r#""web-0""#,
            r#""pods \"web-0\"""#,
            r#""caf\u00e9""#,
            r#""\ud800""#,
            r#""bad \q escape""#,
            "\"tab\tinside\"",
            r#""""#,
            "1",
            "null",
            r#"{"a":"b"}"#,
        ];
        for v in values {
            for (part, line) in [
                ("name", LINE.replace(r#""name":"web-0""#, &format!(r#""name":{v}"#))),
                ("message", LINE.replace(r#""message":"pods \"web-0\" is forbidden""#, &format!(r#""message":{v}"#))),
                ("reason", LINE.replace(r#""reason":"Forbidden""#, &format!(r#""reason":{v}"#))),
            ] {
                assert!(line.contains(&format!(r#""{part}":{v}"#)), "{part}");
                let all = read(&line, Fields::ALL);
                for f in PROJECTIONS {
                    let got = read(&line, f);
                    assert_eq!(got.is_some(), all.is_some(), "{part} = {v} with {f:?}");
                    if let (Some(got), Some(all)) = (&got, &all) {
                        let name =
                            |e: &Event<'_>| e.user.as_ref().and_then(|u| u.username.as_deref().map(String::from));
                        assert_eq!(name(got), name(all), "{part} = {v} with {f:?}");
                        assert_eq!(got.stage, all.stage, "{part} = {v} with {f:?}");
                        if f.has(Fields::OBJECT_REF) {
                            assert_eq!(got.object_ref, all.object_ref, "{part} = {v} with {f:?}");
                        }
                    }
                }
            }
        }
        // Some of the edits are read (the checks do not refuse everything).
        assert!(read(&LINE.replace(r#""name":"web-0""#, r#""name":"caf\u00e9""#), Fields::BASE).is_some());
    }

    /// Random edits of the line: whatever this decoder accepts, serde's common-case decoder
    /// accepts and reads the same; and ordinary edits are not all refused.
    #[test]
    fn never_accepts_what_serde_would_not() {
        const BITS: &[&str] = &[
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\t",
            "\u{1}",
            "null",
            "-",
            "0",
            "01",
            "1.",
            "e",
            "\\u",
            "\\ud800",
            "\\ud83d\\ude00",
            "\\uDC00",
            "\\u00E9",
            "é",
            "2147483648",
            "x",
            "tru",
            "true",
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..30_000 {
            let mut text = LINE.to_string();
            for _ in 0..1 + next(3) {
                let mut at = next(text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match next(3) {
                    0 => text.insert_str(at, BITS[next(BITS.len())]),
                    1 => {
                        let mut end = (at + 1 + next(4)).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        text.replace_range(at..end, "");
                    }
                    _ => text.replace_range(at..at, BITS[next(BITS.len())]),
                }
            }
            for f in PROJECTIONS {
                if let Some(ev) = read(&text, f) {
                    accepted += 1;
                    assert_eq!(Some(ev), super::super::decode_serde(&text, f), "{f:?} {text}");
                }
            }
        }
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn same_compares_every_byte() {
        let names = ["", "uid", "kind", "username", "resource", "namespace", "requestReceivedTimestamp"];
        for name in names {
            let n = name.as_bytes();
            assert!(same(n, n), "{name}");
            for at in 0..n.len() {
                let mut other = n.to_vec();
                other[at] ^= 0x20;
                assert!(!same(&other, n), "{name} {at}");
            }
        }
        assert!(!same(b"user", b"users"));
    }

    /// The word-at-a-time search agrees with a byte-by-byte one wherever the byte it stops at
    /// stands, from every start, near the ends of the text as well as in the middle.
    #[test]
    fn special_finds_what_a_plain_search_finds() {
        let plain = |b: &[u8], from: usize| {
            let at = from + b[from..].iter().position(|&x| x == b'"' || x == b'\\' || x < 0x20)?;
            (b[at] >= 0x20).then_some(at)
        };
        // Letters, with bytes at and above 0x7f among them (not below 0x20 when unsigned).
        let high = [0x7f, 0x80, 0xa9, 0xc3, 0xff];
        let fill: Vec<u8> = (0..70u8).map(|i| if i % 7 == 3 { high[i as usize % 5] } else { b'a' + i % 26 }).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 49, 70] {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n', b' '] {
                for at in 0..=len {
                    // Alone, and followed by a quote at the end (a control character stops the
                    // search: the quote after it is not the answer).
                    for closed in [false, true] {
                        let mut b = fill[..len].to_vec();
                        if closed && len > 0 {
                            b[len - 1] = b'"';
                        }
                        if at < len {
                            b[at] = stop;
                        }
                        for from in 0..=len {
                            let why = format!("len {len} stop {stop} at {at} closed {closed} from {from}");
                            assert_eq!(special(&b, from), plain(&b, from), "{why}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nesting_and_numbers() {
        let nest = |n: usize| format!(r#"{{"requestObject":{}1{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(read(&nest(90), Fields::ALL).is_some());
        assert!(read(&nest(150), Fields::ALL).is_none());
        for (code, want) in [("0", Some(0)), ("-0", Some(0)), ("-2147483648", Some(i32::MIN)), ("2147483648", None)] {
            let text = format!(r#"{{"responseStatus":{{"code":{code}}}}}"#);
            let got = read(&text, Fields::ALL).map(|e| e.response_status.unwrap().code.unwrap());
            assert_eq!(got, want, "{code}");
        }
        for bad in ["01", "1.", "1e", "-", ".5", "1.5", "1e2", "+1"] {
            let text = format!(r#"{{"responseStatus":{{"code":{bad}}}}}"#);
            assert!(read(&text, Fields::ALL).is_none(), "{bad}");
        }
    }
}
