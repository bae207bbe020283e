//! The hot-path JSON reader. A [`Plan`], compiled once from the definitions'
//! field paths, says which members are wanted; [`parse`] reads one
//! notification in a single pass and returns a [`Parsed`]:
//!
//! * every plain key path (`payload.image_meta.'org.openstack__1__os_distro'`)
//!   has a *slot*, filled with the value found there (strings borrowed from
//!   the input when they have no escapes), so reading a trait is an index,
//!   not a search;
//! * the few paths that need a tree (wildcards, indexes, nested unions) get
//!   a borrowed [`Doc`] tree that holds only the members they can reach.
//!
//! Everything else is skipped, but still checked: the input must be one
//! valid JSON document (grammar, string escapes, control characters,
//! numbers, nesting depth, UTF-8), exactly as serde_json would accept it.
//! Strings are scanned 16 bytes at a time (SSE2 on x86_64, 8-byte SWAR
//! elsewhere). UTF-8 is validated only when a non-ASCII byte was seen:
//! outside strings the grammar only admits ASCII, so an all-ASCII scan is a
//! UTF-8 proof. Duplicate keys behave like Python's `json.loads`: the last
//! one wins, and a repeated object replaces the whole earlier one.

use std::borrow::Cow;

use crate::json::Doc;

/// Where and why the input is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub message: &'static str,
}

type R<T> = Result<T, ScanError>;

/// At most this many nested arrays and objects, like serde_json.
const MAX_NESTING: usize = 127;

// ------------------------------------------------------------------ plan

/// Which members of a notification to read, compiled from key paths.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: Vec<PlanNode>,
    slots: usize,
}

/// Where a plain key path's value is found after [`parse`]: the slot of the
/// path itself, or of its nearest ancestor whose whole value is kept (then
/// the last `rest` keys are looked up in that value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub slot: u32,
    pub rest: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TreeNeed {
    #[default]
    No,
    /// Some members are needed (the node must be an object to help).
    Part,
    /// The whole value is needed.
    All,
}

#[derive(Debug, Clone, Default)]
struct PlanNode {
    children: Vec<Child>,
    /// Bit `min(len, 63)` set for every child key length: most keys of a
    /// notification are rejected by this and `last_bytes` alone.
    lens: u64,
    /// Bitmap of the children keys' last bytes.
    last_bytes: [u64; 4],
    /// Open-addressing hash table over `children` (index + 1; 0 is empty).
    table: Vec<u16>,
    /// The whole value here goes to this slot.
    slot: Option<u32>,
    /// Slots of this node's subtree (own slot included): a contiguous range.
    subtree: (u32, u32),
    tree: TreeNeed,
}

#[derive(Debug, Clone)]
struct Child {
    key: Box<str>,
    prefix: u64,
    suffix: u64,
    node: u32,
}

/// The first and last 8 bytes of a key (zero-padded when shorter), which
/// decide equality for keys up to 16 bytes.
#[inline]
fn affixes(key: &[u8]) -> (u64, u64) {
    if key.len() >= 8 {
        let p = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let s = u64::from_le_bytes(key[key.len() - 8..].try_into().expect("8 bytes"));
        (p, s)
    } else {
        let mut buf = [0u8; 8];
        buf[..key.len()].copy_from_slice(key);
        (u64::from_le_bytes(buf), 0)
    }
}

#[inline]
fn key_hash(len: usize, prefix: u64, suffix: u64) -> u64 {
    (prefix ^ suffix.rotate_left(23) ^ len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl PlanNode {
    /// The child for the key at `b[start..end]` (unescaped).
    #[inline]
    fn child_at(&self, b: &[u8], start: usize, end: usize) -> Option<u32> {
        let len = end - start;
        if self.lens >> len.min(63) & 1 == 0 {
            return None;
        }
        if len > 0 {
            let last = b[end - 1] as usize;
            if self.last_bytes[last / 64] >> (last % 64) & 1 == 0 {
                return None;
            }
        }
        let (prefix, suffix) = if len >= 8 {
            (load8(b, start), load8(b, end - 8))
        } else if start + 8 <= b.len() {
            (load8(b, start) & ((1u64 << (len * 8)) - 1), 0)
        } else {
            affixes(&b[start..end])
        };
        self.find(&b[start..end], prefix, suffix)
    }

    /// The child for a key held elsewhere (decoded from escapes).
    fn child(&self, key: &[u8]) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let (prefix, suffix) = affixes(key);
        self.find(key, prefix, suffix)
    }

    #[inline(always)]
    fn find(&self, key: &[u8], prefix: u64, suffix: u64) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut h = key_hash(key.len(), prefix, suffix) as usize & mask;
        loop {
            let e = self.table[h];
            if e == 0 {
                return None;
            }
            let c = &self.children[e as usize - 1];
            if c.prefix == prefix
                && c.suffix == suffix
                && c.key.len() == key.len()
                && (key.len() <= 16 || middle_eq(c.key.as_bytes(), key))
            {
                return Some(c.node);
            }
            h = (h + 1) & mask;
        }
    }
}

/// Bytes 8..len-8 of two keys of the same length (> 16) are equal.
#[inline]
fn middle_eq(a: &[u8], b: &[u8]) -> bool {
    let end = a.len() - 8;
    let mut i = 8;
    while i < end {
        let at = i.min(end - 8).max(8);
        if load8(a, at) != load8(b, at) {
            return false;
        }
        i += 8;
    }
    true
}

/// Builds a [`Plan`]: register every key path, then [`PlanBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct PlanBuilder {
    slot_paths: Vec<Vec<Box<str>>>,
    tree_paths: Vec<Vec<Box<str>>>,
}

