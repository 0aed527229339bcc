//! Splitting of the kernel command line into words, with the kernel's own quoting rules.
//!
//! Linux (`next_arg` in `kernel/params.c`) splits `/proc/cmdline` at unquoted whitespace. A
//! double quote toggles quoting anywhere in a word, so `"a b"` and `k="a b"` are one word
//! each. The kernel then removes only two kinds of quotes. The first is a quote that opens
//! the whole word, together with a quote that closes it. The second is a quote that opens
//! the value after the first `=`, together with a quote that closes it. Quotes elsewhere
//! stay in the word. The
//! first unquoted `--` without a value ends the kernel's parameters, and the words after it
//! are the arguments for init.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// One word of the kernel command line, split at its first `=`, with quotes removed the way
/// the kernel removes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The part before the first `=`, or the whole word when it has no `=`.
    pub param: Vec<u8>,
    /// The part after the first `=`; `None` when the word has no `=`.
    pub value: Option<Vec<u8>>,
}

impl Word {
    /// Builds a word from text, for tests and callers that already split it.
    pub fn new(param: &str, value: Option<&str>) -> Self {
        Word {
            param: param.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    /// Joins the word back to `param=value` (or `param`), as the kernel does before it hands
    /// a word to init.
    pub fn to_os_string(&self) -> OsString {
        let mut bytes = self.param.clone();
        if let Some(value) = &self.value {
            bytes.push(b'=');
            bytes.extend_from_slice(value);
        }
        OsString::from_vec(bytes)
    }
}

/// The kernel command line split into kernel parameters and init arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandLine {
    /// Words before the first `--`.
    pub params: Vec<Word>,
    /// Words after the first `--`; `None` when the command line has no `--`.
    pub init_args: Option<Vec<Word>>,
}

/// Splits a kernel command line (the bytes of `/proc/cmdline`) into words.
pub fn split(text: &[u8]) -> CommandLine {
    let mut params = Vec::new();
    let mut rest = skip_spaces(text);
    while !rest.is_empty() {
        let (word, next) = next_word(rest);
        rest = next;
        if word.param == b"--" && word.value.is_none() {
            let mut init_args = Vec::new();
            while !rest.is_empty() {
                let (arg, next) = next_word(rest);
                init_args.push(arg);
                rest = next;
            }
            return CommandLine {
                params,
                init_args: Some(init_args),
            };
        }
        params.push(word);
    }
    CommandLine {
        params,
        init_args: None,
    }
}

/// Reports whether `byte` is whitespace for C's `isspace` in the "C" locale, as in the kernel.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn skip_spaces(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(text.len());
    &text[start..]
}

