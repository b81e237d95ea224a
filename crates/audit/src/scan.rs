//! A strict hand-written scanner for the usual shape of Cerbos audit lines, several times faster than serde; on anything unusual it gives up and serde decides.
//!
//! [`scan`] answers only when it is sure the serde decoder ([`crate::lite::decode_lite`])
//! would accept the line and decode it to the same entry: strings without escapes, numbers
//! without exponents, every known field of the expected JSON type and at most once, shallow
//! nesting, nothing after the object. Anything else (escapes, `null` where a struct is
//! expected, plan decisions, a missing `callId`, malformed JSON, ...) returns `None`, and the
//! line goes through serde, which gives the authoritative answer and error.

use chrono::{DateTime, Utc};

use crate::decode::Effect;
use crate::few::Few;
use crate::lite::{
    AccessLite, ActionLite, ActionsLite, CheckLite, DecisionLite, InputLite, LiteEntry,
    MetadataSource, OutputLite, PrincipalLite, ResourceLite, RuleOutputLite, RuleValue,
};
use crate::shape::Str;

/// Deeper nesting than this is left to serde (whose limit is 128).
const MAX_DEPTH: u32 = 64;
/// Longer numbers are left to serde.
const MAX_NUMBER_LEN: usize = 300;
/// Whether `b` holds no backslash and no control character (the usual line): then every `"`
/// delimits a string, and a string ends at the next quote without further checks. Written
/// over fixed-size chunks so that the compiler vectorises it.
fn plain(b: &[u8]) -> bool {
    fn odd(chunk: &[u8; 64]) -> bool {
        let mut odd = false;
        for &x in chunk {
            odd |= (x < 0x20) | (x == b'\\');
        }
        odd
    }
    let mut chunks = b.chunks_exact(64);
    for chunk in &mut chunks {
        if <&[u8; 64]>::try_from(chunk).is_ok_and(odd) {
            return false;
        }
    }
    // The rest, padded with spaces (neither a backslash nor a control character), so that it
    // takes the vectorised loop too.
    let rest = chunks.remainder();
    let mut last = [b' '; 64];
    last[..rest.len()].copy_from_slice(rest);
    !odd(&last)
}

/// Decodes a trimmed, non-empty line when it has the usual shape; `None` when serde must.
pub(crate) fn scan(line: &str) -> Option<LiteEntry<'_>> {
    let mut c = Cur {
        src: line,
        b: line.as_bytes(),
        i: 0,
        depth: 0,
        plain: plain(line.as_bytes()),
    };
    let mut logger = None;
    let mut kind = None;
    let mut call_id = "";
    let mut timestamp = None;
    let mut peer_address = "";
    let mut method = "";
    let mut status_code = 0;
    let mut check = None;
    c.fields(
        &[
            "log.logger",
            "log.kind",
            "callId",
            "timestamp",
            "peer",
            "metadata",
            "method",
            "statusCode",
            "policySource",
            "requestContext",
            "oversized",
            "checkResources",
            "planResources",
            "auditTrail",
        ],
        |c, field| {
            match field {
                0 => logger = c.opt_str()?,
                1 => kind = c.opt_str()?,
                2 => call_id = c.str()?,
                3 => timestamp = c.timestamp()?,
                4 => peer_address = c.peer()?,
                5 => c.metadata()?,
                6 => method = c.str()?,
                7 => status_code = c.u32()?,
                8 => c.any()?,
                9 => {
                    if !c.null()? {
                        c.fields(&["annotations"], |c, _| c.object_of_any())?;
                    }
                }
                10 => {
                    c.bool()?;
                }
                11 => {
                    if !c.null()? {
                        check = Some(c.check()?);
                    }
                }
                // Plan decisions are rare: serde decodes them.
                12 => c.null()?.then_some(())?,
                _ => {
                    if !c.null()? {
                        c.fields(&["effectivePolicies"], |c, _| c.object_of_any())?;
                    }
                }
            }
            Some(())
        },
    )?;
    c.ws();
    if c.i != c.b.len() {
        return None;
    }
    if logger.is_some_and(|l| l != "cerbos.audit") {
        return Some(LiteEntry::Other);
    }
    let is_access = match kind {
        Some("access") => true,
        Some("decision") => false,
        _ => return Some(LiteEntry::Other),
    };
    if call_id.is_empty() {
        // An error: serde words it.
        return None;
    }
    Some(if is_access {
        LiteEntry::Access(AccessLite {
            call_id: Str::from(call_id),
            timestamp,
            method: Str::from(method),
            status_code,
        })
    } else {
        LiteEntry::Decision(DecisionLite {
            call_id: Str::from(call_id),
            timestamp,
            peer_address: Str::from(peer_address),
            metadata: MetadataSource::Line(line),
            check_resources: check,
        })
    })
}