impl PlanBuilder {
    /// A plain key path whose value is read through a [`Binding`].
    pub fn slot<S: AsRef<str>>(&mut self, keys: &[S]) {
        self.slot_paths
            .push(keys.iter().map(|k| k.as_ref().into()).collect());
    }

    /// The subtree at `keys` must be in the [`Parsed::tree`] (an empty path:
    /// the whole document).
    pub fn tree<S: AsRef<str>>(&mut self, keys: &[S]) {
        self.tree_paths
            .push(keys.iter().map(|k| k.as_ref().into()).collect());
    }

    pub fn build(mut self) -> Plan {
        let mut nodes = vec![PlanNode::default()];
        // Shorter paths first, so that a path under a kept value binds to it.
        self.slot_paths.sort_by_key(Vec::len);
        for keys in &self.slot_paths {
            let mut n = 0usize;
            for k in keys {
                if nodes[n].slot.is_some() {
                    break;
                }
                n = child_or_insert(&mut nodes, n, k);
            }
            if nodes[n].slot.is_none() && !keys.is_empty() {
                nodes[n].slot = Some(0); // numbered below
            }
        }
        for keys in &self.tree_paths {
            // Part on the way, All at the end (an All node absorbs longer paths)
            let mut n = 0usize;
            for k in keys {
                if nodes[n].tree == TreeNeed::All {
                    break;
                }
                nodes[n].tree = TreeNeed::Part;
                n = child_or_insert(&mut nodes, n, k);
            }
            nodes[n].tree = TreeNeed::All;
        }
        // Number the slots depth-first so every subtree owns a range.
        let mut next = 0u32;
        number_slots(&mut nodes, 0, &mut next);
        for node in &mut nodes {
            if node.children.is_empty() {
                continue;
            }
            let size = (node.children.len() * 4).next_power_of_two().max(8);
            let mut table = vec![0u16; size];
            for (i, c) in node.children.iter().enumerate() {
                let mut h = key_hash(c.key.len(), c.prefix, c.suffix) as usize & (size - 1);
                while table[h] != 0 {
                    h = (h + 1) & (size - 1);
                }
                table[h] = u16::try_from(i + 1).expect("fewer than 65535 keys per object");
            }
            node.table = table;
            for c in &node.children {
                let k = c.key.as_bytes();
                node.lens |= 1 << k.len().min(63);
                if let Some(&last) = k.last() {
                    node.last_bytes[last as usize / 64] |= 1 << (last % 64);
                }
            }
        }
        Plan {
            nodes,
            slots: next as usize,
        }
    }
}

fn child_or_insert(nodes: &mut Vec<PlanNode>, n: usize, key: &str) -> usize {
    if let Some(c) = nodes[n].children.iter().find(|c| &*c.key == key) {
        return c.node as usize;
    }
    let (prefix, suffix) = affixes(key.as_bytes());
    let id = nodes.len();
    nodes.push(PlanNode::default());
    nodes[n].children.push(Child {
        key: key.into(),
        prefix,
        suffix,
        node: id as u32,
    });
    id
}

fn number_slots(nodes: &mut [PlanNode], n: usize, next: &mut u32) {
    let start = *next;
    if nodes[n].slot.is_some() {
        nodes[n].slot = Some(*next);
        *next += 1;
    }
    for i in 0..nodes[n].children.len() {
        let c = nodes[n].children[i].node as usize;
        number_slots(nodes, c, next);
    }
    nodes[n].subtree = (start, *next);
}

impl Plan {
    /// A plan that keeps the whole document as the tree.
    pub fn everything() -> Plan {
        let mut b = PlanBuilder::default();
        b.tree::<&str>(&[]);
        b.build()
    }

    /// Number of slots a [`Parsed`] has.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Where the value of a plain key path (registered with
    /// [`PlanBuilder::slot`]) is found. `None` for an unregistered path.
    pub fn binding<S: AsRef<str>>(&self, keys: &[S]) -> Option<Binding> {
        let mut n = 0usize;
        for (i, k) in keys.iter().enumerate() {
            if let Some(slot) = self.nodes[n].slot {
                return Some(Binding {
                    slot,
                    rest: (keys.len() - i) as u32,
                });
            }
            let c = self.nodes[n]
                .children
                .iter()
                .find(|c| &*c.key == k.as_ref())?;
            n = c.node as usize;
        }
        self.nodes[n].slot.map(|slot| Binding { slot, rest: 0 })
    }
}

/// One parsed notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    /// Slot values (`None`: the path is absent).
    pub slots: Vec<Option<Doc<'a>>>,
    /// The members that tree paths can reach (an empty object when no
    /// definition has such a path).
    pub tree: Doc<'a>,
    /// Some slot value may own memory (a decoded string, a container).
    /// When none does, dropping the slots is freeing their buffer.
    slots_own_heap: bool,
}

impl Drop for Parsed<'_> {
    fn drop(&mut self) {
        if !self.slots_own_heap {
            // SAFETY: length 0 is within capacity and leaves no element to
            // read. The values it drops from view own nothing (borrowed
            // strings, numbers), so nothing leaks: this only skips calling
            // their no-op destructors one by one.
            unsafe { self.slots.set_len(0) };
        }
    }
}

/// True when dropping `v` may free memory.
#[inline(always)]
fn owns_heap(v: &Doc<'_>) -> bool {
    matches!(v, Doc::Str(Cow::Owned(_)) | Doc::Array(_) | Doc::Object(_))
}

impl<'a> Parsed<'a> {
    /// The value at a binding, if present.
    #[inline]
    pub fn get(&self, b: Binding, keys: &[Box<str>]) -> Option<&Doc<'a>> {
        let node = self.slots.get(b.slot as usize)?.as_ref()?;
        if b.rest == 0 {
            return Some(node);
        }
        keys[keys.len() - b.rest as usize..]
            .iter()
            .try_fold(node, |n, k| crate::json::JsonNode::get(n, k))
    }
}

