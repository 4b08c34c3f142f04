//! Kind patterns: `*` matches any run of characters, dots included (so `incident.*` matches
//! `incident.opened` and `incident.db.down`), and `?` matches exactly one character.
//!
//! Other glob dialects give meaning to `[...]`, `{a,b}` and `\`; a route author who writes
//! them expects that meaning, so they are refused rather than matched literally.

use std::fmt;

/// A validated kind pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindPattern {
    pattern: String,
}

impl KindPattern {
    /// Checks `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("kind pattern is empty; write `*` to match every kind".into());
        }
        if let Some(bad) = pattern.chars().find(|c| "[]{}\\".contains(*c)) {
            return Err(format!(
                "kind pattern `{pattern}`: `{bad}` is not supported; only `*` (any run of \
                 characters) and `?` (one character) are special"
            ));
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(format!("kind pattern `{pattern}` contains white space"));
        }
        Ok(KindPattern {
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `kind` matches the whole pattern.
    pub fn matches(&self, kind: &str) -> bool {
        if self.pattern == "*" {
            return true;
        }
        glob_match(self.pattern.as_bytes(), kind.as_bytes())
    }
}

impl fmt::Display for KindPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl serde::Serialize for KindPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.pattern)
    }
}

/// The classic linear-time wildcard match: on a mismatch, backtrack only to the most
/// recent `*` and let it swallow one more character. Works on bytes; `?` is one byte, which
/// is one character for the ASCII kinds notifications use, and `*` is unaffected.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, kind: &str) -> bool {
        KindPattern::new(pattern).unwrap().matches(kind)
    }

    #[test]
    fn star_crosses_dots_and_question_mark_is_one_character() {
        assert!(matches("*", "anything.at.all"));
        assert!(matches("*", ""));
        assert!(matches("incident.*", "incident.opened"));
        assert!(matches("incident.*", "incident.db.down"));
        assert!(matches("incident.*", "incident."));
        assert!(!matches("incident.*", "incident"));
        assert!(!matches("incident.*", "incidents.opened"));
        assert!(matches("*.created", "order.line.created"));
        assert!(matches("order.*.created", "order.line.created"));
        assert!(!matches("order.*.created", "order.created"));
        assert!(matches("v?.event", "v1.event"));
        assert!(!matches("v?.event", "v10.event"));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(!matches("a*b*c", "aXXbYYbd"));
        assert!(matches("exact.kind", "exact.kind"));
        assert!(!matches("exact.kind", "exact.kinds"));
        assert!(matches("**", "x"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        assert!(KindPattern::new("").is_err());
        let error = KindPattern::new("incident.[ab]").unwrap_err();
        assert!(error.contains("`[` is not supported"), "{error}");
        assert!(KindPattern::new("order.{a,b}").is_err());
        assert!(KindPattern::new("a b").is_err());
    }
}