/// Where the first `"`, `\\` or control character of `b` is, eight bytes at a time.
fn special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // The lowest flagged byte is exact (borrows only reach higher bytes).
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let found = found & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// The usual Cerbos timestamp, `YYYY-MM-DDTHH:MM:SS[.1 to 9 digits]Z`, read directly (chrono's
/// RFC 3339 parser costs several times more); `None` for anything else (other offsets, lower
/// case, leap seconds, invalid dates), which chrono then decides. Whatever this accepts,
/// chrono accepts too, with the same instant.
fn utc_time(t: &str) -> Option<DateTime<Utc>> {
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match b.len() {
        20 => 0,
        n @ 22..=30 if b[19] == b'.' => num(20, n - 1)? * 10u32.pow(30 - n as u32),
        _ => return None,
    };
    let second = num(17, 19)?;
    if second > 59 {
        return None;
    }
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, second, nanos)?;
    Some(chrono::NaiveDateTime::new(date, time).and_utc())
}

/// An action's `effect` (an unknown name is `Unspecified`, as serde decodes it).
fn effect_of(name: &[u8]) -> Effect {
    match name {
        b"EFFECT_ALLOW" => Effect::Allow,
        b"EFFECT_DENY" => Effect::Deny,
        b"EFFECT_NO_MATCH" => Effect::NoMatch,
        _ => Effect::Unspecified,
    }
}

/// The first position at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        // Most bytes are above the space: one comparison.
        if c > b' ' || !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// A position in the line. Every method returns `None` to give up.
struct Cur<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
    /// The line has no backslash and no control character ([`plain`]).
    plain: bool,
}

