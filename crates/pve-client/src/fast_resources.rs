//! A single-pass decoder for the common shape of `GET /cluster/resources?type=vm` answers.
//!
//! serde_json alone needs about twice the 10 ms budget for 10,000 guests on the reference machine
//! (merely scanning the body into `IgnoredAny` takes two thirds of it; see docs/benchmarks.md).
//! This scanner handles the shape PVE really sends (one `data` array of flat objects whose values
//! are strings without escapes, non-negative numbers, booleans or `null`) and converts every field
//! with the same lenient rules as the serde path: it feeds the very same visitors, so numbers as
//! strings, 0/1 booleans, absent and unknown fields behave identically. Strings and integers are
//! scanned eight bytes at a time; keys are matched as one integer each. Fractional numbers are
//! parsed with `str::parse::<f64>` (correctly rounded), where serde_json's default parser may
//! differ in the last bit.
//!
//! It never decides an error: on anything it does not handle (escapes, nested values, negative
//! numbers, duplicate or missing fields, invalid JSON, a value the lenient rules reject) it
//! returns `None` and the caller decodes the body again with serde_json, which produces the
//! result or the error exactly as before.

use serde::de::Visitor;
use serde::de::value::Error as ValueError;

use crate::ids::{NodeName, VmId};
use crate::lenient::{BoolVisitor, F64Visitor, StringVisitor, U64Visitor};
use crate::types::{ClusterVm, GuestType};

/// One JSON scalar, borrowed from the body.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    /// Feeds the scalar to a visitor the way serde_json would (`deserialize_any`).
    fn visit<'de, V: Visitor<'de>>(self, v: V) -> Option<V::Value> {
        let r: Result<V::Value, ValueError> = match self {
            Scalar::Str(s) => v.visit_str(s),
            Scalar::U64(n) => v.visit_u64(n),
            Scalar::F64(f) => v.visit_f64(f),
            Scalar::Bool(b) => v.visit_bool(b),
            Scalar::Null => v.visit_unit(),
        };
        r.ok()
    }

    /// A plain serde `String` (no numbers accepted).
    fn string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.to_owned()),
            _ => None,
        }
    }

    /// A plain serde `Option<String>`.
    fn opt_string(self) -> Option<Option<String>> {
        match self {
            Scalar::Str(s) => Some(Some(s.to_owned())),
            Scalar::Null => Some(None),
            _ => None,
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        let mut i = self.i;
        while self
            .b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        {
            i += 1;
        }
        self.i = i;
    }

    /// The next non-whitespace byte, consumed. PVE sends no whitespace, so the common case is
    /// one comparison (whitespace bytes are all below `!`).
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let mut c = *self.b.get(self.i)?;
        if c <= b' ' {
            self.ws();
            c = *self.b.get(self.i)?;
        }
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// The rest of a string whose opening quote was consumed. `None` on escapes, control
    /// characters or a missing closing quote.
    #[inline(always)]
    fn string_body(&mut self) -> Option<&'a str> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        // Eight bytes at a time: the first byte that is `"`, `\\` or below 0x20 ends the run.
        loop {
            let Some(chunk) = b.get(i..i + 8) else {
                while b
                    .get(i)
                    .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                {
                    i += 1;
                }
                break;
            };
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let hits = special_bytes(u64::from_le_bytes(word));
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let s = self.text.get(start..i)?;
        self.i = i + 1;
        Some(s)
    }

    #[inline(always)]
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let k = self.string_body()?;
        self.eat(b':')?;
        Some(k)
    }

    /// A key as [`key_word`] would give it, read straight from the body (no copy through a
    /// buffer, which stalls on store forwarding).
    #[inline(always)]
    fn key_word(&mut self) -> Option<u64> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.string_body()?.len();
        self.eat(b':')?;
        if len > 8 {
            return Some(0);
        }
        let Some(chunk) = self.b.get(start..start + 8) else {
            return self.text.get(start..start + len).map(key_word);
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        Some(if len == 8 {
            word
        } else {
            word & ((1u64 << (8 * len)) - 1)
        })
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.i.checked_add(rest.len())?;
        (self.b.get(self.i..end)? == rest).then(|| self.i = end)
    }

    /// A non-negative JSON number whose first digit was consumed (at `self.i - 1`). Integers of
    /// more than 19 digits are left to serde_json.
    #[inline(always)]
    fn number(&mut self, first: u8) -> Option<Scalar<'a>> {
        let b = self.b;
        let start = self.i - 1;
        let mut i = self.i;
        let mut n = u64::from(first - b'0');
        // Eight bytes at a time while they last, then byte by byte.
        while let Some(chunk) = b.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let (k, value) = leading_digits(u64::from_le_bytes(word));
            n = n.wrapping_mul(POW10[k]).wrapping_add(value);
            i += k;
            if k < 8 || i - start > 19 {
                break;
            }
        }
        if b.len() < i + 8 {
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                n = n.wrapping_mul(10).wrapping_add(u64::from(d));
                i += 1;
            }
        }
        let int_len = i - start;
        if int_len > 19 || (first == b'0' && int_len > 1) {
            return None; // possible overflow, or a leading zero (invalid JSON)
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i = digits(b, i + 1)?;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = digits(b, i)?;
        }
        self.i = i;
        if integer {
            return Some(Scalar::U64(n));
        }
        let f: f64 = self.text.get(start..i)?.parse().ok()?;
        f.is_finite().then_some(Scalar::F64(f))
    }

    /// A scalar value; `None` for objects, arrays, negative numbers and invalid JSON.
    #[inline(always)]
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.next()? {
            b'"' => self.string_body().map(Scalar::Str),
            c @ b'0'..=b'9' => self.number(c),
            b't' => self.literal(b"rue").map(|()| Scalar::Bool(true)),
            b'f' => self.literal(b"alse").map(|()| Scalar::Bool(false)),
            b'n' => self.literal(b"ull").map(|()| Scalar::Null),
            _ => None,
        }
    }
}

