//! A YAML document tree that keeps every node's position and every scalar's text as written.
//!
//! The typed decoders read scalars from this tree themselves, so `NO` stays the string "NO" and
//! `0800` stays "0800" wherever a string is expected: YAML 1.1 resolution never applies. A
//! validation message can also name the line and column of the value it rejects.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in a YAML source, both numbers counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, counted from 1.
    pub line: usize,
    /// Column in characters, counted from 1.
    pub column: usize,
}

/// One node of a parsed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Content of the node.
    pub kind: NodeKind,
    /// Start position in the source.
    pub position: Position,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null`, or an empty value.
    Null,
    /// A scalar with its text exactly as written, after YAML unescaping.
    Scalar(Scalar),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in source order.
    Mapping(Vec<(Node, Node)>),
}

/// A scalar's text and whether it was quoted or written as a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The text after unescaping.
    pub text: String,
    /// True for a plain (unquoted, non-block) scalar, the only kind that can mean a number,
    /// a boolean or null.
    pub plain: bool,
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// The parser's description of the problem.
    pub message: String,
    /// Position at which the parser stopped.
    pub position: Position,
}

impl Node {
    /// Returns a short name of the node's type for messages ("a mapping", "a string").
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Sequence(_) => "a sequence",
            NodeKind::Mapping(_) => "a mapping",
        }
    }

    /// Returns the scalar text, or `None` for any other node.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }

    /// Returns true for a null node.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }
}

/// Parses the first document of `source`.
///
/// Returns `Ok(None)` for a stream with no document at all (an empty file or one with only
/// comments), which callers treat differently from a document that is `null`.
pub fn parse(source: &str) -> Result<Option<Node>, YamlError> {
    let mut builder = TreeBuilder::default();
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|error| YamlError {
            message: error.info().to_string(),
            position: Position {
                line: error.marker().line(),
                column: error.marker().col() + 1,
            },
        })?;
        if builder.push(event, span)? {
            break;
        }
    }
    Ok(builder.document)
}

enum Frame {
    Sequence {
        items: Vec<Node>,
        position: Position,
        anchor: usize,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        position: Position,
        anchor: usize,
    },
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    document: Option<Node>,
    in_document: bool,
}

fn position_of(span: Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

impl TreeBuilder {
    /// Feeds one event; returns true once the first document is complete.
    fn push(&mut self, event: Event<'_>, span: Span) -> Result<bool, YamlError> {
        let position = position_of(span);
        match event {
            Event::DocumentStart(_) => {
                self.in_document = true;
            }
            Event::DocumentEnd => {
                return Ok(self.document.is_some() || self.in_document);
            }
            Event::StreamEnd => return Ok(true),
            Event::Scalar(text, style, anchor, _tag) => {
                let kind = if style == ScalarStyle::Plain && is_null_text(&text) {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    })
                };
                self.finish(Node { kind, position }, anchor);
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned().ok_or(YamlError {
                    message: format!("unknown alias (anchor id {anchor})"),
                    position,
                })?;
                self.finish(node, 0);
            }
            Event::SequenceStart(anchor, _tag) => self.stack.push(Frame::Sequence {
                items: Vec::new(),
                position,
                anchor,
            }),
            Event::MappingStart(anchor, _tag) => self.stack.push(Frame::Mapping {
                entries: Vec::new(),
                pending_key: None,
                position,
                anchor,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        items,
                        position,
                        anchor,
                    }) => (
                        Node {
                            kind: NodeKind::Sequence(items),
                            position,
                        },
                        anchor,
                    ),
                    Some(Frame::Mapping {
                        entries,
                        position,
                        anchor,
                        ..
                    }) => (
                        Node {
                            kind: NodeKind::Mapping(entries),
                            position,
                        },
                        anchor,
                    ),
                    None => {
                        return Err(YamlError {
                            message: "unbalanced end of a collection".to_string(),
                            position,
                        });
                    }
                };
                self.finish(node, anchor);
            }
            Event::StreamStart | Event::Nothing => {}
        }
        Ok(false)
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => *pending_key = Some(node),
            },
            None => self.document = Some(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_text(node: &Node) -> &str {
        &node.as_scalar().expect("scalar").text
    }

    #[test]
    fn empty_stream_has_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn scalars_keep_their_text() {
        let doc = parse("a: NO\nb: 0800\nc: '1.10'\nd: ~\n").unwrap().unwrap();
        let NodeKind::Mapping(entries) = &doc.kind else {
            panic!("expected a mapping")
        };
        assert_eq!(scalar_text(&entries[0].1), "NO");
        assert_eq!(scalar_text(&entries[1].1), "0800");
        assert!(entries[1].1.as_scalar().unwrap().plain);
        assert_eq!(scalar_text(&entries[2].1), "1.10");
        assert!(!entries[2].1.as_scalar().unwrap().plain);
        assert!(entries[3].1.is_null());
    }

    #[test]
    fn positions_count_from_one() {
        let doc = parse("top:\n  inner: value\n").unwrap().unwrap();
        let NodeKind::Mapping(entries) = &doc.kind else {
            panic!("expected a mapping")
        };
        let NodeKind::Mapping(inner) = &entries[0].1.kind else {
            panic!("expected a mapping")
        };
        assert_eq!(
            inner[0].1.position,
            Position {
                line: 2,
                column: 10
            }
        );
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap().unwrap();
        let NodeKind::Mapping(entries) = &doc.kind else {
            panic!("expected a mapping")
        };
        assert_eq!(entries[0].1.kind, entries[1].1.kind);
    }

    #[test]
    fn syntax_error_has_position() {
        let error = parse("a: 1\nb: [unclosed\n").unwrap_err();
        assert_eq!(error.position, Position { line: 3, column: 1 });
        assert_eq!(
            error.message,
            "while parsing a flow sequence, expected ',' or ']'"
        );
    }
}