impl<'a> Cur<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            // Most bytes are above the space: one comparison.
            if c > b' ' || !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    /// Where the first quote at or after `p` is, eight bytes at a time (plain lines only).
    #[inline(always)]
    fn quote_from(&self, mut p: usize) -> Option<usize> {
        const ONES: u64 = u64::MAX / 255;
        const HIGH: u64 = ONES << 7;
        let mut chunks = self.b.get(p..)?.chunks_exact(8);
        for chunk in &mut chunks {
            let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let t = u64::from_le_bytes(bytes) ^ (ONES * u64::from(b'"'));
            // The lowest flagged byte is exact (borrows only reach higher bytes).
            let found = t.wrapping_sub(ONES) & !t & HIGH;
            if found != 0 {
                return Some(p + found.trailing_zeros() as usize / 8);
            }
            p += 8;
        }
        chunks
            .remainder()
            .iter()
            .position(|&c| c == b'"')
            .map(|k| p + k)
    }

    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        // Usually no whitespace at all: one comparison.
        if c > b' ' {
            return Some(c);
        }
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string without escapes or control characters.
    #[inline(always)]
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.close(start)?;
        // Ends at ASCII quotes, so on character boundaries.
        self.src.get(start..end)
    }

    /// A string that is only checked, not kept (no character-boundary checks).
    #[inline(always)]
    fn skip_str(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.close(self.i).map(drop)
    }

    /// The closing quote of the string whose text starts at `start` (`None` at an escape or a
    /// control character); the cursor moves past it.
    #[inline(always)]
    fn close(&mut self, start: usize) -> Option<usize> {
        let end = self.string_end(start)?;
        self.i = end + 1;
        Some(end)
    }

    /// The closing quote of a string starting at `start` of a line that is not plain, `None`
    /// at an escape or a control character. Kept out of line: the hot [`Cur::str`] stays small.
    #[cold]
    #[inline(never)]
    fn checked_end(&self, start: usize) -> Option<usize> {
        let end = start + special(self.b.get(start..)?)?;
        (self.b[end] == b'"').then_some(end)
    }

    /// `null` (consumed: true), or false with nothing consumed.
    #[inline(always)]
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    #[inline(always)]
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        if self.null()? {
            Some(None)
        } else {
            self.str().map(Some)
        }
    }

    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    /// A non-negative integer that fits in `u32`, digits only.
    fn u32(&mut self) -> Option<u32> {
        self.ws();
        let start = self.i;
        let len = self
            .b
            .get(start..)?
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if len == 0 || len > 10 || (len > 1 && self.b[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(start + len) {
            return None;
        }
        self.i = start + len;
        self.src.get(start..start + len)?.parse().ok()
    }

    /// A number in JSON syntax, without exponent and not too long (so always in range).
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |c: &mut Self| {
            let n =
                c.b.get(c.i..)
                    .map_or(0, |r| r.iter().take_while(|d| d.is_ascii_digit()).count());
            c.i += n;
            n
        };
        match self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            return None;
        }
        (self.i - start <= MAX_NUMBER_LEN).then_some(())
    }

    fn enter(&mut self, open: u8) -> Option<()> {
        self.eat(open)?;
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// After `{` or a member: the next key and its colon, or `None` inside at the closing
    /// `}`. The key is given as the bytes between its quotes (`start..end` of the line): keys
    /// are mostly only compared, which needs no character boundary checks.
    #[inline(always)]
    fn next_key(&mut self, first: &mut bool) -> Option<Option<(usize, usize)>> {
        let mut c = self.peek()?;
        if c == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Some(None);
        }
        if !*first {
            if c != b',' {
                return None;
            }
            self.i += 1;
            c = self.peek()?;
        }
        *first = false;
        if c != b'"' {
            return None;
        }
        self.key().map(Some)
    }

    /// A key and its colon, the cursor at its opening quote; `start..end` of its text.
    #[inline(always)]
    fn key(&mut self) -> Option<(usize, usize)> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = self.close(start)?;
        self.eat(b':')?;
        Some((start, end))
    }

    /// After `[` or an element: whether another element follows (false at the closing `]`).
    #[inline(always)]
    fn next_element(&mut self, first: &mut bool) -> Option<bool> {
        match self.peek()? {
            b']' => {
                self.i += 1;
                self.depth -= 1;
                return Some(false);
            }
            b',' if !*first => self.i += 1,
            _ if *first => {}
            _ => return None,
        }
        *first = false;
        Some(true)
    }

    /// Any JSON value (`serde_json::Value`), checked but not built: what no taint reads
    /// (`attr`, `auditTrail`, `policySource`, a rule output's `val`, ...). One loop over its
    /// tokens with the position in a local rather than a call per value; the open objects and
    /// arrays are bits of a word. Accepts exactly what reading it value by value would (the
    /// same syntax, the same depth limit).
    #[inline(never)]
    fn any(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        // Bit 0: whether the innermost open container is an object (then its outer ones).
        let mut objects = 0u64;
        let mut open = 0u32;
        loop {
            // A value.
            i = skip_ws(b, i);
            let c = *b.get(i)?;
            match c {
                b'"' => i = self.string_end(i + 1)? + 1,
                b'{' | b'[' => {
                    open += 1;
                    if self.depth + open > MAX_DEPTH {
                        return None;
                    }
                    let object = c == b'{';
                    objects = objects << 1 | u64::from(object);
                    i = skip_ws(b, i + 1);
                    let end = if object { b'}' } else { b']' };
                    if b.get(i) == Some(&end) {
                        i += 1;
                        objects >>= 1;
                        open -= 1;
                    } else {
                        if object {
                            i = self.key_at(i)?;
                        }
                        continue;
                    }
                }
                _ => {
                    self.i = i;
                    match c {
                        b't' => self.literal(b"true")?,
                        b'f' => self.literal(b"false")?,
                        b'n' => self.literal(b"null")?,
                        b'-' | b'0'..=b'9' => self.number()?,
                        _ => return None,
                    }
                    i = self.i;
                }
            }
            // After a value: the containers it closes, then a separator (or the end).
            loop {
                if open == 0 {
                    self.i = i;
                    return Some(());
                }
                i = skip_ws(b, i);
                let object = objects & 1 == 1;
                match *b.get(i)? {
                    b',' => {
                        i += 1;
                        if object {
                            i = self.key_at(skip_ws(b, i))?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                i += 1;
                objects >>= 1;
                open -= 1;
            }
        }
    }

    /// The end of the string whose text starts at `start`, `None` at an escape or a control
    /// character.
    #[inline(always)]
    fn string_end(&self, start: usize) -> Option<usize> {
        match self.plain {
            true => self.quote_from(start),
            false => self.checked_end(start),
        }
    }

    /// A key at `i` (its opening quote) and its colon: the position after the colon.
    #[inline(always)]
    fn key_at(&self, i: usize) -> Option<usize> {
        if self.b.get(i) != Some(&b'"') {
            return None;
        }
        let after = skip_ws(self.b, self.string_end(i + 1)? + 1);
        (self.b.get(after) == Some(&b':')).then_some(after + 1)
    }

    /// An object of any values (`serde_json::Map`).
    fn object_of_any(&mut self) -> Option<()> {
        if self.peek()? != b'{' {
            return None;
        }
        self.any()
    }

    /// An array whose elements `each` reads.
    fn array_of(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.enter(b'[')?;
        let mut first = true;
        while self.next_element(&mut first)? {
            each(self)?;
        }
        Some(())
    }

    /// An array of strings, kept.
    fn strings(&mut self) -> Option<Few<Str<'a>>> {
        let mut out = Few::Zero;
        self.array_of(|c| {
            out.push(Str::from(c.str()?));
            Some(())
        })?;
        Some(out)
    }

    /// An object read as a struct with these field names: each known field at most once
    /// (read by `field`, given its index), unknown fields skipped.
    fn fields(
        &mut self,
        names: &[&str],
        mut field: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.enter(b'{')?;
        let mut seen = 0u64;
        let mut first = true;
        while let Some((start, end)) = self.next_key(&mut first)? {
            let key = self.b.get(start..end)?;
            match names.iter().position(|n| n.as_bytes() == key) {
                Some(at) => {
                    let bit = 1u64 << at;
                    if seen & bit != 0 {
                        return None;
                    }
                    seen |= bit;
                    field(self, at)?;
                }
                None => self.any()?,
            }
        }
        Some(())
    }

    fn timestamp(&mut self) -> Option<Option<DateTime<Utc>>> {
        if self.null()? {
            return Some(None);
        }
        let text = self.str()?;
        Some(utc_time(text).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }))
    }

    fn peer(&mut self) -> Option<&'a str> {
        let mut address = "";
        self.fields(
            &["address", "userAgent", "forwardedFor", "authInfo"],
            |c, field| {
                match field {
                    0 => address = c.str()?,
                    1 | 2 => {
                        c.skip_str()?;
                    }
                    _ => c.any()?,
                }
                Some(())
            },
        )?;
        Some(address)
    }

    fn metadata(&mut self) -> Option<()> {
        const USUAL: &[u8] = b"{\"values\":[";
        self.enter(b'{')?;
        let mut first = true;
        while self.next_key(&mut first)?.is_some() {
            if self.b.get(self.i..self.i + USUAL.len()) == Some(USUAL) {
                // The usual entry, `{"values":[strings]}` without whitespace, read directly;
                // anything else in it (whitespace, other fields) gives up.
                self.i += USUAL.len();
                if self.b.get(self.i) != Some(&b']') {
                    loop {
                        self.skip_str()?;
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => break,
                            _ => return None,
                        }
                    }
                }
                if self.b.get(self.i + 1) != Some(&b'}') {
                    return None;
                }
                self.i += 2;
            } else {
                self.fields(&["values"], |c, _| c.array_of(|c| c.skip_str()))?;
            }
        }
        Some(())
    }

    fn check(&mut self) -> Option<CheckLite<'a>> {
        let mut inputs = Few::Zero;
        let mut outputs = Few::Zero;
        self.fields(&["inputs", "outputs", "error"], |c, field| {
            match field {
                0 => c.array_of(|c| {
                    inputs.push(c.input()?);
                    Some(())
                })?,
                1 => c.array_of(|c| {
                    outputs.push(c.output()?);
                    Some(())
                })?,
                _ => {
                    c.skip_str()?;
                }
            }
            Some(())
        })?;
        Some(CheckLite::new(inputs, outputs))
    }

    fn input(&mut self) -> Option<InputLite<'a>> {
        let mut principal = PrincipalLite::default();
        let mut resource = ResourceLite::default();
        self.fields(
            &["requestId", "principal", "resource", "actions", "auxData"],
            |c, field| {
                match field {
                    0 => {
                        c.skip_str()?;
                    }
                    1 => principal = c.principal()?,
                    2 => resource = c.resource()?,
                    3 => c.array_of(|c| c.skip_str())?,
                    _ => c.any()?,
                }
                Some(())
            },
        )?;
        Some(InputLite::new(principal, resource))
    }

    fn principal(&mut self) -> Option<PrincipalLite<'a>> {
        let mut id = "";
        let mut roles = Few::Zero;
        self.fields(
            &["id", "roles", "attr", "policyVersion", "scope"],
            |c, field| {
                match field {
                    0 => id = c.str()?,
                    1 => roles = c.strings()?,
                    2 => c.object_of_any()?,
                    _ => {
                        c.skip_str()?;
                    }
                }
                Some(())
            },
        )?;
        Some(PrincipalLite::new(Str::from(id), roles))
    }

    fn resource(&mut self) -> Option<ResourceLite<'a>> {
        let mut kind = "";
        let mut id = "";
        self.fields(
            &["kind", "id", "attr", "policyVersion", "scope"],
            |c, field| {
                match field {
                    0 => kind = c.str()?,
                    1 => id = c.str()?,
                    2 => c.object_of_any()?,
                    _ => {
                        c.skip_str()?;
                    }
                }
                Some(())
            },
        )?;
        Some(ResourceLite::new(Str::from(kind), Str::from(id)))
    }

    fn output(&mut self) -> Option<OutputLite<'a>> {
        let mut actions = Few::Zero;
        let mut rule_outputs = Few::Zero;
        self.fields(
            &[
                "requestId",
                "resourceId",
                "actions",
                "effectiveDerivedRoles",
                "outputs",
                "evaluationErrors",
                "validationErrors",
            ],
            |c, field| {
                match field {
                    0 | 1 => {
                        c.skip_str()?;
                    }
                    2 => {
                        c.enter(b'{')?;
                        let mut first = true;
                        while let Some((start, end)) = c.next_key(&mut first)? {
                            let action = c.src.get(start..end)?;
                            actions.push((Str::from(action), c.action()?));
                        }
                    }
                    3 => c.array_of(|c| c.skip_str())?,
                    4 => c.array_of(|c| {
                        rule_outputs.push(c.rule_output()?);
                        Some(())
                    })?,
                    _ => c.array_of(Self::any)?,
                }
                Some(())
            },
        )?;
        Some(OutputLite::new(
            ActionsLite::from_entries(actions),
            rule_outputs,
        ))
    }

    fn action(&mut self) -> Option<ActionLite<'a>> {
        let at = self.i;
        if let Some(action) = self.usual_action() {
            return Some(action);
        }
        self.i = at;
        let mut effect = Effect::Unspecified;
        let mut policy = "";
        self.fields(&["effect", "policy", "scope"], |c, field| {
            match field {
                0 => effect = effect_of(c.str()?.as_bytes()),
                1 => policy = c.str()?,
                _ => {
                    c.skip_str()?;
                }
            }
            Some(())
        })?;
        Some(ActionLite::new(effect, Str::from(policy)))
    }

    /// The usual action, `{"effect":"…","policy":"…"}` without whitespace, read directly;
    /// `None` (the cursor anywhere) for anything else, which [`Cur::action`] then reads field
    /// by field.
    #[inline(always)]
    fn usual_action(&mut self) -> Option<ActionLite<'a>> {
        const EFFECT: &[u8] = b"{\"effect\":\"";
        const POLICY: &[u8] = b",\"policy\":\"";
        if self.b.get(self.i..self.i + EFFECT.len()) != Some(EFFECT) {
            return None;
        }
        let start = self.i + EFFECT.len();
        let end = self.close(start)?;
        let effect = effect_of(self.b.get(start..end)?);
        if self.b.get(self.i..self.i + POLICY.len()) != Some(POLICY) {
            return None;
        }
        let start = self.i + POLICY.len();
        let end = self.close(start)?;
        if self.b.get(self.i) != Some(&b'}') {
            return None;
        }
        self.i += 1;
        Some(ActionLite::new(
            effect,
            Str::from(self.src.get(start..end)?),
        ))
    }

    fn rule_output(&mut self) -> Option<RuleOutputLite<'a>> {
        let mut src = "";
        let mut action = "";
        let mut val = RuleValue::default();
        self.fields(&["src", "action", "val", "error"], |c, field| {
            match field {
                0 => src = c.str()?,
                1 => action = c.str()?,
                2 => {
                    c.ws();
                    let start = c.i;
                    c.any()?;
                    val = RuleValue::Text(c.src.get(start..c.i)?);
                }
                _ => {
                    c.skip_str()?;
                }
            }
            Some(())
        })?;
        Some(RuleOutputLite::new(Str::from(src), Str::from(action), val))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fmt::Write;

    use super::scan;
    use crate::decode::{Entry, decode_line};
    use crate::lite::{AccessLite, DecisionLite, LiteEntry};

    const SAMPLE: &str = include_str!("../tests/data/audit.log");

    /// Everything the join and the evaluator can read of an entry.
    pub(crate) fn summary(e: &LiteEntry<'_>) -> String {
        let mut s = String::new();
        match e {
            LiteEntry::Other => s.push_str("other"),
            LiteEntry::Access(a) => {
                let _ = write!(
                    s,
                    "access {} {:?} {} {}",
                    a.call_id.as_str(),
                    a.timestamp,
                    a.method.as_str(),
                    a.status_code
                );
            }
            LiteEntry::Decision(d) => {
                let _ = write!(
                    s,
                    "decision {} {:?} {} {:?}",
                    d.call_id.as_str(),
                    d.timestamp,
                    d.peer_address.as_str(),
                    d.metadata.get()
                );
                if let Some(c) = &d.check_resources {
                    for i in &c.inputs {
                        let roles: Vec<&str> =
                            i.principal.roles.iter().map(|r| r.as_str()).collect();
                        let _ = write!(
                            s,
                            " in[{} {roles:?} {} {}]",
                            i.principal.id.as_str(),
                            i.resource.kind.as_str(),
                            i.resource.id.as_str()
                        );
                    }
                    for o in &c.outputs {
                        for (name, a) in &o.actions.0 {
                            let _ = write!(
                                s,
                                " act[{} {:?} {}]",
                                name.as_str(),
                                a.effect,
                                a.policy.as_str()
                            );
                        }
                        for r in &o.outputs {
                            let _ = write!(
                                s,
                                " rule[{} {} {}]",
                                r.src.as_str(),
                                r.action.as_str(),
                                r.val.with(|v| v.to_string())
                            );
                        }
                    }
                }
            }
        }
        s
    }

    /// What the owned decoder (the reference) makes of `line`, as a summary.
    pub(crate) fn reference(line: &str) -> Result<String, String> {
        match decode_line(line.as_bytes()) {
            Ok(Entry::Other) => Ok(summary(&LiteEntry::Other)),
            Ok(Entry::Access(a)) => Ok(summary(&LiteEntry::Access(AccessLite::of(&a)))),
            Ok(Entry::Decision(d)) => Ok(summary(&LiteEntry::Decision(DecisionLite::of(&d)))),
            Err(e) => Err(e.to_string()),
        }
    }

    fn check_agrees(line: &str) -> bool {
        let trimmed = line.trim_ascii();
        match scan(trimmed) {
            Some(fast) => {
                assert_eq!(Ok(summary(&fast)), reference(line), "line: {line}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn every_real_line_but_plans_is_scanned_to_what_serde_decodes() {
        for line in SAMPLE.lines() {
            let scanned = check_agrees(line);
            assert_eq!(scanned, !line.contains("\"planResources\""), "line: {line}");
        }
    }

    /// The sample lines, cut and edited in many places.
    pub(crate) fn edited_lines(mut each: impl FnMut(&str)) {
        for (n, line) in SAMPLE.lines().enumerate() {
            let cuts: Vec<usize> = (0..=line.len())
                .filter(|i| line.is_char_boundary(*i) && (i + n) % 11 == 0)
                .collect();
            for &at in &cuts {
                each(&line[..at]);
                let next = line[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                each(&format!("{}{}", &line[..at], &line[next..]));
                for edit in EDITS {
                    each(&format!("{}{edit}{}", &line[..at], &line[at..]));
                }
            }
        }
    }

    const EDITS: [&str; 24] = [
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "0",
        "-",
        "1e5",
        " ",
        "null",
        "\"x\"",
        "\u{1}",
        "é",
        "01",
        "1.",
        "[]",
        "{}",
        "true",
        "\"callId\":\"x\",",
        "\"log.kind\":null,",
        "\"statusCode\":4294967296,",
    ];

    #[test]
    fn edited_lines_are_scanned_to_what_serde_decodes_or_left_to_serde() {
        let mut scanned = 0;
        edited_lines(|line| scanned += usize::from(check_agrees(line)));
        assert!(
            scanned > 1000,
            "only {scanned} edited lines took the fast path"
        );
    }

    #[test]
    fn metadata_entries_read_directly_agree_with_serde() {
        let line = |entries: &str| {
            format!(r#"{{"log.kind":"decision","callId":"M","metadata":{{{entries}}}}}"#)
        };
        // The usual shape (read directly) and other valid shapes (read field by field).
        for entries in [
            r#""a":{"values":[]}"#,
            r#""a":{"values":["x"]},"b":{"values":["y","z"]}"#,
            r#""a":{"values":["x"]},"a":{"values":["é]}😀","{\"values\":["]}"#,
            r#""a":{"values":["{","]}"]}"#,
            r#""a":{"values": ["x"]}"#,
            r#""a":{ "values":["x"]},"b":{}"#,
        ] {
            let l = line(entries);
            assert_eq!(
                check_agrees(&l),
                !l.contains('\\'),
                "scanned only without escapes: {l}"
            );
        }
        // Whitespace or other fields after the usual start, or bad values: serde decides.
        for entries in [
            r#""a":{"values":["x"] }"#,
            r#""a":{"values":["x" ]}"#,
            r#""a":{"values":["x"],"other":1}"#,
            r#""a":{"values":["x"],"values":["y"]}"#,
            r#""a":{"values":[1]}"#,
            r#""a":{"values":["x",]}"#,
            r#""a":{"values":["x"]"#,
            r#""a":{"values":["x"]]}"#,
            r#""a":{"values":"x"}"#,
            r#""a":{"values":[null]}"#,
        ] {
            let l = line(entries);
            check_agrees(&l);
            assert!(scan(&l).is_none(), "scanned: {l}");
        }
    }

    #[test]
    fn actions_read_directly_agree_with_serde() {
        let line = |action: &str| {
            format!(
                r#"{{"log.kind":"decision","callId":"A","checkResources":{{"inputs":[{{}}],"outputs":[{{"actions":{{"read":{action}}}}}]}}}}"#
            )
        };
        // The usual shape (read directly) and other valid shapes (read field by field).
        for action in [
            r#"{"effect":"EFFECT_DENY","policy":"resource.k.vdefault"}"#,
            r#"{"effect":"EFFECT_ALLOW","policy":"p}\"x"}"#,
            r#"{"effect":"EFFECT_NO_MATCH","policy":"NO_MATCH"}"#,
            r#"{"effect":"EFFECT_SOMETHING_NEW","policy":"é😀,\"}"}"#,
            r#"{"effect":"EFFECT_DENY","policy":"p","scope":"s"}"#,
            r#"{"policy":"p","effect":"EFFECT_DENY"}"#,
            r#"{"effect":"EFFECT_DENY"}"#,
            r#"{"effect":"EFFECT_DENY", "policy":"p"}"#,
            r#"{"effect":"EFFECT_DENY","policy":"p" }"#,
            r#"{ "effect":"EFFECT_DENY","policy":"p"}"#,
            r#"{}"#,
        ] {
            let l = line(action);
            assert_eq!(
                check_agrees(&l),
                !l.contains('\\'),
                "scanned only without escapes: {l}"
            );
        }
        // Invalid, or valid but left to serde (numbers as effects, duplicate fields).
        for action in [
            r#"{"effect":"EFFECT_DENY","policy":"p"]"#,
            r#"{"effect":"EFFECT_DENY","policy":"p""#,
            r#"{"effect":"EFFECT_DENY","policy":7}"#,
            r#"{"effect":"EFFECT_DENY","policy":"p","policy":"q"}"#,
            r#"{"effect":2,"policy":"p"}"#,
            r#"{"effect":"EFFECT_DENY","policy":"p"},"#,
            r#"{"effect":"EFFECT_DENY","policy":"p"}}"#,
        ] {
            let l = line(action);
            check_agrees(&l);
            assert!(scan(&l).is_none(), "scanned: {l}");
        }
    }

    #[test]
    fn unusual_but_valid_lines_agree_with_serde() {
        let lines = [
            r#"{"log.logger":"cerbos.audit","log.kind":"decision","callId":"A","checkResources":{"inputs":[{"principal":{"id":"p","roles":[]},"resource":{"kind":"k","id":"r"}}],"outputs":[{"actions":{"b":{"effect":"EFFECT_DENY","policy":"x"},"a":{"effect":"EFFECT_ALLOW"},"b":{"effect":"EFFECT_NO_MATCH"}},"outputs":[{"src":"s","action":"b","val":[1,-2.5,0,{"k":null}]}]}]}}"#,
            r#" { "log.kind" : "access" , "callId" : "B" , "statusCode" : 0 , "method" : "m" , "peer" : { "authInfo" : null } } "#,
            r#"{"log.kind":"access","callId":"C","statusCode":4294967295,"timestamp":"yesterday"}"#,
            r#"{"log.kind":"decision","callId":"D","timestamp":null,"metadata":{"x-node-id":{"values":["n1"]},"x-node-id":{"values":["n2","n3"]}}}"#,
            r#"{"log.logger":"other","callId":""}"#,
            r#"{"log.kind":"decision","callId":"E","unknown":{"deep":[[[[{"a":1.25}]]]]},"requestContext":{"annotations":{"a":true}},"auditTrail":{"effectivePolicies":{}}}"#,
            r#"{"log.kind":"decision","callId":"F","checkResources":null,"planResources":null,"requestContext":null,"auditTrail":null,"policySource":null}"#,
        ];
        for line in lines {
            assert!(check_agrees(line), "not scanned: {line}");
        }
        // Left to serde: escapes, exponents, duplicate fields, null structs, empty callId.
        for line in [
            r#"{"log.kind":"access","callId":"A\u0042"}"#,
            r#"{"log.kind":"access","callId":"A","x":1e3}"#,
            r#"{"log.kind":"access","callId":"A","callId":"B"}"#,
            r#"{"log.kind":"access","callId":"A","peer":null}"#,
            r#"{"log.kind":"access","callId":""}"#,
            r#"{"log.kind":"access","callId":"A"} x"#,
            r#"["cerbos.audit","access","A"]"#,
        ] {
            assert!(scan(line).is_none(), "scanned: {line}");
        }
    }
}

#[cfg(test)]
mod plain_tests {
    use super::{Cur, plain, utc_time};

    #[test]
    fn the_direct_timestamp_reader_agrees_with_chrono_or_leaves_it_to_chrono() {
        let chrono_utc = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let mut direct = 0;
        for t in [
            "2026-11-21T19:41:30.935830063Z",
            "2026-11-21T19:41:30.935Z",
            "2026-11-21T19:41:30.9Z",
            "2026-11-21T19:41:30Z",
            "2026-11-21T19:41:30.Z",
            "2026-11-21T19:41:30.1234567891Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-02-29T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-11-21t19:41:30z",
            "2026-11-21 19:41:30Z",
            "2026-11-21T19:41:30+02:00",
            "2026-11-21T19:41:30.12a4Z",
            "+2026-11-21T19:41:30Z",
            "2026-11-21T19:41:30",
            "yesterday",
        ] {
            if let Some(fast) = utc_time(t) {
                direct += 1;
                assert_eq!(Some(fast), chrono_utc(t), "{t}");
            }
        }
        assert_eq!(direct, 7);
    }

    #[test]
    fn plain_lines_have_no_backslash_or_control_character_and_strings_end_at_quotes() {
        for n in [0, 1, 7, 8, 63, 64, 65, 200] {
            let line = "a\u{e9}~ \u{7f}".repeat(n);
            assert!(plain(line.as_bytes()), "{n}");
            for bad in ["\\", "\u{1}", "\t", "\r", "\u{1f}"] {
                for at in [0, line.len() / 2, line.len()] {
                    let mut edited = line.clone();
                    let mut at = at;
                    while !edited.is_char_boundary(at) {
                        at -= 1;
                    }
                    edited.insert_str(at, bad);
                    assert!(!plain(edited.as_bytes()), "{edited:?}");
                }
            }
            for tail in ["", "x", "xxxxxxx", "xxxxxxxx"] {
                let text = format!("\"{line}\"{tail}");
                let mut c = Cur {
                    src: &text,
                    b: text.as_bytes(),
                    i: 0,
                    depth: 0,
                    plain: true,
                };
                assert_eq!(c.str(), Some(line.as_str()));
                assert_eq!(c.i, line.len() + 2);
                let open = format!("\"{line}{tail}");
                let mut c = Cur {
                    src: &open,
                    b: open.as_bytes(),
                    i: 0,
                    depth: 0,
                    plain: true,
                };
                assert_eq!(c.str(), None);
            }
        }
    }

    /// Whether `any` takes `text` as exactly one JSON value (then nothing but whitespace).
    fn any_takes(text: &str) -> bool {
        let mut c = Cur {
            src: text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            plain: plain(text.as_bytes()),
        };
        c.any().is_some() && {
            c.ws();
            c.i == text.len()
        }
    }

    /// Numbers with an exponent are left to serde by design.
    fn has_exponent(text: &str) -> bool {
        text.as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'))
    }

    const TRICKY: [&str; 14] = [
        r#"{"a]}":"[{","b":["}","]",{"c":"{\"}"}],"d":{}}"#,
        r#"{"k":"\u00e9\\\"]","l":[]}"#,
        r#"{"é→😀":"ü 😀 ]}","x":[["]"],{"}":"{"}]}"#,
        r#"[1,-2.5,0,-0,1.25,true,false,null,"",{},[]]"#,
        r#" { "a" : [ 1 , { "b" : null } ] , "c" : "d" } "#,
        r#"{"a":{"b":{"c":{"d":[[[["deep"]]]]}}}}"#,
        r#""just a string ] } [ {""#,
        "[\"tab\there\"]",
        r#"{"a":1}{"#,
        r#"{"a" "b"}"#,
        r#"[1 2]"#,
        r#"{"a":[}]"#,
        r#"{"a":01}"#,
        r#"["\ud800"]"#,
    ];

    #[test]
    fn skipped_values_are_accepted_only_when_serde_accepts_them() {
        let mut taken = 0;
        let mut check = |text: &str| {
            let serde_ok = serde_json::from_str::<serde_json::Value>(text).is_ok();
            let ours = any_takes(text);
            assert!(!ours || serde_ok, "taken but serde rejects: {text:?}");
            if serde_ok && plain(text.as_bytes()) && !has_exponent(text) {
                assert!(ours, "serde accepts but the skipper does not: {text:?}");
            }
            taken += usize::from(ours);
        };
        for value in TRICKY {
            check(value);
            // Cut, with one character removed, and with structural characters inserted,
            // everywhere.
            for (at, ch) in value.char_indices() {
                check(&value[..at]);
                check(&format!("{}{}", &value[..at], &value[at + ch.len_utf8()..]));
                for edit in ["\"", "{", "}", "[", "]", ",", ":", " ", "\\", "1e5", "é"] {
                    check(&format!("{}{edit}{}", &value[..at], &value[at..]));
                }
            }
        }
        assert!(taken > 100, "only {taken} edited values were taken");
    }

    #[test]
    fn skipped_values_keep_the_depth_limit() {
        for depth in [1, 62, 63, 64, 65, 100] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(any_takes(&text), depth <= 64, "{depth}");
            let text = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(any_takes(&text), depth <= 64, "{depth}");
        }
    }

    #[test]
    fn tricky_skipped_fields_of_a_line_agree_with_serde() {
        let mut scanned = 0;
        for value in TRICKY {
            for field in ["attr", "auxData", "unknown"] {
                let line = match field {
                    "unknown" => format!(
                        r#"{{"log.kind":"decision","callId":"A","unknown":{value},"checkResources":{{"inputs":[{{"principal":{{"id":"p","roles":["r"]}},"resource":{{"kind":"k","id":"i"}}}}]}}}}"#
                    ),
                    _ => format!(
                        r#"{{"log.kind":"decision","callId":"A","checkResources":{{"inputs":[{{"principal":{{"id":"p","roles":["r"],"{field}":{value}}},"resource":{{"kind":"k","id":"i","{field}":{value}}},"auxData":{value}}}],"outputs":[{{"actions":{{"read":{{"effect":"EFFECT_DENY","policy":"x"}}}},"outputs":[{{"src":"s","action":"read","val":{value}}}]}}]}}}}"#
                    ),
                };
                let serde_ok = super::tests::reference(&line).is_ok();
                match super::scan(&line) {
                    Some(fast) => assert_eq!(
                        Ok(super::tests::summary(&fast)),
                        super::tests::reference(&line),
                        "line: {line}"
                    ),
                    None => assert!(
                        !serde_ok || !plain(line.as_bytes()) || has_exponent(&line),
                        "valid plain line left to serde: {line}"
                    ),
                }
                scanned += usize::from(super::scan(&line).is_some());
            }
        }
        assert!(scanned >= 12, "only {scanned} lines scanned");
    }
}