/// At most this many bytes of a document are prefetched (L1 holds 32-48 KiB;
/// past a few KiB the hardware's stream prefetcher has caught on anyway).
const PREFETCH_LIMIT: usize = 16 * 1024;

/// Ask for the cache lines of `src` up front, so that a notification that is
/// not in cache yet (a batch read from a file, a queue backlog) comes in from
/// memory all at once instead of one line after another as the reader (one
/// pass, front to back) reaches them. A no-op when it is in cache already.
#[inline]
fn prefetch_all(src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = src.len().min(PREFETCH_LIMIT);
        let mut at = 0;
        while at < end {
            // SAFETY: a prefetch is a hint, it never faults; `at` is in bounds.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(src.as_ptr().add(at) as *const i8) };
            at += 64;
        }
    }
}

/// Parse one JSON document under `plan`.
pub fn parse<'a>(src: &'a [u8], plan: &Plan) -> R<Parsed<'a>> {
    prefetch_all(src);
    let mut s = Scanner {
        b: src,
        pos: 0,
        utf8_checked: false,
        nodes: &plan.nodes,
        slots: vec![None; plan.slots],
        entered: [0; 4],
        slots_own_heap: false,
    };
    let mut tree = s.root()?;
    s.ws();
    if s.pos != s.b.len() {
        return s.err("trailing characters");
    }
    if plan.nodes[0].tree == TreeNeed::All {
        // a path reads the root itself (`$`): keep all of it (rare)
        tree = parse_doc(src)?;
    }
    Ok(Parsed {
        slots: s.slots,
        tree,
        slots_own_heap: s.slots_own_heap,
    })
}

/// Parse a whole document into a [`Doc`] (what [`Plan::everything`] gives).
pub fn parse_doc(src: &[u8]) -> R<Doc<'_>> {
    let mut s = Scanner {
        b: src,
        pos: 0,
        utf8_checked: false,
        nodes: &[],
        slots: Vec::new(),
        entered: [0; 4],
        slots_own_heap: false,
    };
    let doc = s.value_all(0)?;
    s.ws();
    if s.pos != s.b.len() {
        return s.err("trailing characters");
    }
    Ok(doc)
}

// --------------------------------------------------------------- scanner

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

/// For the 16 bytes at `b[at..]`: a bit mask of the bytes that are `"`,
/// `\` or control characters, and a mask of non-ASCII bytes.
///
/// # Panics
/// When `at + 16 > b.len()` (callers loop on that condition, so the check
/// here is only a debug assertion plus the one below, which the optimizer
/// merges with theirs).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn stop_masks16(b: &[u8], at: usize) -> (u32, u32) {
    use std::arch::x86_64::*;
    assert!(at <= b.len() && b.len() - at >= 16);
    // SAFETY: SSE2 is part of x86_64; the unaligned load reads the 16 bytes
    // at `at`, which exist (asserted above).
    unsafe {
        let v = _mm_loadu_si128(b.as_ptr().add(at) as *const __m128i);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // v <= 0x1f (unsigned) <=> min(v, 0x1f) == v
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let stop = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        (_mm_movemask_epi8(stop) as u32, _mm_movemask_epi8(v) as u32)
    }
}

/// Portable version of the above, two 8-byte SWAR words.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn stop_masks16(b: &[u8], at: usize) -> (u32, u32) {
    stop_masks16_swar(b, at)
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn stop_masks16_swar(b: &[u8], at: usize) -> (u32, u32) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let word = |x: u64| -> (u32, u32) {
        // Exact per byte: no borrow can cross bytes because every byte's
        // high bit is handled separately.
        let low = x & !HIGHS;
        let is = |c: u8| {
            let y = low ^ (ONES * c as u64);
            !((y + !HIGHS) | low ^ x) & HIGHS // byte == c (ASCII c, high bit clear)
        };
        let control = !(low + ONES * (0x80 - 0x20)) & !x & HIGHS; // < 0x20
        let m = is(b'"') | is(b'\\') | control;
        let pack = |m: u64| -> u32 {
            let mut out = 0u32;
            for i in 0..8 {
                out |= (((m >> (i * 8 + 7)) & 1) as u32) << i;
            }
            out
        };
        (pack(m), pack(x & HIGHS))
    };
    let lo = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(b[at + 8..at + 16].try_into().expect("8 bytes"));
    let (s0, h0) = word(lo);
    let (s1, h1) = word(hi);
    (s0 | s1 << 8, h0 | h1 << 8)
}

/// The first `"`, `\\` or control byte at or after `pos` (or the end), and
/// a non-zero value if a non-ASCII byte was seen on the way (or just after
/// the stop byte: a cheap over-approximation).
#[inline(always)]
fn find_stop(b: &[u8], mut pos: usize) -> (usize, u32) {
    let mut high = 0;
    while b.len() - pos >= 16 {
        let (stop, h) = stop_masks16(b, pos);
        high |= h;
        if stop != 0 {
            return (pos + stop.trailing_zeros() as usize, high);
        }
        pos += 16;
    }
    while let Some(&c) = b.get(pos) {
        if STOP[c as usize] {
            break;
        }
        high |= u32::from(c >> 7);
        pos += 1;
    }
    (pos, high)
}