/// The index after one or more digits starting at `i`.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    (i > start).then_some(i)
}

const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// How many of the 8 bytes of `w` (first byte lowest) are leading ASCII digits, and their value.
/// Relies on the body being UTF-8 (no byte above 0xF7), so that adding 6 never carries.
#[inline(always)]
fn leading_digits(w: u64) -> (usize, u64) {
    let high_nibble_not_3 = (w & (ONES * 0xF0)) ^ (ONES * 0x30);
    let above_9 = (w.wrapping_add(ONES * 0x06) & (ONES * 0xF0)) ^ (ONES * 0x30);
    let bad = high_nibble_not_3 | above_9;
    // High bit of each byte of `bad` that is non-zero (exact: no carries across bytes).
    let flags = (((bad & (ONES * 0x7F)) + ONES * 0x7F) | bad) & HIGHS;
    let k = (flags.trailing_zeros() / 8) as usize;
    if k == 0 {
        return (0, 0);
    }
    // Keep the k digits, moved to the top so that the bytes below read as leading zeros.
    let digits = w.wrapping_sub(ONES * 0x30) << (8 * (8 - k));
    // Eight digits at once (as in core's dec2flt).
    let v = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let lo = v & 0x0000_00FF_0000_00FF;
    let hi = (v >> 16) & 0x0000_00FF_0000_00FF;
    let v = lo
        .wrapping_mul(0x000F_4240_0000_0064)
        .wrapping_add(hi.wrapping_mul(0x0000_2710_0000_0001))
        >> 32;
    (k, v)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in (at least) the lowest byte of `w` that is `"`, `\\` or a control character.
/// Bytes above the first hit may be flagged spuriously (borrows), so only the lowest flag counts.
#[inline(always)]
fn special_bytes(w: u64) -> u64 {
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero_in(w ^ (ONES * u64::from(b'"')))
        | zero_in(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// Decodes `{"data":[{...},...]}`; `None` means "use the serde path".
pub(crate) fn cluster_resources(text: &str, capacity: usize) -> Option<Vec<ClusterVm>> {
    let mut c = Cursor {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    c.eat(b'{')?;
    let mut data = None;
    loop {
        let key = c.key()?;
        if key == "data" {
            if data.is_some() {
                return None;
            }
            data = Some(vm_array(&mut c, capacity)?);
        } else {
            c.scalar()?;
        }
        match c.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    c.ws();
    if c.i != c.b.len() {
        return None;
    }
    data
}

fn vm_array(c: &mut Cursor<'_>, capacity: usize) -> Option<Vec<ClusterVm>> {
    c.eat(b'[')?;
    let mut out = Vec::with_capacity(capacity);
    c.ws();
    if c.b.get(c.i) == Some(&b']') {
        c.i += 1;
        return Some(out);
    }
    // Node names repeat (a cluster has a handful of nodes): validate each distinct one once.
    let mut nodes: Vec<NodeName> = Vec::new();
    loop {
        out.push(vm(c, &mut nodes)?);
        match c.next()? {
            b',' => {}
            b']' => return Some(out),
            _ => return None,
        }
    }
}

fn node_name(s: &str, seen: &mut Vec<NodeName>) -> Option<NodeName> {
    if let Some(n) = seen.iter().find(|n| n.as_str() == s) {
        return Some(n.clone());
    }
    let n = NodeName::from_str_slice(s).ok()?;
    if seen.len() < 64 {
        seen.push(n.clone());
    }
    Some(n)
}

fn guest_type(s: Scalar<'_>) -> Option<GuestType> {
    match s {
        Scalar::Str("qemu") => Some(GuestType::Qemu),
        Scalar::Str("lxc") => Some(GuestType::Lxc),
        Scalar::Str(_) => Some(GuestType::Other),
        _ => None,
    }
}

/// A key of at most 8 bytes as a little-endian word (0-padded; keys cannot hold raw NUL bytes),
/// so that field dispatch is one integer `match`; longer keys give 0 (no field).
#[inline(always)]
fn key_word(key: &str) -> u64 {
    let k = key.as_bytes();
    if k.len() > 8 {
        return 0;
    }
    let mut word = [0u8; 8];
    word[..k.len()].copy_from_slice(k);
    u64::from_le_bytes(word)
}

const fn pack(k: &[u8]) -> u64 {
    let mut w = 0;
    let mut i = 0;
    while i < k.len() {
        w |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

const K_VMID: u64 = pack(b"vmid");
const K_NODE: u64 = pack(b"node");
const K_TYPE: u64 = pack(b"type");
const K_STATUS: u64 = pack(b"status");
const K_NAME: u64 = pack(b"name");
const K_TEMPLATE: u64 = pack(b"template");
const K_TAGS: u64 = pack(b"tags");
const K_LOCK: u64 = pack(b"lock");
const K_POOL: u64 = pack(b"pool");
const K_HASTATE: u64 = pack(b"hastate");
const K_UPTIME: u64 = pack(b"uptime");
const K_CPU: u64 = pack(b"cpu");
const K_MAXCPU: u64 = pack(b"maxcpu");
const K_MEM: u64 = pack(b"mem");
const K_MAXMEM: u64 = pack(b"maxmem");
const K_MAXDISK: u64 = pack(b"maxdisk");
const K_NETIN: u64 = pack(b"netin");
const K_NETOUT: u64 = pack(b"netout");

/// Marks field `bit` as seen; a second occurrence is a duplicate (an error for serde: let it
/// say so).
#[inline(always)]
fn first_time(seen: &mut u32, bit: u32) -> Option<()> {
    let mask = 1 << bit;
    if *seen & mask != 0 {
        return None;
    }
    *seen |= mask;
    Some(())
}

fn vm(c: &mut Cursor<'_>, nodes: &mut Vec<NodeName>) -> Option<ClusterVm> {
    c.eat(b'{')?;
    let mut seen = 0u32;
    let mut vmid = None;
    let mut node = None;
    let mut kind = None;
    let mut status = None;
    let mut name = None;
    let mut template = false;
    let mut tags_raw = None;
    let mut lock = None;
    let mut pool = None;
    let mut hastate = None;
    let mut uptime = None;
    let mut cpu = None;
    let mut maxcpu = None;
    let mut mem = None;
    let mut maxmem = None;
    let mut maxdisk = None;
    let mut netin = None;
    let mut netout = None;

    c.ws();
    if c.b.get(c.i) == Some(&b'}') {
        c.i += 1;
    } else {
        loop {
            let key = c.key_word()?;
            let v = c.scalar()?;
            match key {
                K_VMID => {
                    first_time(&mut seen, 0)?;
                    vmid = Some(match v {
                        Scalar::U64(n) => VmId::new(u32::try_from(n).ok()?).ok()?,
                        Scalar::Str(s) => s.parse().ok()?,
                        _ => return None,
                    });
                }
                K_NODE => {
                    first_time(&mut seen, 1)?;
                    node = Some(match v {
                        Scalar::Str(s) => node_name(s, nodes)?,
                        _ => return None,
                    });
                }
                K_TYPE => {
                    first_time(&mut seen, 2)?;
                    kind = Some(guest_type(v)?);
                }
                K_STATUS => {
                    first_time(&mut seen, 3)?;
                    status = Some(v.string()?);
                }
                K_NAME => {
                    first_time(&mut seen, 4)?;
                    name = v.visit(StringVisitor)?;
                }
                K_TEMPLATE => {
                    first_time(&mut seen, 5)?;
                    template = v.visit(BoolVisitor)?;
                }
                K_TAGS => {
                    first_time(&mut seen, 6)?;
                    tags_raw = v.opt_string()?;
                }
                K_LOCK => {
                    first_time(&mut seen, 7)?;
                    lock = v.opt_string()?;
                }
                K_POOL => {
                    first_time(&mut seen, 8)?;
                    pool = v.opt_string()?;
                }
                K_HASTATE => {
                    first_time(&mut seen, 9)?;
                    hastate = v.opt_string()?;
                }
                K_UPTIME => {
                    first_time(&mut seen, 10)?;
                    uptime = v.visit(U64Visitor)?;
                }
                K_CPU => {
                    first_time(&mut seen, 11)?;
                    cpu = v.visit(F64Visitor)?;
                }
                K_MAXCPU => {
                    first_time(&mut seen, 12)?;
                    maxcpu = v.visit(F64Visitor)?;
                }
                K_MEM => {
                    first_time(&mut seen, 13)?;
                    mem = v.visit(U64Visitor)?;
                }
                K_MAXMEM => {
                    first_time(&mut seen, 14)?;
                    maxmem = v.visit(U64Visitor)?;
                }
                K_MAXDISK => {
                    first_time(&mut seen, 15)?;
                    maxdisk = v.visit(U64Visitor)?;
                }
                K_NETIN => {
                    first_time(&mut seen, 16)?;
                    netin = v.visit(U64Visitor)?;
                }
                K_NETOUT => {
                    first_time(&mut seen, 17)?;
                    netout = v.visit(U64Visitor)?;
                }
                _ => {}
            }
            match c.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    Some(ClusterVm {
        vmid: vmid?,
        node: node?,
        kind: kind?,
        status: status.unwrap_or_else(|| "unknown".to_owned()),
        name,
        template,
        tags_raw,
        lock,
        pool,
        hastate,
        uptime,
        cpu,
        maxcpu,
        mem,
        maxmem,
        maxdisk,
        netin,
        netout,
    })
}

#[cfg(test)]
#[path = "../benches/support/resources_body.rs"]
mod resources_body;

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_path(body: &str) -> Result<Vec<ClusterVm>, serde_json::Error> {
        crate::decode::cluster_resources_serde(body, 4)
    }

    /// The fast path accepts `body` and agrees with the serde path.
    #[track_caller]
    fn same_as_serde(body: &str) -> Vec<ClusterVm> {
        let fast = cluster_resources(body, 4).expect("fast path accepts the body");
        let slow = serde_path(body).expect("serde path decodes the body");
        assert_eq!(fast, slow, "{body}");
        fast
    }

    /// The fast path declines `body`; the public function still answers like serde.
    #[track_caller]
    fn left_to_serde(body: &str) {
        assert!(
            cluster_resources(body, 4).is_none(),
            "fast path took {body}"
        );
        let public = crate::decode::cluster_resources(body.as_bytes()).map_err(|e| e.to_string());
        let slow = serde_path(body).map_err(|e| e.to_string());
        assert_eq!(public, slow, "{body}");
    }

    fn one(entry: &str) -> String {
        format!(r#"{{"data":[{entry}]}}"#)
    }

    #[test]
    fn bench_body_takes_the_fast_path_and_matches_serde() {
        let body = resources_body::cluster_resources_body(1_000);
        assert_eq!(same_as_serde(&body).len(), 1_000);
        assert!(same_as_serde(r#"{"data":[]}"#).is_empty());
    }

    #[test]
    fn numbers_as_strings_booleans_as_0_1_and_nulls_match_serde() {
        let vms = same_as_serde(&one(
            r#"{"vmid":"101","node":"pve1","type":"qemu","status":"running","name":123,"template":"1","uptime":"3600","cpu":"0.25","maxcpu":"2","mem":"1024","maxmem":2147483648.0,"maxdisk":"","netin":null,"netout":1.5e3,"tags":null,"lock":null,"pool":"p","hastate":"started"}"#,
        ));
        let vm = &vms[0];
        assert_eq!(vm.vmid.get(), 101);
        assert_eq!(vm.name.as_deref(), Some("123"));
        assert!(vm.template);
        assert_eq!(
            (vm.uptime, vm.mem, vm.maxmem),
            (Some(3600), Some(1024), Some(2_147_483_648))
        );
        assert_eq!((vm.maxdisk, vm.netin, vm.netout), (None, None, Some(1500)));
        assert_eq!((vm.cpu, vm.maxcpu), (Some(0.25), Some(2.0)));
        for template in [
            "1", "0", "true", "false", r#""1""#, r#""0""#, r#""""#, "null", "0.0",
        ] {
            same_as_serde(&one(&format!(
                r#"{{"vmid":100,"node":"n","type":"lxc","template":{template}}}"#
            )));
        }
    }

    #[test]
    fn absent_extra_and_unknown_fields_match_serde() {
        let vms = same_as_serde(
            " {\n \"data\" : [ {\"vmid\":4103 , \"node\":\"pve-a-1\",\"type\":\"ovz\",\"id\":\"qemu/4103\",\"x\":true,\"diskwrite\":0,\"cgroup-mode\":2,\"memhost\":1} , {\"vmid\":100,\"node\":\"pve1\",\"type\":\"qemu\"}\t] , \"total\" : 2 } \n",
        );
        assert_eq!(vms[0].kind, GuestType::Other);
        assert!(vms[0].is_unsampled());
        assert_eq!(vms[0].node.as_str(), "pve-a-1");
        assert_eq!(vms[1].hastate, None);
    }

    #[test]
    fn unusual_input_is_left_to_serde() {
        for entry in [
            r#"{"vmid":100,"node":"pve1","type":"qemu","name":"a\"b"}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","future":{"x":[1]}}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","futur\u0065":1}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":-1}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":123456789012345678901}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":012}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":1.}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":1e999}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netin":"lots"}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","vmid":101}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","netout":1,"netout":2}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","name":"a","name":null}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","type":"lxc"}"#,
            r#"{"vmid":99,"node":"pve1","type":"qemu"}"#,
            r#"{"vmid":100,"node":"pve_1","type":"qemu"}"#,
            r#"{"vmid":100,"node":"pve1"}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","status":null}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","tags":5}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","template":"maybe"}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","name":true}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu",}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu"} x"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","name":"tab	in"}"#,
            r#"{"vmid":100,"node":"pve1","type":"qemu","uptime":tru}"#,
        ] {
            left_to_serde(&one(entry));
        }
        for body in [
            "",
            "{}",
            r#"{"data":null}"#,
            r#"{"data":[],"data":[]}"#,
            r#"{"data":[]} trailing"#,
            r#"{"data":[],"extra":{"nested":1}}"#,
            r#"{"data":[{"vmid":100,"node":"pve1","type":"qemu"}"#,
            r#"{"data":[{"vmid":100,"node":"pve1","type":"qemu","name":"unterminated"#,
        ] {
            left_to_serde(body);
        }
    }

    #[test]
    fn long_and_non_ascii_strings_match_serde() {
        let name = "ß-é-漢字-".repeat(7);
        let vms = same_as_serde(&one(&format!(
            r#"{{"vmid":100,"node":"pve1","type":"qemu","name":"{name}","tags":"a;b;c;d;e;f;g;h;i;j;k","diskwrite":12345678901234567}}"#
        )));
        assert_eq!(vms[0].name.as_deref(), Some(name.as_str()));
        assert_eq!(vms[0].tags().len(), 11);
    }

    #[test]
    fn special_bytes_finds_the_first_quote_backslash_or_control_byte() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        let fillers = [
            b'a', b' ', b'~', 0x7F, 0x80, 0xC3, 0xF7, b'!', b'#', b'[', b']',
        ];
        for hit in 0u8..=255 {
            for pos in 0..8 {
                for &fill in &fillers {
                    let mut bytes = [fill; 8];
                    bytes[pos] = hit;
                    for (after, slot) in bytes.iter_mut().enumerate().skip(pos + 1) {
                        *slot = if after % 2 == 0 { b'"' } else { 0x01 };
                    }
                    let want = bytes.iter().position(|&b| special(b));
                    let flags = special_bytes(u64::from_le_bytes(bytes));
                    let got = (flags != 0).then(|| (flags.trailing_zeros() / 8) as usize);
                    assert_eq!(got, want, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn leading_digits_counts_and_converts() {
        let tails: [&[u8]; 6] = [b",", b"}", b".", b"e", b"\"", b"\xf7"];
        for k in 0..=8 {
            for tail in tails {
                for seed in [0u64, 1, 7, 12_345_678, 99_999_999, 31_415_926] {
                    let digits = format!("{:08}", seed % 100_000_000);
                    let mut bytes = [b'x'; 8];
                    bytes[..k].copy_from_slice(&digits.as_bytes()[..k]);
                    for (j, slot) in bytes.iter_mut().enumerate().skip(k) {
                        *slot = tail[0].wrapping_add(j as u8 % 2);
                    }
                    let want_k = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
                    let want_v = digits[..want_k].parse::<u64>().unwrap_or(0);
                    assert_eq!(
                        leading_digits(u64::from_le_bytes(bytes)),
                        (want_k, want_v),
                        "{bytes:?}"
                    );
                }
            }
        }
    }
}
