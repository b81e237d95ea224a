//! Decoding located YAML into typed values, collecting every error instead of stopping at the first.

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::suggest;
use crate::yaml::{Span, Value, Yaml, is_bool_text, is_null_text, is_number_text, shorten};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// Marker: the error has been recorded in the [`Decoder`]; the caller only has to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reported;

/// Result of decoding one value.
pub(crate) type DResult<T> = Result<T, Reported>;

/// A type that can be read from a located YAML node.
pub(crate) trait Decode: Sized {
    /// Reads the value, recording problems in `d`.
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self>;
}

/// A value type parsed from a YAML scalar through [`FromStr`], whose error message explains the
/// problem; `EXPECTED` completes "expected ..." in the hint.
pub(crate) trait ScalarValue: FromStr<Err: std::fmt::Display> {
    /// What a valid value looks like, e.g. "a memory size such as `4GiB`".
    const EXPECTED: &'static str;
}

/// Collects diagnostics while decoding the documents of one file, and remembers where each
/// decoded value came from (by path, e.g. `spec.network[0].gateway`) for later cross-checks.
pub(crate) struct Decoder<'a> {
    pub source: &'a SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    path: Vec<String>,
    spans: HashMap<String, Span>,
}

/// The fields of a YAML mapping, checked against the names a type knows.
pub(crate) struct Fields<'y> {
    span: Span,
    entries: Vec<(&'y str, &'y Yaml)>,
    /// Known names that an unknown key was taken for ("did you mean"): not reported again as missing.
    suggested: Vec<String>,
}

impl<'y> Fields<'y> {
    fn get(&self, key: &str) -> Option<&'y Yaml> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// Whether the key is present with a non-null value.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_null())
    }
}

impl<'a> Decoder<'a> {
    pub fn new(source: &'a SourceFile) -> Self {
        Decoder {
            source,
            diagnostics: Vec::new(),
            path: Vec::new(),
            spans: HashMap::new(),
        }
    }

    /// Takes the recorded value spans (path → span) and starts a fresh table.
    pub fn take_spans(&mut self) -> HashMap<String, Span> {
        std::mem::take(&mut self.spans)
    }

    /// The current path, e.g. `spec.resources`; empty at the document root.
    pub fn path(&self) -> String {
        self.path.join("").trim_start_matches('.').to_string()
    }

    fn path_with(&self, key: &str) -> String {
        let p = self.path();
        if p.is_empty() {
            key.to_string()
        } else {
            format!("{p}.{key}")
        }
    }

    /// Records an error at `span`.
    pub fn error(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Reported {
        self.diagnostics
            .push(self.source.diagnostic(span, message, help));
        Reported
    }

    /// Records a type error: expected `expected`, found what `y` is.
    pub fn type_error(&mut self, y: &Yaml, expected: &str) -> Reported {
        let at = self.path();
        let message = if at.is_empty() {
            format!("expected {expected}, found {}", y.describe())
        } else {
            format!("`{at}`: expected {expected}, found {}", y.describe())
        };
        let help = if expected.starts_with("a list") {
            "write a list: `[a, b]`, or one `- item` per line".to_string()
        } else if expected.starts_with("a mapping") {
            "write a mapping: `{key: value}`, or indented `key: value` lines".to_string()
        } else if expected.starts_with("an integer") {
            "write a whole number, without quotes".to_string()
        } else if expected.starts_with("`true`") {
            "write `true` or `false` (`yes`/`no` are strings in YAML 1.2)".to_string()
        } else {
            format!("expected {expected}")
        };
        self.error(y.span, message, Some(help))
    }

    fn with_segment<T>(&mut self, segment: String, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment);
        let out = f(self);
        self.path.pop();
        out
    }

    fn decode_at<T: Decode>(&mut self, segment: String, y: &Yaml) -> DResult<T> {
        self.decode_with(segment, y, |d, v| T::decode(v, d))
    }

    fn decode_with<T>(
        &mut self,
        segment: String,
        y: &Yaml,
        f: impl FnOnce(&mut Self, &Yaml) -> DResult<T>,
    ) -> DResult<T> {
        self.with_segment(segment, |d| {
            d.spans.insert(d.path(), y.span);
            f(d, y)
        })
    }

    /// An integer in `min..=max` that fits a `u16`.
    pub fn u16_in(&mut self, y: &Yaml, min: u16, max: u16) -> DResult<u16> {
        let n = self.integer(y, u64::from(min), u64::from(max))?;
        u16::try_from(n).map_err(|_| Reported)
    }

