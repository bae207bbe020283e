//! A line-tracking reader for Python `ConfigParser` ini files (the yagi.conf dialect).
//!
//! Rules (Python 2.7 `SafeConfigParser`): `[section]` headers; `key = value` or
//! `key: value` (the first `=` or `:` splits); option names are case-insensitive
//! (lower-cased); `#` and `;` start comment lines; an indented line continues the
//! previous value (joined with `\n`); ` ;` after whitespace starts an inline comment;
//! a repeated section merges and a repeated key overrides; `[DEFAULT]` supplies
//! defaults to every section. `%(name)s` interpolation is applied by the caller
//! ([`Ini::get`]) except where the original read raw (`[shoebox]`). Every entry keeps
//! its line number so config errors can point at it. Pure.

use std::collections::BTreeMap;

/// One `key = value` with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

/// A section: its first header line and its entries by lower-cased key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub line: usize,
    pub entries: BTreeMap<String, Entry>,
}

/// A parse error: line and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

/// A parsed ini file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    /// Sections in first-seen order (name, section).
    pub sections: Vec<(String, Section)>,
    pub defaults: BTreeMap<String, Entry>,
}

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, IniError> {
        let mut ini = Ini::default();
        // Index into `sections`, or None for DEFAULT; `cur_key` for continuations.
        let mut cur: Option<Option<usize>> = None;
        let mut cur_key: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                // ConfigParser ends a continuation at a blank line only visually; a comment
                // line does not end it, but a blank line contributes nothing either way.
                continue;
            }
            // ConfigParser also skips `rem` comment lines.
            let rem = trimmed
                .get(..3)
                .is_some_and(|h| h.eq_ignore_ascii_case("rem"))
                && trimmed
                    .get(3..)
                    .is_some_and(|t| t.is_empty() || t.starts_with(char::is_whitespace));
            if rem && !line.starts_with(char::is_whitespace) {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                if let (Some(sec), Some(key)) = (cur, cur_key.as_ref()) {
                    let map = match sec {
                        None => &mut ini.defaults,
                        Some(ix) => &mut ini.sections[ix].1.entries,
                    };
                    if let Some(e) = map.get_mut(key) {
                        let cont = strip_inline_comment(trimmed);
                        if !cont.is_empty() {
                            e.value.push('\n');
                            e.value.push_str(cont);
                        }
                    }
                    continue;
                }
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.split(']').next().filter(|_| rest.contains(']')) else {
                    return Err(IniError {
                        line: line_no,
                        message: format!("unterminated section header {trimmed:?}"),
                    });
                };
                let name = name.to_string();
                cur_key = None;
                if name == "DEFAULT" {
                    cur = Some(None);
                } else if let Some(ix) = ini.sections.iter().position(|(n, _)| *n == name) {
                    cur = Some(Some(ix));
                } else {
                    ini.sections.push((
                        name,
                        Section {
                            line: line_no,
                            entries: BTreeMap::new(),
                        },
                    ));
                    cur = Some(Some(ini.sections.len() - 1));
                }
                continue;
            }
            let Some(sec) = cur else {
                return Err(IniError {
                    line: line_no,
                    message: format!("{trimmed:?} appears before any [section] header"),
                });
            };
            let split = trimmed.find(['=', ':']);
            let Some(pos) = split else {
                return Err(IniError {
                    line: line_no,
                    message: format!("expected `key = value`, got {trimmed:?}"),
                });
            };
            let key = trimmed[..pos].trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(IniError {
                    line: line_no,
                    message: format!("empty key in {trimmed:?}"),
                });
            }
            let value = strip_inline_comment(trimmed[pos + 1..].trim()).to_string();
            let value = if value == "\"\"" {
                String::new()
            } else {
                value
            };
            let map = match sec {
                None => &mut ini.defaults,
                Some(ix) => &mut ini.sections[ix].1.entries,
            };
            map.insert(
                key.clone(),
                Entry {
                    value,
                    line: line_no,
                },
            );
            cur_key = Some(key);
        }
        Ok(ini)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.section(name).is_some()
    }

    /// The raw entry for `key` in `section` (falling back to `[DEFAULT]`).
    pub fn raw(&self, section: &str, key: &str) -> Option<&Entry> {
        self.section(section)
            .and_then(|s| s.entries.get(key))
            .or_else(|| {
                if self.has_section(section) {
                    self.defaults.get(key)
                } else {
                    None
                }
            })
    }

    /// The value with `%(name)s` interpolation (names from the same section and
    /// `[DEFAULT]`) and `%%` → `%`. A `%` not followed by `(` or `%` is kept as is
    /// (the original raised InterpolationSyntaxError there; we are lenient).
    pub fn get(&self, section: &str, key: &str) -> Option<Result<(String, usize), IniError>> {
        let e = self.raw(section, key)?;
        Some(
            self.interpolate(section, &e.value, 0)
                .map(|v| (v, e.line))
                .map_err(|m| IniError {
                    line: e.line,
                    message: m,
                }),
        )
    }

    fn interpolate(&self, section: &str, value: &str, depth: usize) -> Result<String, String> {
        if !value.contains('%') {
            return Ok(value.to_string());
        }
        if depth > 10 {
            return Err("interpolation nested more than 10 levels (a reference loop?)".into());
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            let after = &rest[p + 1..];
            if let Some(a) = after.strip_prefix('%') {
                out.push('%');
                rest = a;
            } else if let Some(a) = after.strip_prefix('(') {
                let Some(close) = a.find(")s") else {
                    return Err(format!(
                        "bad interpolation reference in {value:?} (expected %(name)s)"
                    ));
                };
                let name = a[..close].to_ascii_lowercase();
                let Some(e) = self.raw(section, &name) else {
                    return Err(format!(
                        "%({name})s refers to a key that is not set in [{section}] or [DEFAULT]"
                    ));
                };
                out.push_str(&self.interpolate(section, &e.value, depth + 1)?);
                if out.len() > MAX_INTERPOLATED_BYTES {
                    return Err(format!(
                        "interpolation expands to more than {MAX_INTERPOLATED_BYTES} bytes (%(name)s references repeated at every level?)"
                    ));
                }
                rest = &a[close + 2..];
            } else {
                out.push('%');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// An interpolated value may grow to at most this many bytes. Ten levels of
/// ten `%(x)s` each would otherwise expand a 300-byte file to 10^10 copies
/// (the ini "billion laughs").
pub const MAX_INTERPOLATED_BYTES: usize = 1 << 20;

fn strip_inline_comment(v: &str) -> &str {
    // ConfigParser: a ';' preceded by whitespace starts an inline comment.
    let bytes = v.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b';' && bytes[i - 1].is_ascii_whitespace() {
            return v[..i].trim_end();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, section: &str, key: &str, expected: Option<(&str, usize)>) {
        let ini = Ini::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        let got = ini.get(section, key).map(|r| r.unwrap());
        assert_eq!(
            got.as_ref().map(|(v, l)| (v.as_str(), *l)),
            expected,
            "{text:?} [{section}] {key}"
        );
    }

    #[test]
    fn reads_values() {
        check("[a]\nx = 1\n", "a", "x", Some(("1", 2)));
        check("[a]\nX: two words \n", "a", "x", Some(("two words", 2)));
        check("# c\n[a]\n; c\nx=1 ; inline\n", "a", "x", Some(("1", 4)));
        check("[a]\nx=a;b\n", "a", "x", Some(("a;b", 2)));
        check(
            "[a]\nx = first\n  second\n",
            "a",
            "x",
            Some(("first\nsecond", 2)),
        );
        check(
            "[a]\nx = 1\n[b]\ny=2\n[a]\nx = 3\n",
            "a",
            "x",
            Some(("3", 6)),
        );
        check(
            "[DEFAULT]\nd = dd\n[a]\nx = %(d)s/%(y)s\ny=why\n",
            "a",
            "x",
            Some(("dd/why", 4)),
        );
        check("[a]\nx = 100%%\n", "a", "x", Some(("100%", 2)));
        check("[a]\nx = %Y%m%d\n", "a", "x", Some(("%Y%m%d", 2)));
        check("[a]\nx = \"\"\n", "a", "x", Some(("", 2)));
        check("[a]\nx = 1\n", "b", "x", None);
        check("[a]\nurl = a=b\n", "a", "url", Some(("a=b", 2)));
        check("[a]\nrem a comment\nrém = é\n", "a", "rém", Some(("é", 3)));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let cases = [
            ("x = 1\n", 1, "before any [section]"),
            ("[a]\njunk\n", 2, "expected `key = value`"),
            ("[a\n", 1, "unterminated section"),
            ("[a]\n = 3\n", 2, "empty key"),
        ];
        for (text, line, msg) in cases {
            let e = Ini::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(msg), "{text:?}: {}", e.message);
        }
        let ini = Ini::parse("[a]\nx = %(nope)s\n").unwrap();
        let e = ini.get("a", "x").unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("nope"));
        // ten levels of ten references: an error at the key's line, not 30 GB
        let mut bomb = String::from("[a]\nx = %(a10)s\na0 = lol\n");
        for i in 1..=10 {
            bomb.push_str(&format!(
                "a{i} = {}\n",
                format!("%(a{})s", i - 1).repeat(10)
            ));
        }
        let e = Ini::parse(&bomb)
            .unwrap()
            .get("a", "x")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("more than 1048576 bytes"),
            "{}",
            e.message
        );
    }
}
