//! A hand-written JSON reader for the hot path: builds a [`Doc`] containing
//! only the members a [`Shape`] asks for and skips everything else with a
//! light-weight scanner (strings are checked for termination, escapes and
//! control characters; literals and numbers lexically; brackets for
//! balance). Kept subtrees are parsed exactly like serde_json would (string
//! escapes are decoded by serde_json itself).

use std::borrow::Cow;

use crate::json::{Doc, Shape};

/// Where and why the input is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub message: &'static str,
}

type R<T> = Result<T, ScanError>;

/// Bytes that end the fast part of a string scan: `"`, `\` and control characters.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when some byte of `x` is `"`, `\\` or below 0x20 (may also be true
/// spuriously only through a byte that really is one of those: the
/// per-byte loop then finds it).
#[inline]
fn has_stop_byte(x: u64) -> bool {
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_in(x ^ (ONES * b'"' as u64));
    let backslash = zero_in(x ^ (ONES * b'\\' as u64));
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    quote | backslash | control != 0
}

/// Parse `src` under `shape`.
pub fn parse_shaped<'a>(src: &'a str, shape: &Shape) -> R<Doc<'a>> {
    let mut s = Scanner {
        b: src.as_bytes(),
        src,
        pos: 0,
    };
    let doc = s.value(shape, 0)?;
    s.ws();
    if s.pos != s.b.len() {
        return s.err("trailing characters");
    }
    Ok(doc)
}

const MAX_DEPTH: usize = 128;