/// Takes one word off the front of `text` (which starts with a non-space byte) and returns
/// it with the rest of the text, leading spaces removed.
fn next_word(text: &[u8]) -> (Word, &[u8]) {
    let (body, quoted) = match text.split_first() {
        Some((b'"', tail)) => (tail, true),
        _ => (text, false),
    };

    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = 0;
    while end < body.len() {
        let byte = body[end];
        if is_space(byte) && !in_quote {
            break;
        }
        // The kernel keeps the index of the first `=` in a counter that starts at 0, so an
        // `=` at the very first position does not count as the separator.
        if equals.is_none() && byte == b'=' && end > 0 {
            equals = Some(end);
        }
        if byte == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }

    let rest = skip_spaces(&body[end..]);
    let closing_quote = end > 0 && body[end - 1] == b'"';

    let word = match equals {
        None => {
            let stop = if quoted && closing_quote {
                end - 1
            } else {
                end
            };
            Word {
                param: body[..stop].to_vec(),
                value: None,
            }
        }
        Some(separator) => {
            let mut value_start = separator + 1;
            let mut value_end = end;
            if value_start < end && body[value_start] == b'"' {
                value_start += 1;
                if closing_quote {
                    value_end = end - 1;
                }
            }
            if quoted && closing_quote {
                value_end = end - 1;
            }
            let value = if value_start < value_end {
                body[value_start..value_end].to_vec()
            } else {
                Vec::new()
            };
            Word {
                param: body[..separator].to_vec(),
                value: Some(value),
            }
        }
    };
    (word, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        split(text.as_bytes()).params
    }

    #[test]
    fn split_plain_words() {
        assert_eq!(
            words("console=ttyS0 reboot=k  panic=1\tquiet\n"),
            vec![
                Word::new("console", Some("ttyS0")),
                Word::new("reboot", Some("k")),
                Word::new("panic", Some("1")),
                Word::new("quiet", None),
            ]
        );
    }

    #[test]
    fn split_quoted_value() {
        assert_eq!(
            words(r#"firework.env.MSG="hello world" next"#),
            vec![
                Word::new("firework.env.MSG", Some("hello world")),
                Word::new("next", None),
            ]
        );
    }

    #[test]
    fn split_quoted_whole_word() {
        assert_eq!(
            words(r#""firework.env.MSG=hello world" "two words""#),
            vec![
                Word::new("firework.env.MSG", Some("hello world")),
                Word::new("two words", None),
            ]
        );
    }

    #[test]
    fn split_keeps_inner_quotes() {
        // A quote inside a word groups but is not removed, as in the kernel.
        assert_eq!(
            words(r#"a"b c"d k=x"y z""#),
            vec![
                Word::new(r#"a"b c"d"#, None),
                Word::new("k", Some(r#"x"y z""#)),
            ]
        );
    }

    #[test]
    fn split_value_keeps_later_equals() {
        assert_eq!(
            words("firework.env.URL=postgres://u:p@h/db?a=b"),
            vec![Word::new(
                "firework.env.URL",
                Some("postgres://u:p@h/db?a=b")
            )]
        );
    }

    #[test]
    fn split_empty_values() {
        assert_eq!(
            words(r#"a= b="" c=""#),
            vec![
                Word::new("a", Some("")),
                Word::new("b", Some("")),
                Word::new("c", Some("")),
            ]
        );
    }

    #[test]
    fn split_leading_equals_is_not_separator() {
        assert_eq!(
            words("=x =k=v"),
            vec![Word::new("=x", None), Word::new("=k", Some("v"))]
        );
    }

    #[test]
    fn split_unterminated_quote_runs_to_end() {
        assert_eq!(
            words(r#"a "b c d"#),
            vec![Word::new("a", None), Word::new("b c d", None)]
        );
    }

    #[test]
    fn split_init_args_after_dashes() {
        let line = split(br#"console=ttyS0 -- /bin/app "arg one" k=v -- last"#);
        assert_eq!(line.params, vec![Word::new("console", Some("ttyS0"))]);
        assert_eq!(
            line.init_args,
            Some(vec![
                Word::new("/bin/app", None),
                Word::new("arg one", None),
                Word::new("k", Some("v")),
                Word::new("--", None),
                Word::new("last", None),
            ])
        );
    }

    #[test]
    fn split_dashes_with_value_is_a_param() {
        let line = split(b"--=x a");
        assert_eq!(
            line.params,
            vec![Word::new("--", Some("x")), Word::new("a", None)]
        );
        assert_eq!(line.init_args, None);
    }

    #[test]
    fn split_trailing_dashes_gives_empty_args() {
        let line = split(b"a --  \n");
        assert_eq!(line.init_args, Some(vec![]));
    }

    #[test]
    fn split_empty_line() {
        assert_eq!(split(b" \n"), CommandLine::default());
    }

    #[test]
    fn word_joins_back() {
        assert_eq!(
            Word::new("k", Some("a b")).to_os_string(),
            OsString::from("k=a b")
        );
        assert_eq!(Word::new("arg", None).to_os_string(), OsString::from("arg"));
    }
}