/// A lexed integer of at most 18 characters (it fits an i64 whatever the
/// digits), without going through `str::parse`.
#[inline(always)]
fn small_int(text: &[u8], integer: bool) -> Option<i64> {
    if !integer || text.len() > 18 {
        return None;
    }
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let v = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

struct Scanner<'a, 'p> {
    b: &'a [u8],
    pos: usize,
    /// The whole input has been checked to be UTF-8.
    utf8_checked: bool,
    nodes: &'p [PlanNode],
    slots: Vec<Option<Doc<'a>>>,
    /// Bit `n`: plan node `n` (< 256) has been entered. Slots below a node
    /// are only filled while reading its value, so until a key repeats
    /// there is nothing under it to clear.
    entered: [u64; 4],
    /// A value that owns memory went into a slot (see [`Parsed`]).
    slots_own_heap: bool,
}

impl<'a> Scanner<'a, '_> {
    fn err<T>(&self, message: &'static str) -> R<T> {
        Err(ScanError {
            offset: self.pos,
            message,
        })
    }

    #[inline(always)]
    fn ws(&mut self) {
        // compact JSON: usually no whitespace at all
        if let Some(&c) = self.b.get(self.pos) {
            if c <= b' ' {
                self.ws_loop();
            }
        }
    }

    #[inline(never)]
    fn ws_loop(&mut self) {
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

    #[inline]
    fn expect_colon(&mut self) -> R<()> {
        if self.peek() != Some(b':') {
            self.ws();
            if self.peek() != Some(b':') {
                return self.err("expected ':'");
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// Validate the whole input as UTF-8 (once), after a non-ASCII byte.
    #[cold]
    fn check_utf8(&mut self) -> R<()> {
        if simdutf8::basic::from_utf8(self.b).is_err() {
            let offset = std::str::from_utf8(self.b)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return Err(ScanError {
                offset,
                message: "invalid UTF-8",
            });
        }
        self.utf8_checked = true;
        Ok(())
    }

    /// Scan a string starting at its opening quote; returns (content start,
    /// content end, has escapes) and leaves `pos` after the closing quote.
    /// Afterwards the content is known to be UTF-8.
    #[inline(always)]
    fn scan_string(&mut self) -> R<(usize, usize, bool)> {
        let start = self.pos + 1;
        let (end, high) = find_stop(self.b, start);
        if self.b.get(end) == Some(&b'"') && (high == 0 || self.utf8_checked) {
            self.pos = end + 1;
            return Ok((start, end, false));
        }
        self.scan_string_rest(start, end, high)
    }

    /// The rest of [`Self::scan_string`] after the first stop byte at `at`:
    /// escapes, errors, and the UTF-8 check after non-ASCII bytes.
    #[cold]
    #[inline(never)]
    fn scan_string_rest(
        &mut self,
        start: usize,
        mut at: usize,
        mut high: u32,
    ) -> R<(usize, usize, bool)> {
        let mut escaped = false;
        loop {
            self.pos = at;
            match self.peek() {
                Some(b'"') => {
                    self.pos = at + 1;
                    if high != 0 && !self.utf8_checked {
                        self.pos = at;
                        self.check_utf8()?;
                        self.pos = at + 1;
                    }
                    return Ok((start, at, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
                        Some(b'u') => {
                            // As serde_json decodes a string: a leading surrogate
                            // must be followed at once by a `\u` trailing one, and
                            // a trailing surrogate never stands alone.
                            let Some(n) = hex4(self.b, at + 2) else {
                                return self.err("invalid \\u escape");
                            };
                            match n {
                                0xDC00..=0xDFFF => {
                                    return self.err("lone trailing surrogate in \\u escape")
                                }
                                0xD800..=0xDBFF => {
                                    let pair = self.b.get(at + 6..at + 8) == Some(&b"\\u"[..])
                                        && hex4(self.b, at + 8)
                                            .is_some_and(|m| (0xDC00..=0xDFFF).contains(&m));
                                    if !pair {
                                        return self.err("lone leading surrogate in \\u escape");
                                    }
                                    at += 12;
                                }
                                _ => at += 6,
                            }
                        }
                        _ => return self.err("invalid escape"),
                    }
                    let (next, h) = find_stop(self.b, at);
                    at = next;
                    high |= h;
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    /// The content of a scanned string without escapes.
    #[inline(always)]
    fn raw(&self, start: usize, end: usize) -> &'a str {
        // SAFETY: scan_string proved these bytes UTF-8 (all ASCII, or the
        // whole input validated).
        unsafe { std::str::from_utf8_unchecked(&self.b[start..end]) }
    }

    /// The text of a scanned string.
    #[inline(always)]
    fn text(&self, start: usize, end: usize, escaped: bool) -> R<Cow<'a, str>> {
        if !escaped {
            return Ok(Cow::Borrowed(self.raw(start, end)));
        }
        self.decode(start, end)
    }

    /// A string with escapes, decoded.
    #[cold]
    #[inline(never)]
    fn decode(&self, start: usize, end: usize) -> R<Cow<'a, str>> {
        // Let serde_json decode escapes (surrogate pairs included).
        match serde_json::from_slice::<String>(&self.b[start - 1..end + 1]) {
            Ok(s) => Ok(Cow::Owned(s)),
            Err(_) => Err(ScanError {
                offset: start - 1,
                message: "invalid string escape",
            }),
        }
    }

    fn string(&mut self) -> R<Cow<'a, str>> {
        let (start, end, escaped) = self.scan_string()?;
        self.text(start, end, escaped)
    }

    fn literal(&mut self, word: &'static [u8]) -> R<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    /// Lex a number; returns its bytes and whether it is an integer.
    #[inline(always)]
    fn number_text(&mut self) -> R<(&'a [u8], bool)> {
        let start = self.pos;
        let digits = |s: &mut Self| {
            while matches!(s.peek(), Some(b'0'..=b'9')) {
                s.pos += 1;
            }
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => digits(self),
            _ => return self.err("invalid number"),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err("invalid number");
            }
            digits(self);
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.err("invalid number");
            }
            digits(self);
        }
        Ok((&self.b[start..self.pos], integer))
    }

    #[inline(always)]
    fn number(&mut self) -> R<Doc<'a>> {
        let (text, integer) = self.number_text()?;
        match small_int(text, integer) {
            Some(i) => Ok(Doc::Int(i)),
            None => self.number_slow(text, integer),
        }
    }

    /// Floats, and integers of 19 digits or more.
    #[inline(never)]
    fn number_slow(&self, text: &[u8], integer: bool) -> R<Doc<'a>> {
        // the lexer admitted only ASCII
        let text = std::str::from_utf8(text).expect("ASCII number");
        if integer {
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

    /// A scalar at `pos` (string, number, literal), or `None` at `{`/`[`.
    #[inline]
    fn scalar(&mut self) -> R<Option<Doc<'a>>> {
        Ok(Some(match self.peek() {
            Some(b'"') => Doc::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b'n') => {
                self.literal(b"null")?;
                Doc::Null
            }
            Some(b't') => {
                self.literal(b"true")?;
                Doc::Bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Doc::Bool(false)
            }
            Some(b'{' | b'[') => return Ok(None),
            Some(_) => return self.err("expected a value"),
            None => return self.err("unexpected end of input"),
        }))
    }

    fn root(&mut self) -> R<Doc<'a>> {
        self.ws();
        if self.peek() == Some(b'{') {
            return Ok(self.object(0, 0)?.unwrap_or(Doc::Object(Vec::new())));
        }
        // not an object: nothing can be read from it, but it must be JSON
        match self.scalar()? {
            Some(v) => Ok(v),
            None => {
                self.skip_value(0)?;
                Ok(Doc::Array(Vec::new()))
            }
        }
    }

    /// The first non-whitespace position at or after `p`.
    #[inline(always)]
    fn ws_at(&self, mut p: usize) -> usize {
        // compact JSON: usually no whitespace at all (one test)
        match self.b.get(p) {
            Some(&c) if c > b' ' => return p,
            None => return p,
            Some(_) => {}
        }
        while let Some(&c) = self.b.get(p) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                p += 1;
            } else {
                break;
            }
        }
        p
    }

    /// [`Self::scan_string`] for the string whose opening quote is at `p`,
    /// without going through `self.pos` (which the hot loops keep in a
    /// register): (content start, content end, has escapes).
    #[inline(always)]
    fn string_at(&mut self, p: usize) -> R<(usize, usize, bool)> {
        let (end, high) = find_stop(self.b, p + 1);
        if self.b.get(end) == Some(&b'"') && (high == 0 || self.utf8_checked) {
            return Ok((p + 1, end, false));
        }
        self.scan_string_rest(p + 1, end, high)
    }

    /// Marks plan node `n` entered; true the first time (nodes past 256
    /// are never a first time).
    #[inline(always)]
    fn first_entry(&mut self, n: usize) -> bool {
        let Some(word) = self.entered.get_mut(n / 64) else {
            return false;
        };
        let bit = 1u64 << (n % 64);
        let first = *word & bit == 0;
        *word |= bit;
        first
    }

    #[cold]
    fn err_at<T>(&mut self, p: usize, message: &'static str) -> R<T> {
        self.pos = p;
        self.err(message)
    }

    /// The less common members of [`Self::object`], out of its hot loop: a
    /// slot value that is not a string or a number, a tree member, or an
    /// object on the way to slots. `pos` is at the value; `key` is the
    /// member's scanned key.
    #[inline(never)]
    fn member_rest(
        &mut self,
        c: usize,
        depth: usize,
        keep: bool,
        key: (usize, usize, bool),
        members: &mut Vec<(Cow<'a, str>, Doc<'a>)>,
    ) -> R<()> {
        let cn = &self.nodes[c];
        let (ks, ke, kesc) = key;
        if let Some(s) = cn.slot {
            let v = self.value_all(depth + 1)?;
            if keep {
                members.push((self.text(ks, ke, kesc)?, v.clone()));
            }
            self.slots_own_heap |= owns_heap(&v);
            self.slots[s as usize].get_or_insert(v);
            return Ok(());
        }
        let v = if cn.tree == TreeNeed::All {
            Some(self.value_all(depth + 1)?)
        } else {
            match self.scalar()? {
                Some(v) => Some(v),
                None if self.peek() == Some(b'{') => self.object(c, depth + 1)?,
                None => {
                    // field steps never enter arrays
                    self.skip_value(depth + 1)?;
                    Some(Doc::Array(Vec::new()))
                }
            }
        };
        if let (true, Some(v)) = (keep, v) {
            members.push((self.text(ks, ke, kesc)?, v));
        }
        Ok(())
    }

    /// The object at `pos` under plan node `n`: fills the slots below `n`
    /// and returns the tree members when `n` is part of the tree.
    fn object(&mut self, n: usize, depth: usize) -> R<Option<Doc<'a>>> {
        if depth + 1 > MAX_NESTING {
            return self.err("nesting too deep");
        }
        let nodes = self.nodes;
        let node = &nodes[n];
        let in_tree = node.tree != TreeNeed::No;
        let mut members: Vec<(Cow<'a, str>, Doc<'a>)> = Vec::new();
        // the position lives in `p`; `self.pos` is synced around calls
        let mut p = self.ws_at(self.pos + 1); // after `{`
        if self.b.get(p) == Some(&b'}') {
            self.pos = p + 1;
            return Ok(in_tree.then_some(Doc::Object(members)));
        }
        loop {
            if self.b.get(p) != Some(&b'"') {
                return self.err_at(p, "expected a string key");
            }
            let (ks, ke, kesc) = self.string_at(p)?;
            p = ke + 1;
            if self.b.get(p) != Some(&b':') {
                p = self.ws_at(p);
                if self.b.get(p) != Some(&b':') {
                    return self.err_at(p, "expected ':'");
                }
            }
            p = self.ws_at(p + 1);
            let child = if kesc {
                let key = self.text(ks, ke, true)?;
                node.child(key.as_bytes())
            } else {
                node.child_at(self.b, ks, ke)
            };
            match child {
                None => match self.b.get(p) {
                    Some(b'"') => p = self.string_at(p)?.1 + 1,
                    // `null`, `false`, `true` and `{}`, frequent in
                    // notifications, without the call
                    Some(b'n') if self.b.get(p..p + 4) == Some(b"null") => p += 4,
                    Some(b'f') if self.b.get(p..p + 5) == Some(b"false") => p += 5,
                    Some(b't') if self.b.get(p..p + 4) == Some(b"true") => p += 4,
                    Some(b'{') if self.b.get(p + 1) == Some(&b'}') => p += 2,
                    _ => {
                        self.pos = p;
                        self.skip_other(depth + 1)?;
                        p = self.pos;
                    }
                },
                Some(c) => {
                    let c = c as usize;
                    let cn = &nodes[c];
                    // a repeated key replaces everything read under it before
                    if !self.first_entry(c) {
                        for s in cn.subtree.0..cn.subtree.1 {
                            self.slots[s as usize] = None;
                        }
                    }
                    let keep = in_tree && cn.tree != TreeNeed::No;
                    if let Some(s) = cn.slot {
                        let s = s as usize;
                        if !keep && self.b.get(p) == Some(&b'"') {
                            // the common case, written in place
                            // (the slot is empty unless the key repeats)
                            let (vs, ve, vesc) = self.string_at(p)?;
                            p = ve + 1;
                            let text = if vesc {
                                self.slots_own_heap = true;
                                self.decode(vs, ve)?
                            } else {
                                Cow::Borrowed(self.raw(vs, ve))
                            };
                            let slot = &mut self.slots[s];
                            if slot.is_none() {
                                *slot = Some(Doc::Str(text));
                            }
                        } else if !keep && matches!(self.b.get(p), Some(b'-' | b'0'..=b'9')) {
                            // numbers, also written in place
                            self.pos = p;
                            let (text, integer) = self.number_text()?;
                            p = self.pos;
                            let v = match small_int(text, integer) {
                                Some(i) => Doc::Int(i),
                                None => self.number_slow(text, integer)?,
                            };
                            let slot = &mut self.slots[s];
                            if slot.is_none() {
                                *slot = Some(v);
                            }
                        } else {
                            self.pos = p;
                            self.member_rest(c, depth, keep, (ks, ke, kesc), &mut members)?;
                            p = self.pos;
                        }
                    } else {
                        self.pos = p;
                        self.member_rest(c, depth, keep, (ks, ke, kesc), &mut members)?;
                        p = self.pos;
                    }
                }
            }
            match self.b.get(p) {
                Some(b',') => p = self.ws_at(p + 1),
                Some(b'}') => {
                    self.pos = p + 1;
                    return Ok(in_tree.then_some(Doc::Object(members)));
                }
                _ => {
                    p = self.ws_at(p);
                    match self.b.get(p) {
                        Some(b',') => p = self.ws_at(p + 1),
                        Some(b'}') => {
                            self.pos = p + 1;
                            return Ok(in_tree.then_some(Doc::Object(members)));
                        }
                        _ => return self.err_at(p, "expected ',' or '}'"),
                    }
                }
            }
        }
    }

    /// Parse one whole value.
    fn value_all(&mut self, depth: usize) -> R<Doc<'a>> {
        self.ws();
        if let Some(v) = self.scalar()? {
            return Ok(v);
        }
        if depth + 1 > MAX_NESTING {
            return self.err("nesting too deep");
        }
        if self.peek() == Some(b'{') {
            self.pos += 1;
            let mut out = Vec::new();
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
                self.expect_colon()?;
                let v = self.value_all(depth + 1)?;
                out.push((key, v));
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
        self.pos += 1; // [
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Doc::Array(out));
        }
        loop {
            out.push(self.value_all(depth + 1)?);
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
    #[inline(always)]
    fn skip_value(&mut self, depth: usize) -> R<()> {
        self.ws();
        if self.peek() == Some(b'"') {
            return self.scan_string().map(|_| ());
        }
        self.skip_other(depth)
    }

    /// A string at `pos` (its opening quote) for [`Self::skip_other`]:
    /// the position after its closing quote.
    #[inline(always)]
    fn skip_string_at(&mut self, pos: usize, high: &mut u32) -> R<usize> {
        let (end, h) = find_stop(self.b, pos + 1);
        if self.b.get(end) == Some(&b'"') {
            *high |= h;
            return Ok(end + 1);
        }
        self.pos = pos;
        self.scan_string_rest(pos + 1, end, h)?;
        Ok(self.pos)
    }

    /// [`Self::skip_value`] for everything but strings: containers are
    /// walked iteratively with a stack of their kinds (1 bit each).
    #[inline(never)]
    fn skip_other(&mut self, depth: usize) -> R<()> {
        let b = self.b;
        let mut pos = self.pos;
        let mut high = 0u32;
        // bit i of `objects`: the i-th open container is an object
        let mut objects = [0u64; MAX_NESTING / 64 + 1];
        let mut open = 0usize;
        macro_rules! fail {
            ($msg:expr) => {{
                self.pos = pos;
                return self.err($msg);
            }};
        }
        macro_rules! skip_ws {
            () => {
                while let Some(&c) = b.get(pos) {
                    if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                        pos += 1;
                    } else {
                        break;
                    }
                }
            };
        }
        // after `,` or `{` in an object: `"key" :`
        macro_rules! key_colon {
            () => {
                skip_ws!();
                if b.get(pos) != Some(&b'"') {
                    fail!("expected a string key");
                }
                pos = self.skip_string_at(pos, &mut high)?;
                skip_ws!();
                if b.get(pos) != Some(&b':') {
                    fail!("expected ':'");
                }
                pos += 1;
            };
        }
        'value: loop {
            skip_ws!();
            match b.get(pos) {
                Some(b'"') => pos = self.skip_string_at(pos, &mut high)?,
                Some(&c @ (b'{' | b'[')) => {
                    if depth + open + 1 > MAX_NESTING {
                        fail!("nesting too deep");
                    }
                    let is_object = c == b'{';
                    objects[open / 64] = (objects[open / 64] & !(1 << (open % 64)))
                        | (u64::from(is_object) << (open % 64));
                    open += 1;
                    pos += 1;
                    skip_ws!();
                    if b.get(pos) == Some(if is_object { &b'}' } else { &b']' }) {
                        pos += 1;
                        open -= 1;
                    } else {
                        if is_object {
                            key_colon!();
                        }
                        continue 'value;
                    }
                }
                Some(b'n') if b[pos..].starts_with(b"null") => pos += 4,
                Some(b't') if b[pos..].starts_with(b"true") => pos += 4,
                Some(b'f') if b[pos..].starts_with(b"false") => pos += 5,
                Some(b'-' | b'0'..=b'9') => {
                    self.pos = pos;
                    self.number_text()?;
                    pos = self.pos;
                }
                Some(b'n' | b't' | b'f') => fail!("invalid literal"),
                Some(_) => fail!("expected a value"),
                None => fail!("unexpected end of input"),
            }
            // after a value: close containers, or go on after a comma
            loop {
                if open == 0 {
                    self.pos = pos;
                    if high != 0 && !self.utf8_checked {
                        self.check_utf8()?;
                    }
                    return Ok(());
                }
                let top = open - 1;
                let in_object = objects[top / 64] >> (top % 64) & 1 == 1;
                skip_ws!();
                match b.get(pos) {
                    Some(b',') => {
                        pos += 1;
                        if in_object {
                            key_colon!();
                        }
                        continue 'value;
                    }
                    Some(b'}') if in_object => {
                        pos += 1;
                        open -= 1;
                    }
                    Some(b']') if !in_object => {
                        pos += 1;
                        open -= 1;
                    }
                    _ if in_object => fail!("expected ',' or '}'"),
                    _ => fail!("expected ',' or ']'"),
                }
            }
        }
    }
}

