//! `policy.toml` in its common shape, read in one pass without building a TOML tree: bare keys,
//! `[agent]`, strings without escapes, plain decimal integers, and arrays of such strings over
//! any number of lines, with comments. That is what `jailoc up` writes and what people write by
//! hand. Anything else — an escape, a multi-line string, a dotted or quoted key, another table,
//! a duplicate key, a syntax error — makes [`read`] answer `None`, and the `toml` crate reads the
//! file instead (with its messages). So this reader only has to be right about what it accepts;
//! a test holds it to the `toml` crate's reading on generated and mutated files.

use super::{Entry, Item, Value};
use std::borrow::Cow;

/// The top-level entries of `text` (`[agent]` as a table entry), or `None` when the file is not
/// in the shape this reader knows.
pub(crate) fn read(text: &str) -> Option<Vec<Entry<'_>>> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut top: Vec<Entry<'_>> = Vec::new();
    // The `[agent]` table once its header was read: (where the header's name starts, entries).
    let mut agent: Option<(usize, Vec<Entry<'_>>)> = None;
    loop {
        reader.blanks();
        match reader.peek() {
            None => break,
            Some(b'\n' | b'\r' | b'#') => reader.end_of_line()?,
            Some(b'[') => {
                if agent.is_some() || top.iter().any(|e| e.key == "agent") {
                    return None;
                }
                let at = reader.pos + 1;
                reader.literal("[agent]")?;
                reader.end_of_line()?;
                agent = Some((at, Vec::new()));
            }
            Some(_) => {
                let entry = reader.key_value(agent.is_none())?;
                let table = match &mut agent {
                    Some((_, entries)) => entries,
                    None => &mut top,
                };
                if table.iter().any(|e| e.key == entry.key) {
                    return None;
                }
                table.push(entry);
                reader.end_of_line()?;
            }
        }
    }
    if let Some((at, entries)) = agent {
        top.push(Entry {
            key: Cow::Borrowed("agent"),
            at,
            value: Item {
                at,
                value: Value::Table(entries),
            },
        });
    }
    Some(top)
}

struct Reader<'i> {
    text: &'i str,
    bytes: &'i [u8],
    pos: usize,
}

