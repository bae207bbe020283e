//! Shell-style event_type patterns with Python `fnmatch` semantics
//! (case-sensitive, as on POSIX): `*` matches any run of characters (dots
//! included), `?` one character, `[seq]` / `[!seq]` a set with `a-z` ranges.
//! An unclosed `[` is a literal. Patterns are compiled once; the common
//! shapes (`*`, exact, `prefix*`) skip the general matcher.

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Everything,
    Exact(String),
    Prefix(String),
    General(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Star,
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let toks = tokenize(pattern);
        let kind = if toks.iter().all(|t| *t == Tok::Star) && !toks.is_empty() {
            Kind::Everything
        } else if toks.iter().all(|t| matches!(t, Tok::Lit(_))) {
            Kind::Exact(lits(&toks))
        } else if toks.last() == Some(&Tok::Star)
            && toks[..toks.len() - 1]
                .iter()
                .all(|t| matches!(t, Tok::Lit(_)))
        {
            Kind::Prefix(lits(&toks[..toks.len() - 1]))
        } else {
            Kind::General(toks)
        };
        Glob {
            source: pattern.to_string(),
            kind,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when this pattern is exactly `*`.
    pub fn is_star(&self) -> bool {
        self.source == "*"
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Everything => true,
            Kind::Exact(s) => s == name,
            Kind::Prefix(p) => name.starts_with(p.as_str()),
            Kind::General(toks) => general_match(toks, name),
        }
    }
}

fn lits(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            _ => unreachable!("only literals"),
        })
        .collect()
}

fn tokenize(pattern: &str) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::One),
            '[' => {
                // Find the closing bracket the way fnmatch.translate does:
                // a leading '!' and then a leading ']' are part of the set.
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push(Tok::Lit('['));
                    continue;
                }
                let mut body = &chars[i..j];
                i = j + 1;
                let negated = body.first() == Some(&'!');
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        if body[k] <= body[k + 2] {
                            ranges.push((body[k], body[k + 2]));
                        }
                        k += 3;
                    } else {
                        ranges.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Tok::Set { negated, ranges });
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

fn tok_matches(t: &Tok, c: char) -> bool {
    match t {
        Tok::Lit(l) => *l == c,
        Tok::One => true,
        Tok::Set { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        Tok::Star => unreachable!("stars are handled by the matcher"),
    }
}

/// Iterative wildcard matching with single-star backtracking (linear for
/// the patterns event definitions use).
fn general_match(toks: &[Tok], name: &str) -> bool {
    let s: Vec<char> = name.chars().collect();
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if ti < toks.len() && toks[ti] == Tok::Star {
            star = Some((ti, si));
            ti += 1;
        } else if ti < toks.len() && tok_matches(&toks[ti], s[si]) {
            ti += 1;
            si += 1;
        } else if let Some((st, ss)) = star {
            ti = st + 1;
            si = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    while ti < toks.len() && toks[ti] == Tok::Star {
        ti += 1;
    }
    ti == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, name: &str, expected: bool) {
        assert_eq!(
            Glob::new(pattern).matches(name),
            expected,
            "{pattern:?} vs {name:?}"
        );
    }

    #[test]
    fn fnmatch_vectors() {
        let cases = [
            ("*", "", true),
            ("*", "compute.instance.create.end", true),
            ("compute.instance.*", "compute.instance.create.end", true),
            ("compute.instance.*", "compute.instance.", true),
            ("compute.instance.*", "compute.instances", false),
            ("compute.instance.exists", "compute.instance.exists", true),
            (
                "compute.instance.exists",
                "compute.instance.exists.verified",
                false,
            ),
            ("Compute.*", "compute.x", false),
            ("*.thing", "test.thing", true),
            ("*.thing", "test.thingy", false),
            ("*.end", "compute.instance.create.end", true),
            ("compute.*.end", "compute.instance.create.end", true),
            ("compute.*.end", "compute.instance.create.start", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a[bc]d", "acd", true),
            ("a[!bc]d", "acd", false),
            ("a[!bc]d", "axd", true),
            ("a[a-c]d", "abd", true),
            ("a[a-c]d", "aed", false),
            ("a[]]d", "a]d", true),
            ("a[!]]d", "axd", true),
            ("a[b", "a[b", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxc", false),
            ("é*", "école", true),
        ];
        for (p, n, e) in cases {
            check(p, n, e);
        }
    }
}