struct Scanner<'a> {
    b: &'a [u8],
    src: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn err<T>(&self, message: &'static str) -> R<T> {
        Err(ScanError {
            offset: self.pos,
            message,
        })
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8, message: &'static str) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(message)
        }
    }

    fn value(&mut self, shape: &Shape, depth: usize) -> R<Doc<'a>> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(shape, depth),
            Some(b'[') => {
                if shape.is_all() {
                    self.array(shape, depth)
                } else {
                    // field steps never enter arrays: keep nothing
                    self.skip_value(depth)?;
                    Ok(Doc::Array(Vec::new()))
                }
            }
            Some(b'"') => Ok(Doc::Str(self.string()?)),
            Some(b't') => self.literal(b"true", Doc::Bool(true)),
            Some(b'f') => self.literal(b"false", Doc::Bool(false)),
            Some(b'n') => self.literal(b"null", Doc::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("expected a value"),
            None => self.err("unexpected end of input"),
        }
    }

    fn literal(&mut self, word: &'static [u8], v: Doc<'a>) -> R<Doc<'a>> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    /// Lex a number; returns its text.
    fn number_text(&mut self) -> R<&'a str> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return self.err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err("invalid number");
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err("invalid number");
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        Ok(&self.src[start..self.pos])
    }

    fn number(&mut self) -> R<Doc<'a>> {
        let text = self.number_text()?;
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Doc::Int(i));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Doc::UInt(u));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Doc::Float(f)),
            _ => self.err("number out of range"),
        }
    }

    /// Scan a string starting at its opening quote; returns (content start,
    /// content end, has escapes) and leaves `pos` after the closing quote.
    #[inline]
    fn scan_string(&mut self) -> R<(usize, usize, bool)> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let mut escaped = false;
        loop {
            // 8 bytes at a time while none of them is '"', '\\' or a control character
            while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
                let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                if has_stop_byte(x) {
                    break;
                }
                self.pos += 8;
            }
            while let Some(&c) = self.b.get(self.pos) {
                if STOP[c as usize] {
                    break;
                }
                self.pos += 1;
            }
            match self.peek() {
                Some(b'"') => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok((start, end, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 2
                        }
                        Some(b'u') => {
                            let hex = self.b.get(self.pos + 2..self.pos + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.err("invalid \\u escape");
                            }
                            self.pos += 6;
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    fn string(&mut self) -> R<Cow<'a, str>> {
        let quote = self.pos;
        let (start, end, escaped) = self.scan_string()?;
        if !escaped {
            return Ok(Cow::Borrowed(&self.src[start..end]));
        }
        // Let serde_json decode escapes (surrogate pairs included).
        match serde_json::from_str::<String>(&self.src[quote..end + 1]) {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(_) => Err(ScanError {
                offset: quote,
                message: "invalid string escape",
            }),
        }
    }

    fn object(&mut self, shape: &Shape, depth: usize) -> R<Doc<'a>> {
        self.pos += 1; // {
        let mut out: Vec<(Cow<'a, str>, Doc<'a>)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Doc::Object(out));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a string key");
            }
            let key = self.string()?;
            self.expect(b':', "expected ':'")?;
            match shape.child(&key) {
                Some(child) => {
                    let v = self.value(child, depth + 1)?;
                    out.push((key, v));
                }
                None => self.skip_value(depth + 1)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Doc::Object(out));
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    fn array(&mut self, shape: &Shape, depth: usize) -> R<Doc<'a>> {
        self.pos += 1; // [
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Doc::Array(out));
        }
        loop {
            out.push(self.value(shape, depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Doc::Array(out));
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }

    /// Skip one value, checking its grammar but building nothing.
    fn skip_value(&mut self, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.scan_string().map(|_| ()),
            Some(b'{') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return self.err("expected a string key");
                    }
                    self.scan_string()?;
                    self.expect(b':', "expected ':'")?;
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b't') => self.literal(b"true", Doc::Null).map(|_| ()),
            Some(b'f') => self.literal(b"false", Doc::Null).map(|_| ()),
            Some(b'n') => self.literal(b"null", Doc::Null).map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number_text().map(|_| ()),
            Some(_) => self.err("expected a value"),
            None => self.err("unexpected end of input"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonNode;
    use serde_json::Value;

    fn same_as_serde(src: &str) {
        let want: Value = serde_json::from_str(src).unwrap();
        let got =
            parse_shaped(src, &Shape::everything()).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        assert_eq!(got.to_value(), want, "{src}");
    }

    #[test]
    fn full_parse_matches_serde_json() {
        for src in [
            r#"{"a":1,"b":-2,"c":1.5e3,"d":-0.25,"e":18446744073709551615,"f":-9223372036854775808,"g":1e400}"#,
            r#"{"s":"plain","t":"esc \"q\" \\ \/ \b\f\n\r\t","u":"\u00e9\ud83d\ude00","v":"héllo"}"#,
            r#" [ true , false , null , [] , {} , [[1],[2,{"x":[]}]] ] "#,
            r#"{"dup":1,"dup":2}"#,
            "0",
            "\"x\"",
        ] {
            if src.contains("1e400") {
                assert!(parse_shaped(src, &Shape::everything()).is_err());
                continue;
            }
            same_as_serde(src);
        }
    }

    #[test]
    fn invalid_json_is_rejected_even_when_skipped() {
        let mut shape = Shape::default();
        shape.require(&["keep"]);
        for src in [
            r#"{"keep":1,"skip":tru}"#,
            r#"{"keep":1,"skip":[1,]}"#,
            r#"{"keep":1,"skip":{"a" 1}}"#,
            r#"{"keep":1,"skip":"unterminated}"#,
            "{\"keep\":1,\"skip\":\"ctl\u{1}\"}",
            r#"{"keep":1,"skip":"\x"}"#,
            r#"{"keep":1,"skip":01}"#,
            r#"{"keep":1,"skip":1.}"#,
            r#"{"keep":1} extra"#,
            r#"{"keep":1,}"#,
            "",
            "[",
        ] {
            assert!(parse_shaped(src, &shape).is_err(), "{src}");
            assert!(
                serde_json::from_str::<Value>(src).is_err(),
                "serde agrees: {src}"
            );
        }
        let deep = "[".repeat(500) + &"]".repeat(500);
        assert!(parse_shaped(&deep, &Shape::everything()).is_err());
        assert!(parse_shaped(&format!("{{\"skip\":{deep}}}"), &shape).is_err());
    }

    #[test]
    fn stop_byte_detection() {
        for (bytes, want) in [
            (*b"abcdefgh", false),
            (*b"abcd\"fgh", true),
            (*b"abcd\\fgh", true),
            (*b"abc\nefgh", true),
            (*b"\x1fbcdefgh", true),
            (*b"       !", false),
            ([0xc3, 0xa9, 0xe2, 0x82, 0xac, b'x', b'y', b'z'], false),
            ([0xff; 8], false),
            ([b'~', 0x7f, 0x80, b' ', b'#', b'[', b']', b'{'], false),
        ] {
            assert_eq!(has_stop_byte(u64::from_le_bytes(bytes)), want, "{bytes:?}");
        }
        // every single stop byte in every position
        for pos in 0..8 {
            for b in (0u8..0x20).chain([b'"', b'\\']) {
                let mut w = *b"abcdefgh";
                w[pos] = b;
                assert!(has_stop_byte(u64::from_le_bytes(w)), "{b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn fixtures_parse_like_serde_json() {
        for file in [
            "tests/data/oracle/notifications.jsonl",
            "tests/data/sample/nova.jsonl",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            for line in std::fs::read_to_string(path).unwrap().lines() {
                same_as_serde(line);
            }
        }
    }

    #[test]
    fn shaped_parse_matches_the_serde_path() {
        let mut shape = Shape::default();
        shape.require(&["payload", "b"]);
        shape.require(&["top"]);
        let src = r#"{"top":{"x":[1,{"y":2}]},"skip":[1,2,{"z":"w\n"}],"payload":{"a":1,"b":{"c":"d"},"arr":[3]}}"#;
        let a = parse_shaped(src, &shape).unwrap();
        let b = Doc::parse_shaped(src, &shape).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.get("payload")
                .unwrap()
                .get("b")
                .unwrap()
                .get("c")
                .unwrap()
                .as_str(),
            Some("d")
        );
    }
}