    /// Checks that `y` is a mapping whose keys are all in `known`; reports unknown keys (with a
    /// "did you mean"), non-string keys and duplicate keys, then goes on with the known fields so
    /// that errors inside them are reported too (the document stays invalid either way).
    pub fn mapping<'y>(&mut self, y: &'y Yaml, known: &[&str]) -> DResult<Fields<'y>> {
        let Value::Map(entries) = &y.value else {
            return Err(self.type_error(y, "a mapping"));
        };
        let mut fields = Fields {
            span: y.span,
            entries: Vec::new(),
            suggested: Vec::new(),
        };
        for (k, v) in entries {
            let Value::Scalar { text: key, .. } = &k.value else {
                self.error(
                    k.span,
                    "mapping keys must be strings",
                    Some("use a plain word as key".to_string()),
                );
                continue;
            };
            if fields.get(key).is_some() {
                let message = format!("duplicate field `{}`", self.path_with(key));
                self.error(k.span, message, Some("remove one of the two".to_string()));
                continue;
            }
            if !known.contains(&key.as_str()) {
                let where_ = self.path();
                let message = if where_.is_empty() {
                    format!("unknown field `{}`", shorten(key))
                } else {
                    format!("unknown field `{}` in `{where_}`", shorten(key))
                };
                if let Some(c) = suggest::closest(key, known.iter().copied()) {
                    fields.suggested.push(c.to_string());
                }
                let help = suggest::help_for(key, known, "fields");
                self.error(k.span, message, Some(help));
                continue;
            }
            fields.entries.push((key.as_str(), v));
        }
        Ok(fields)
    }

    /// A required field; a missing or null value is reported at the mapping.
    pub fn required<T: Decode>(&mut self, m: &Fields<'_>, key: &str) -> DResult<T> {
        self.required_with(m, key, |d, v| T::decode(v, d))
    }

    /// A required field read by `f` (for values with extra limits, such as ranged integers).
    pub fn required_with<T>(
        &mut self,
        m: &Fields<'_>,
        key: &str,
        f: impl FnOnce(&mut Self, &Yaml) -> DResult<T>,
    ) -> DResult<T> {
        match m.get(key) {
            Some(v) if !v.is_null() => self.decode_with(format!(".{key}"), v, f),
            Some(v) => {
                let message = format!("field `{}` has no value", self.path_with(key));
                Err(self.error(v.span, message, Some(format!("give `{key}` a value"))))
            }
            None if m.suggested.iter().any(|k| k == key) => Err(Reported),
            None => {
                let where_ = self.path();
                let message = if where_.is_empty() {
                    format!("missing field `{key}`")
                } else {
                    format!("missing field `{key}` in `{where_}`")
                };
                Err(self.error(m.span, message, Some(format!("add `{key}:`"))))
            }
        }
    }

    /// An optional field; absent or null gives `None`.
    pub fn optional<T: Decode>(&mut self, m: &Fields<'_>, key: &str) -> DResult<Option<T>> {
        self.optional_with(m, key, |d, v| T::decode(v, d))
    }

    /// An optional field read by `f`.
    pub fn optional_with<T>(
        &mut self,
        m: &Fields<'_>,
        key: &str,
        f: impl FnOnce(&mut Self, &Yaml) -> DResult<T>,
    ) -> DResult<Option<T>> {
        match m.get(key) {
            Some(v) if !v.is_null() => self.decode_with(format!(".{key}"), v, f).map(Some),
            _ => Ok(None),
        }
    }

    /// The span of a value decoded under the current path (`rel` like `gateway` or
    /// `network[0].address`), if it was seen.
    pub fn span_of(&self, rel: &str) -> Option<Span> {
        self.spans.get(&self.path_with(rel)).copied()
    }

    /// An optional field with a default.
    pub fn or_default<T: Decode + Default>(&mut self, m: &Fields<'_>, key: &str) -> DResult<T> {
        Ok(self.optional(m, key)?.unwrap_or_default())
    }

    /// The text of a scalar that must be a string (quoted, or plain and not null/bool/number).
    pub fn string<'y>(&mut self, y: &'y Yaml) -> DResult<&'y str> {
        match &y.value {
            Value::Scalar { text, plain: false } => Ok(text),
            Value::Scalar { text, plain: true }
                if !is_null_text(text) && !is_bool_text(text) && !is_number_text(text) =>
            {
                Ok(text)
            }
            Value::Scalar { text, plain: true } if !is_null_text(text) => {
                let message = format!(
                    "`{}`: expected a string, found {}",
                    self.path(),
                    y.describe()
                );
                Err(self.error(y.span, message, Some(format!("quote it: \"{text}\""))))
            }
            _ => Err(self.type_error(y, "a string")),
        }
    }

    /// The text of any scalar (for values parsed by [`FromStr`], where `123` may be valid).
    pub fn scalar_text<'y>(&mut self, y: &'y Yaml, expected: &str) -> DResult<&'y str> {
        match &y.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => Err(self.type_error(y, expected)),
        }
    }

    /// Parses a scalar with [`FromStr`], reporting its error with the type's expectation as hint.
    pub fn parse_scalar<T: ScalarValue>(&mut self, y: &Yaml) -> DResult<T> {
        let text = self.scalar_text(y, T::EXPECTED)?;
        text.parse::<T>().map_err(|e| {
            let message = format!("`{}`: {e}", self.path());
            self.error(y.span, message, Some(format!("expected {}", T::EXPECTED)))
        })
    }

    /// One of a fixed set of words (an enum), with "did you mean" on a miss.
    pub fn choice<T: Copy>(&mut self, y: &Yaml, choices: &[(&str, T)]) -> DResult<T> {
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let text = self.scalar_text(y, &format!("one of {}", names.join(", ")))?;
        match choices.iter().find(|(n, _)| *n == text) {
            Some((_, v)) => Ok(*v),
            None => {
                let message = format!("`{}`: unknown value `{}`", self.path(), shorten(text));
                let help = suggest::help_for(text, &names, "values");
                Err(self.error(y.span, message, Some(help)))
            }
        }
    }

    /// An unsigned integer within `min..=max`.
    pub fn integer(&mut self, y: &Yaml, min: u64, max: u64) -> DResult<u64> {
        let expected = format!("an integer from {min} to {max}");
        let text = match &y.value {
            Value::Scalar { text, plain: true } if is_number_text(text) => text,
            _ => return Err(self.type_error(y, &expected)),
        };
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => {
                let message = format!("`{}`: {text} is out of range", self.path());
                Err(self.error(y.span, message, Some(format!("expected {expected}"))))
            }
        }
    }
}

