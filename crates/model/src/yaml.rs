//! A located YAML tree: every node keeps the line and column it came from.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};
use std::collections::HashMap;

/// Upper bound on nodes produced by alias expansion in one file (guards against
/// "billion laughs" documents).
const MAX_ALIAS_NODES: usize = 10_000;

/// A position in a source file, both numbers 1-based, columns counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A range in a source file; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_saphyr(span: saphyr_parser::Span) -> Self {
        Span {
            start: Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            },
            end: Pos {
                line: span.end.line(),
                col: span.end.col() + 1,
            },
        }
    }

    /// Width of the span on its first line (at least 1, so a caret is always drawn).
    pub fn width_on_first_line(&self) -> usize {
        if self.end.line == self.start.line && self.end.col > self.start.col {
            self.end.col - self.start.col
        } else {
            1
        }
    }
}

/// One node of the tree.
#[derive(Debug, Clone)]
pub(crate) struct Yaml {
    pub span: Span,
    pub value: Value,
}

/// The content of a node.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A scalar; `plain` is false for quoted, block and `!!str` scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

impl Yaml {
    /// Whether this node is YAML null (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null_text(text))
    }

    /// A short description of what this node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar { text, plain } => {
                if *plain && is_null_text(text) {
                    "nothing (null)".to_string()
                } else if *plain && is_bool_text(text) {
                    format!("the boolean `{text}`")
                } else if *plain && is_number_text(text) {
                    format!("the number `{text}`")
                } else {
                    format!("the string `{}`", shorten(text))
                }
            }
        }
    }
}

/// Cuts long text for messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    }
}

pub(crate) fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

pub(crate) fn is_bool_text(text: &str) -> bool {
    matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE")
}

/// YAML 1.2 core-schema numbers (ints, octal, hex, floats, infinities, NaN).
pub(crate) fn is_number_text(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(t, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c));
    }
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = {
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (mantissa, None),
        };
        let int_ok = int.chars().all(|c| c.is_ascii_digit());
        let frac_ok = frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit()));
        int_ok && frac_ok && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()))
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// A problem found while reading the YAML text itself.
#[derive(Debug, Clone)]
pub(crate) struct YamlIssue {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// The result of reading one file: the documents that could be read, and the problems found.
/// After a syntax error the rest of the file is not read.
#[derive(Debug, Default)]
pub(crate) struct ParsedFile {
    pub documents: Vec<Yaml>,
    pub issues: Vec<YamlIssue>,
    pub syntax_error: bool,
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Yaml>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Yaml, Yaml)>,
        pending_key: Option<Yaml>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Yaml>,
    alias_nodes: usize,
    document: Option<Yaml>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            document: None,
        }
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn push_node(&mut self, node: Yaml, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.document = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

fn count_nodes(y: &Yaml) -> usize {
    match &y.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

fn syntax_issue(err: &ScanError) -> YamlIssue {
    let m = err.marker();
    let pos = Pos {
        line: m.line(),
        col: m.col() + 1,
    };
    YamlIssue {
        span: Span {
            start: pos,
            end: pos,
        },
        message: format!("YAML syntax error: {}", err.info()),
        help: Some(
            "check indentation, quoting and that `key: value` pairs have a space after the colon"
                .to_string(),
        ),
    }
}

/// Reads every document of a (possibly multi-document) YAML text into located trees.
pub(crate) fn parse(text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder::new();
    while let Some(next) = parser.next_event() {
        let (event, raw_span) = match next {
            Ok(ev) => ev,
            Err(err) => {
                out.issues.push(syntax_issue(&err));
                out.syntax_error = true;
                return out;
            }
        };
        let span = Span::from_saphyr(raw_span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(_) => {
                b.anchors.clear();
                b.document = None;
            }
            Event::DocumentEnd => {
                if let Some(doc) = b.document.take() {
                    out.documents.push(doc);
                }
            }
            Event::Alias(id) => {
                let Some(node) = b.anchors.get(&id).cloned() else {
                    out.issues.push(YamlIssue {
                        span,
                        message: "alias refers to an unknown anchor".to_string(),
                        help: Some(
                            "define the anchor (`&name`) before using it (`*name`)".to_string(),
                        ),
                    });
                    out.syntax_error = true;
                    return out;
                };
                b.alias_nodes += count_nodes(&node);
                if b.alias_nodes > MAX_ALIAS_NODES {
                    out.issues.push(YamlIssue {
                        span,
                        message: format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        help: Some("write the values out instead of nesting aliases".to_string()),
                    });
                    out.syntax_error = true;
                    return out;
                }
                let node = Yaml { span, ..node };
                b.push_node(node, 0);
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut plain = style == ScalarStyle::Plain;
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() && tag.suffix == "str" {
                        plain = false;
                    } else {
                        out.issues.push(YamlIssue {
                            span,
                            message: format!("unsupported YAML tag `{tag}`"),
                            help: Some("remove the tag; only `!!str` is accepted".to_string()),
                        });
                    }
                }
                b.push_node(
                    Yaml {
                        span,
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain,
                        },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(tag) = tag {
                    out.issues.push(YamlIssue {
                        span,
                        message: format!("unsupported YAML tag `{tag}`"),
                        help: Some("remove the tag".to_string()),
                    });
                }
                b.stack.push(Frame::Seq {
                    span,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag {
                    out.issues.push(YamlIssue {
                        span,
                        message: format!("unsupported YAML tag `{tag}`"),
                        help: Some("remove the tag".to_string()),
                    });
                }
                b.stack.push(Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match b.stack.pop() {
                    Some(Frame::Seq {
                        span: start,
                        anchor,
                        items,
                    }) => (
                        Yaml {
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                            value: Value::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        span: start,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Yaml {
                            span: Span {
                                start: start.start,
                                end: span.end,
                            },
                            value: Value::Map(entries),
                        },
                        anchor,
                    ),
                    None => continue,
                };
                b.push_node(node.0, node.1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_recognised_like_yaml_core_schema() {
        for n in [
            "1", "-2", "+3", "1.5", ".5", "1e3", "0x1F", "0o17", ".inf", "-.inf", ".nan",
        ] {
            assert!(is_number_text(n), "{n}");
        }
        for s in ["4GiB", "1.2.3", "e3", "0x", "", ".", "v1", "10.0.10.1"] {
            assert!(!is_number_text(s), "{s}");
        }
    }

    #[test]
    fn multi_document_text_yields_each_document_with_positions() {
        let parsed = parse("a: 1\n---\nb:\n  c: x\n");
        assert!(!parsed.syntax_error);
        assert_eq!(parsed.documents.len(), 2);
        let Value::Map(entries) = &parsed.documents[1].value else {
            panic!("expected a map")
        };
        let Value::Map(inner) = &entries[0].1.value else {
            panic!("expected a map")
        };
        assert_eq!(inner[0].1.span.start, Pos { line: 4, col: 6 });
    }

    #[test]
    fn syntax_error_is_reported_with_its_position() {
        let parsed = parse("a: [1, 2\nb: 3\n");
        assert!(parsed.syntax_error);
        assert_eq!(parsed.issues.len(), 1);
    }

    #[test]
    fn aliases_are_expanded() {
        let parsed = parse("a: &x {k: v}\nb: *x\n");
        let Value::Map(entries) = &parsed.documents[0].value else {
            panic!("expected a map")
        };
        assert!(matches!(entries[1].1.value, Value::Map(_)));
    }
}