/// The value of the 4 hex digits at `at`, if there are 4.
fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let h = b.get(at..at + 4)?;
    h.iter().try_fold(0u16, |n, &c| {
        Some(n << 4 | (c as char).to_digit(16)? as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonNode;
    use serde_json::Value;

    fn same_as_serde(src: &str) {
        let want: Value = serde_json::from_str(src).unwrap();
        let got = parse_doc(src.as_bytes()).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        assert_eq!(got.to_value(), want, "{src}");
        let got = parse(src.as_bytes(), &Plan::everything()).unwrap();
        assert_eq!(got.tree.to_value(), want, "{src}");
    }

    fn plan(slots: &[&[&str]], trees: &[&[&str]]) -> Plan {
        let mut b = PlanBuilder::default();
        for s in slots {
            b.slot(s);
        }
        for t in trees {
            b.tree(t);
        }
        b.build()
    }

    #[test]
    fn full_parse_matches_serde_json() {
        for src in [
            r#"{"a":1,"b":-2,"c":1.5e3,"d":-0.25,"e":18446744073709551615,"f":-9223372036854775808,"h":1E+2}"#,
            r#"{"s":"plain","t":"esc \"q\" \\ \/ \b\f\n\r\t","u":"\u00e9\ud83d\ude00","v":"héllo"}"#,
            r#" [ true , false , null , [] , {} , [[1],[2,{"x":[]}]] ] "#,
            r#"{"dup":1,"dup":2}"#,
            r#"{"long string with é and more than sixteen bytes":"and a value, also longer than 16 bytes, ☃"}"#,
            " { \"a\" : [ 1 , \"x\" ] , \"b\" : { } }\n",
            "0",
            "\"x\"",
        ] {
            same_as_serde(src);
        }
    }

    #[test]
    fn invalid_json_is_rejected_even_when_skipped() {
        let p = plan(&[&["keep"]], &[]);
        let bad: Vec<Vec<u8>> = [
            r#"{"keep":1,"skip":tru}"#,
            r#"{"keep":1,"skip":[1,]}"#,
            r#"{"keep":1,"skip":{"a" 1}}"#,
            r#"{"keep":1,"skip":"unterminated}"#,
            "{\"keep\":1,\"skip\":\"ctl\u{1}\"}",
            "{\"keep\":1,\"skip\":\"a long string with a control \u{1f} char\"}",
            r#"{"keep":1,"skip":"\x"}"#,
            r#"{"keep":1,"skip":"\u12"}"#,
            r#"{"keep":1,"skip":"I\ud800NFO"}"#,
            r#"{"keep":1,"skip":"\ud83d"}"#,
            r#"{"keep":1,"skip":"\ud83d\n"}"#,
            r#"{"keep":1,"skip":"\ud83d\u0041"}"#,
            r#"{"keep":1,"skip":"\ude00"}"#,
            r#"{"keep":1,"\udc00":2}"#,
            r#"{"keep":1,"skip":01}"#,
            r#"{"keep":1,"skip":1.}"#,
            r#"{"keep":1,"skip":1e}"#,
            r#"{"keep":1,"skip":-}"#,
            r#"{"keep":1} extra"#,
            r#"{"keep":1,}"#,
            r#"{"keep" 1}"#,
            r#"{"keep":1e400}"#,
            r#"{"keep":1 "x":2}"#,
            "",
            "[",
            "{",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            b"{\"keep\":1,\"skip\":\"\xff\"}".to_vec(),
            b"{\"keep\":1,\"skip\":\"a long string before the bad byte \xc3\x28\"}".to_vec(),
            b"{\"keep\":\"\xe2\x82\"}".to_vec(),
            b"{\"keep\":1,\"\xc3\":2}".to_vec(),
        ])
        .collect();
        for src in &bad {
            let shown = String::from_utf8_lossy(src);
            assert!(parse(src, &p).is_err(), "{shown}");
            assert!(parse_doc(src).is_err(), "{shown}");
            assert!(
                serde_json::from_slice::<Value>(src).is_err(),
                "serde agrees: {shown}"
            );
        }
    }

    #[test]
    fn nesting_limit_is_serde_json_s() {
        let kept = plan(&[&["keep"]], &[]);
        for n in [1, 2, 63, 64, 65, 125, 126, 127, 128, 129, 500] {
            let arrays = "[".repeat(n) + "1" + &"]".repeat(n);
            let objects = "{\"keep\":".repeat(n) + "1" + &"}".repeat(n);
            for doc in [
                arrays.clone(),
                objects.clone(),
                format!("{{\"skip\":{arrays}}}"),
                format!("{{\"skip\":{objects}}}"),
                format!("{{\"keep\":{arrays}}}"),
            ] {
                let serde_ok = serde_json::from_str::<Value>(&doc).is_ok();
                assert_eq!(
                    parse(doc.as_bytes(), &kept).is_ok(),
                    serde_ok,
                    "{n}: {doc:.40}"
                );
                assert_eq!(parse_doc(doc.as_bytes()).is_ok(), serde_ok, "{n}");
                assert_eq!(
                    parse(doc.as_bytes(), &Plan::everything()).is_ok(),
                    serde_ok,
                    "{n}"
                );
            }
        }
    }

    #[test]
    fn stop_masks() {
        for stop_masks16 in [stop_masks16, stop_masks16_swar] {
            stop_masks_of(stop_masks16);
        }
    }

    fn stop_masks_of(stop_masks16: fn(&[u8], usize) -> (u32, u32)) {
        let text = b"0123456789abcdef";
        assert_eq!(stop_masks16(text, 0), (0, 0));
        for pos in 0..16 {
            for b in (0u8..0x20).chain([b'"', b'\\']) {
                let mut w = *text;
                w[pos] = b;
                assert_eq!(stop_masks16(&w, 0).0, 1 << pos, "{b:#x} at {pos}");
            }
            for b in [0x20u8, b'!', b'#', b'[', b'~', 0x7f] {
                let mut w = *text;
                w[pos] = b;
                assert_eq!(stop_masks16(&w, 0), (0, 0), "{b:#x} at {pos}");
            }
            for b in [0x80u8, 0xa2, 0xc3, 0xff] {
                let mut w = *text;
                w[pos] = b;
                assert_eq!(stop_masks16(&w, 0), (0, 1 << pos), "{b:#x} at {pos}");
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

    /// (slot paths, tree paths, document, expected slot values, expected tree)
    fn check(slots: &[&[&str]], trees: &[&[&str]], src: &str, want: &[Option<Value>], tree: Value) {
        let p = plan(slots, trees);
        let got = parse(src.as_bytes(), &p).unwrap();
        let values: Vec<Option<Value>> = slots
            .iter()
            .map(|keys| {
                let b = p.binding(keys).expect("bound");
                let keys: Vec<Box<str>> = keys.iter().map(|k| (*k).into()).collect();
                got.get(b, &keys).map(Doc::to_value)
            })
            .collect();
        assert_eq!(values, want, "{src}");
        assert_eq!(got.tree.to_value(), tree, "{src}");
    }

    #[test]
    fn slots_and_tree() {
        use serde_json::json;
        let src = r#"{"top":{"x":[1,{"y":2}]},"skip":[1,2,{"z":"w\n"}],"payload":{"a":1,"b":{"c":"d"},"arr":[3],"s":"x\"y"}}"#;
        check(
            &[
                &["payload", "b", "c"],
                &["payload", "s"],
                &["payload", "nope"],
                &["top"],
            ],
            &[],
            src,
            &[
                Some(json!("d")),
                Some(json!("x\"y")),
                None,
                Some(json!({"x":[1,{"y":2}]})),
            ],
            json!({}),
        );
        // a path under a kept value reads through it
        check(
            &[&["payload", "b", "c"], &["payload", "b"]],
            &[&["payload", "arr"]],
            src,
            &[Some(json!("d")), Some(json!({"c":"d"}))],
            json!({"payload":{"arr":[3]}}),
        );
        // repeated keys: the last wins, and a repeated object replaces the first
        check(
            &[&["p", "a"], &["p", "b"], &["k"]],
            &[&["p", "b"]],
            r#"{"k":1,"p":{"a":1,"b":2},"k":"two","p":{"b":3}}"#,
            &[None, Some(json!(3)), Some(json!("two"))],
            json!({"p":{"b":3}}),
        );
        check(
            &[&["p", "a"]],
            &[],
            r#"{"p":{"a":1},"p":"flat"}"#,
            &[None],
            json!({}),
        );
        // escaped keys are decoded before the lookup
        check(
            &[&["p", "a.b"], &["q"]],
            &[],
            r#"{"\u0070":{"a\u002eb":"yes"},"q":null}"#,
            &[Some(json!("yes")), Some(Value::Null)],
            json!({}),
        );
        // long keys that share their first and last 8 bytes
        check(
            &[&["_context_user_name_x"], &["_context_tenant_name_x"]],
            &[],
            r#"{"_context_user_name_x":1,"_context_zzzz_name_x":2,"_context_tenant_name_x":3}"#,
            &[Some(json!(1)), Some(json!(3))],
            json!({}),
        );
    }
}