impl<'i> Reader<'i> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Spaces and tabs.
    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Blanks, an optional comment, then a newline (`\n` or `\r\n`) or the end of the text.
    fn end_of_line(&mut self) -> Option<()> {
        self.blanks();
        if self.peek() == Some(b'#') {
            self.pos += 1;
            // Up to the newline: any character but a control character other than tab.
            while let Some(b) = self.peek() {
                match b {
                    b'\n' | b'\r' => break,
                    b'\t' => {}
                    b if b < 0x20 || b == 0x7f => return None,
                    _ => {}
                }
                self.pos += 1;
            }
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                Some(())
            }
            Some(_) => None,
        }
    }

    /// Blanks, comments and newlines (inside an array).
    fn gaps(&mut self) -> Option<()> {
        loop {
            self.blanks();
            match self.peek() {
                Some(b'\n' | b'\r' | b'#') => self.end_of_line()?,
                _ => return Some(()),
            }
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word.as_bytes()).then(|| self.pos = end)
    }

    /// `KEY = VALUE` with a bare key; an array only at the top level (`[agent]` takes none).
    fn key_value(&mut self, top: bool) -> Option<Entry<'i>> {
        let at = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            self.pos += 1;
        }
        if self.pos == at {
            return None;
        }
        let key = &self.text[at..self.pos];
        self.blanks();
        self.literal("=")?;
        self.blanks();
        let value = match self.peek()? {
            b'[' if top => self.array()?,
            _ => self.scalar()?,
        };
        Some(Entry {
            key: Cow::Borrowed(key),
            at,
            value,
        })
    }

    /// A string or a plain decimal integer.
    fn scalar(&mut self) -> Option<Item<'i>> {
        let at = self.pos;
        let value = match self.peek()? {
            quote @ (b'"' | b'\'') => Value::String(Cow::Borrowed(self.string(quote)?)),
            b'0'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let digits = &self.text[at..self.pos];
                // No leading zero, no 64-bit overflow: the `toml` crate says what those are.
                if (digits.len() > 1 && digits.starts_with('0')) || digits.len() > 18 {
                    return None;
                }
                if matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b"_.:-+".contains(&b))
                {
                    return None;
                }
                Value::Integer {
                    value: digits.parse().ok(),
                    text: digits.to_owned(),
                }
            }
            _ => return None,
        };
        Some(Item { at, value })
    }

    /// A one-line string without escapes in `quote`s (basic or literal): its content.
    fn string(&mut self, quote: u8) -> Option<&'i str> {
        self.pos += 1;
        let start = self.pos;
        loop {
            self.pos = next_special(self.bytes, self.pos, quote);
            match self.peek()? {
                b if b == quote => break,
                b'\\' if quote == b'"' => return None,
                // A tab, or a backslash in a literal string: part of the content.
                b'\t' | b'\\' => self.pos += 1,
                // A control character or DEL.
                _ => return None,
            }
        }
        let content = &self.text[start..self.pos];
        self.pos += 1;
        // `""` or `''` followed by a third quote opens a multi-line string.
        if content.is_empty() && self.peek() == Some(quote) {
            return None;
        }
        Some(content)
    }

    /// `[ "a", 'b', ... ]` over any lines, a trailing comma allowed; strings only, each kept as
    /// the [`Span`] of its content in the text.
    fn array(&mut self) -> Option<Item<'i>> {
        let at = self.pos;
        self.pos += 1;
        let mut spans = Vec::new();
        loop {
            self.gaps()?;
            match self.peek()? {
                b']' => break,
                quote @ (b'"' | b'\'') => {
                    let start = self.pos + 1;
                    let text = self.string(quote)?;
                    spans.push(Span {
                        start: u32::try_from(start).ok()?,
                        len: u32::try_from(text.len()).ok()?,
                    });
                    self.gaps()?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => break,
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        self.pos += 1;
        Some(Item {
            at,
            value: Value::Strings(spans),
        })
    }
}

/// The first offset from `at` whose byte is `quote`, a backslash, a control character or DEL
/// (`bytes.len()` if none): what may end or spoil a string, looked for eight bytes at a time.
/// Of the bytes a word-wide test flags, the lowest is always one of these (a borrow only runs
/// upwards from a flagged byte), so the first is exact.
fn next_special(bytes: &[u8], mut at: usize, quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes below `n` (at most 0x80), flagged in their top bit.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let equal = |word: u64, b: u8| below(word ^ (ONES * u64::from(b)), 1);
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let hit = equal(word, quote) | equal(word, b'\\') | equal(word, 0x7f) | below(word, 0x20);
        if hit != 0 {
            return at + (hit.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == quote || b == b'\\' || b < 0x20 || b == 0x7f {
            break;
        }
        at += 1;
    }
    at
}

/// Where a string of an array lies in the text: its content, after the opening quote.
#[derive(Debug, PartialEq, Clone, Copy)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The content in `text`, the text [`read`] found the string in (there the span is always
    /// a whole string; in any other text, what it does not fit reads as "", an empty entry).
    pub(crate) fn of(self, text: &str) -> &str {
        let start = self.start as usize;
        text.get(start..start + self.len as usize).unwrap_or("")
    }

    /// Where the string starts: its opening quote.
    pub(crate) fn at(self) -> usize {
        self.start as usize - 1
    }

    /// The length of all of `spans`' contents.
    pub(crate) fn total(spans: &[Span]) -> usize {
        spans.iter().map(|s| s.len as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::read;
    use crate::parse::{parse_toml, parse_toml_slow};
    use std::path::Path;

    /// Files in the shape the reader knows, and the odd corners next to it.
    const SEEDS: &[&str] = &[
        "",
        "# only a comment\n",
        "egress = \"allowlist\"\nallowed_hosts = [\"pypi.org\", \"*.example.com:443\", \"10.0.0.1\"]\n",
        "egress = 'open'\r\nallowed_networks = [\r\n  '10.20.0.0/16', # office\r\n  \"fd00:1::/64:80\",\r\n]\r\n",
        "blocked_networks = [\"203.0.113.7\", \"2001:db8::/32\"]\nresolve_timeout_ms = 500\n\n[agent]\nuid = 1001\ngid = 1002\nhome = \"/home/me\"\n",
        "  [agent]  # the agent\n  uid = 1000\n  home = '/home/a b'\n",
        "allowed_hosts = [\n\n  # a comment\n  \"a.example\" ,\"b.example\"\n\n]\n",
        "egress = \"open\"\negres = \"open\"\n",
        "[agent]\nuid = 0\n",
        "resolve_timeout_ms = 99999999999999999999\n",
        "resolve_timeout_ms = 0500\n",
        "agent = 3\n",
        "allowed_hosts = [\"a\", 1]\n",
        "egress = \"\"\"open\"\"\"\n",
        "allowed_hosts = [\"caf\u{e9}.example\", \"tab\there\"]\n",
        "egress = \"a\\u0041\"\n",
        "agent.uid = 1001\n",
        "[agent]\n[agent]\n",
        "egress = \"open\"\negress = \"open\"\n",
        "allowed_hosts = [[\"a\"]]\n",
        "egress = true\n",
        "resolve_timeout_ms = 1_000\n",
        "\u{feff}egress = \"open\"\n",
        "allowed_hosts = [\"a.example\",]\n[agent]\nhome = \"rel\"\n",
    ];

    /// Characters that matter to TOML, and some that must not appear.
    const ALPHABET: &[&str] = &[
        "\"",
        "'",
        "[",
        "]",
        "=",
        ",",
        "#",
        "\n",
        "\r",
        "\r\n",
        "\t",
        " ",
        "\\",
        ".",
        "0",
        "1",
        "9",
        "a",
        "z",
        "_",
        "-",
        "+",
        ":",
        "\u{e9}",
        "\u{1}",
        "\u{7f}",
        "agent",
        "uid",
        "egress",
        "allowed_hosts",
        "\"\"",
        "''",
    ];

    /// xorshift64*: the same sequence on every run.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
    }

    fn mutate(rng: &mut Rng, seed: &str) -> String {
        let mut text = seed.to_owned();
        for _ in 0..=rng.below(3) {
            let cuts: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            let at = cuts[rng.below(cuts.len())];
            match rng.below(3) {
                0 => text.insert_str(at, ALPHABET[rng.below(ALPHABET.len())]),
                1 => {
                    let end =
                        cuts[(cuts.iter().position(|&c| c == at).unwrap_or(0) + 1 + rng.below(3))
                            .min(cuts.len() - 1)];
                    text.replace_range(at..end, "");
                }
                _ => {
                    let end = cuts
                        [(cuts.iter().position(|&c| c == at).unwrap_or(0) + 1).min(cuts.len() - 1)];
                    text.replace_range(at..end, ALPHABET[rng.below(ALPHABET.len())]);
                }
            }
        }
        text
    }

    fn outcome(result: Result<crate::Policy, crate::PolicyError>) -> String {
        match result {
            Ok(policy) => format!("{policy:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn wherever_it_reads_a_file_it_reads_it_as_the_toml_crate_does() {
        let path = Path::new("/cfg/policy.toml");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut quick, mut total) = (0, 0);
        for round in 0..100_000 {
            let seed = SEEDS[round % SEEDS.len()];
            let text = if round < SEEDS.len() {
                seed.to_owned()
            } else {
                mutate(&mut rng, seed)
            };
            total += 1;
            if read(&text).is_none() {
                continue;
            }
            quick += 1;
            assert_eq!(
                outcome(parse_toml(path, &text)),
                outcome(parse_toml_slow(path, &text)),
                "the one-pass reader and the toml crate disagree on {text:?}"
            );
        }
        // The comparison is only worth something if the reader took many of the files.
        assert!(
            quick * 8 > total,
            "only {quick} of {total} files took the one-pass reader"
        );
    }

    /// The word-wide search finds what a byte-by-byte one finds, from every offset of strings
    /// built from the bytes that matter and a few that do not (high bytes of UTF-8 included).
    #[test]
    fn the_word_wide_search_finds_the_first_special_byte_as_a_byte_walk_does() {
        let alphabet = [
            b'a', b'.', b'"', b'\'', b'\\', b'\t', 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff, 0x00, b'!',
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            for quote in [b'"', b'\''] {
                for at in 0..=len {
                    let walk = (at..len)
                        .find(|&i| {
                            let b = bytes[i];
                            b == quote || b == b'\\' || b < 0x20 || b == 0x7f
                        })
                        .unwrap_or(len);
                    assert_eq!(
                        super::next_special(&bytes, at, quote),
                        walk,
                        "{bytes:?} from {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn what_jailoc_up_writes_and_common_hand_written_files_take_the_one_pass_reader() {
        for seed in &SEEDS[..7] {
            assert!(read(seed).is_some(), "{seed:?}");
        }
        // Escapes, multi-line strings, dotted keys, other values: the toml crate's.
        for odd in [
            "egress = \"a\\u0041\"\n",
            "egress = \"\"\"open\"\"\"\n",
            "agent.uid = 1\n",
            "egress = true\n",
        ] {
            assert!(read(odd).is_none(), "{odd:?}");
        }
        let written = crate::write_toml(&crate::Policy::default());
        assert!(read(&written).is_some(), "{written}");
    }
}