impl Decode for String {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.string(y).map(str::to_string)
    }
}

impl Decode for bool {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        match &y.value {
            Value::Scalar { text, plain: true } if is_bool_text(text) => {
                Ok(text.eq_ignore_ascii_case("true"))
            }
            _ => Err(d.type_error(y, "`true` or `false`")),
        }
    }
}

impl Decode for u16 {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let n = d.integer(y, 0, u64::from(u16::MAX))?;
        u16::try_from(n).map_err(|_| Reported)
    }
}

impl Decode for u32 {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let n = d.integer(y, 0, u64::from(u32::MAX))?;
        u32::try_from(n).map_err(|_| Reported)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let Value::Seq(items) = &y.value else {
            return Err(d.type_error(y, "a list"));
        };
        let mut out = Vec::with_capacity(items.len());
        let mut failed = false;
        for (i, item) in items.iter().enumerate() {
            match d.decode_at(format!("[{i}]"), item) {
                Ok(v) => out.push(v),
                Err(Reported) => failed = true,
            }
        }
        if failed { Err(Reported) } else { Ok(out) }
    }
}

impl<V: Decode> Decode for BTreeMap<String, V> {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let Value::Map(entries) = &y.value else {
            return Err(d.type_error(y, "a mapping"));
        };
        let mut out = BTreeMap::new();
        let mut failed = false;
        for (k, v) in entries {
            let key = match d.string(k) {
                Ok(key) => key.to_string(),
                Err(Reported) => {
                    failed = true;
                    continue;
                }
            };
            if out.contains_key(&key) {
                let message = format!("duplicate key `{key}` in `{}`", d.path());
                d.error(k.span, message, Some("remove one of the two".to_string()));
                failed = true;
                continue;
            }
            match d.decode_at(format!(".{key}"), v) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(Reported) => failed = true,
            }
        }
        if failed { Err(Reported) } else { Ok(out) }
    }
}

/// Implements [`Decode`] for a [`ScalarValue`] type.
macro_rules! decode_scalar {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::decode::Decode for $t {
            fn decode(
                y: &$crate::yaml::Yaml,
                d: &mut $crate::decode::Decoder<'_>,
            ) -> $crate::decode::DResult<Self> {
                d.parse_scalar::<$t>(y)
            }
        }
    )*};
}
pub(crate) use decode_scalar;
