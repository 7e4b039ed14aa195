//! Specific Character Set (0008,0005) decoding to UTF-8, including ISO 2022 code extensions.
//!
//! dicom-rs looks only at the first value of Specific Character Set, so Japanese and
//! Korean files that declare `\ISO 2022 IR 87` or `\ISO 2022 IR 149` as the second
//! value come out wrong. This module follows PS3.5 6.1.2.5: the first value sets the
//! initial G0/G1 sets, escape sequences switch them, and delimiters reset them.

use encoding_rs::Encoding as TextEncoding;

/// A character set the decoder can switch to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Set {
    /// ISO 646 / ASCII.
    Ascii,
    /// JIS X 0201 Romaji in G0 (ASCII with yen and overline; kept as ASCII).
    JisRomaji,
    /// JIS X 0201 Katakana in G1.
    JisKatakana,
    /// JIS X 0208 (two bytes, G0).
    Jis0208,
    /// JIS X 0212 (two bytes, G0).
    Jis0212,
    /// KS X 1001 (two bytes, G1).
    Ksx1001,
    /// GB 2312 (two bytes, G1).
    Gb2312,
    /// ISO 8859-1, exactly (byte value = code point).
    Latin1,
    /// A single-byte ISO 8859 part or TIS 620, via encoding_rs.
    SingleByte(&'static TextEncoding),
}

/// What a term of Specific Character Set means.
enum Term {
    /// A single character set without code extensions, decoded as a whole.
    Whole(Option<&'static TextEncoding>),
    /// An ISO 2022 term: the sets it puts in G0 and G1 when it is the initial term.
    Iso2022 { g0: Set, g1: Option<Set> },
}

fn term(name: &str) -> Option<Term> {
    use encoding_rs::*;
    let single = |e: &'static TextEncoding| Term::Iso2022 {
        g0: Set::Ascii,
        g1: Some(Set::SingleByte(e)),
    };
    Some(match name {
        "" | "ISO_IR 6" => Term::Whole(None),
        "ISO_IR 100" => Term::Iso2022 {
            g0: Set::Ascii,
            g1: Some(Set::Latin1),
        },
        "ISO_IR 101" => Term::Whole(Some(ISO_8859_2)),
        "ISO_IR 109" => Term::Whole(Some(ISO_8859_3)),
        "ISO_IR 110" => Term::Whole(Some(ISO_8859_4)),
        "ISO_IR 144" => Term::Whole(Some(ISO_8859_5)),
        "ISO_IR 127" => Term::Whole(Some(ISO_8859_6)),
        "ISO_IR 126" => Term::Whole(Some(ISO_8859_7)),
        "ISO_IR 138" => Term::Whole(Some(ISO_8859_8)),
        "ISO_IR 148" => Term::Whole(Some(WINDOWS_1254)),
        "ISO_IR 203" => Term::Whole(Some(ISO_8859_15)),
        "ISO_IR 166" => Term::Whole(Some(WINDOWS_874)),
        "ISO_IR 13" => Term::Iso2022 {
            g0: Set::JisRomaji,
            g1: Some(Set::JisKatakana),
        },
        "ISO_IR 192" => Term::Whole(Some(UTF_8)),
        "GB18030" => Term::Whole(Some(GB18030)),
        "GBK" => Term::Whole(Some(GBK)),
        "ISO 2022 IR 6" => Term::Iso2022 {
            g0: Set::Ascii,
            g1: None,
        },
        "ISO 2022 IR 100" => Term::Iso2022 {
            g0: Set::Ascii,
            g1: Some(Set::Latin1),
        },
        "ISO 2022 IR 101" => single(ISO_8859_2),
        "ISO 2022 IR 109" => single(ISO_8859_3),
        "ISO 2022 IR 110" => single(ISO_8859_4),
        "ISO 2022 IR 144" => single(ISO_8859_5),
        "ISO 2022 IR 127" => single(ISO_8859_6),
        "ISO 2022 IR 126" => single(ISO_8859_7),
        "ISO 2022 IR 138" => single(ISO_8859_8),
        "ISO 2022 IR 148" => single(WINDOWS_1254),
        "ISO 2022 IR 203" => single(ISO_8859_15),
        "ISO 2022 IR 166" => single(WINDOWS_874),
        "ISO 2022 IR 13" => Term::Iso2022 {
            g0: Set::JisRomaji,
            g1: Some(Set::JisKatakana),
        },
        "ISO 2022 IR 87" => Term::Iso2022 {
            g0: Set::Jis0208,
            g1: None,
        },
        "ISO 2022 IR 159" => Term::Iso2022 {
            g0: Set::Jis0212,
            g1: None,
        },
        "ISO 2022 IR 149" => Term::Iso2022 {
            g0: Set::Ascii,
            g1: Some(Set::Ksx1001),
        },
        "ISO 2022 IR 58" => Term::Iso2022 {
            g0: Set::Ascii,
            g1: Some(Set::Gb2312),
        },
        _ => return None,
    })
}

/// Every defined term of Specific Character Set (PS3.3 C.12.1.1.2) sia decodes.
const DEFINED_TERMS: &[&str] = &[
    "ISO_IR 6",
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 144",
    "ISO_IR 127",
    "ISO_IR 126",
    "ISO_IR 138",
    "ISO_IR 148",
    "ISO_IR 203",
    "ISO_IR 166",
    "ISO_IR 13",
    "ISO_IR 192",
    "GB18030",
    "GBK",
    "ISO 2022 IR 6",
    "ISO 2022 IR 100",
    "ISO 2022 IR 101",
    "ISO 2022 IR 109",
    "ISO 2022 IR 110",
    "ISO 2022 IR 144",
    "ISO 2022 IR 127",
    "ISO 2022 IR 126",
    "ISO 2022 IR 138",
    "ISO 2022 IR 148",
    "ISO 2022 IR 203",
    "ISO 2022 IR 166",
    "ISO 2022 IR 13",
    "ISO 2022 IR 87",
    "ISO 2022 IR 159",
    "ISO 2022 IR 149",
    "ISO 2022 IR 58",
];

/// Names real files carry for a defined term that are no spelling of it (what pydicom
/// accepts as Python codec names), with the term they mean.
const ALIASES: &[(&str, &str)] = &[
    ("UTF8", "ISO_IR 192"),
    ("ISO88591", "ISO_IR 100"),
    ("LATIN1", "ISO_IR 100"),
];

/// A term reduced to what tells defined terms apart: upper case, without spaces,
/// underscores and hyphens (`iso-ir 192`, `ISO IR 192`, `ISO_IR192` are all `ISOIR192`).
fn spelling_key(term: &str) -> String {
    term.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\0'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The defined term `term` stands for: itself when it is one, else the one it is a
/// misspelling of (separators, case, stray spaces), else `None`.
pub fn normalize_term(term: &str) -> Option<&'static str> {
    let term = term.trim_matches([' ', '\0']);
    if let Some(&t) = DEFINED_TERMS.iter().find(|&&t| t == term) {
        return Some(t);
    }
    let key = spelling_key(term);
    if key.is_empty() {
        return None;
    }
    DEFINED_TERMS
        .iter()
        .copied()
        .find(|t| spelling_key(t) == key)
        .or_else(|| ALIASES.iter().find(|(k, _)| *k == key).map(|&(_, t)| t))
}

/// How text of one data set is decoded, from its Specific Character Set.
#[derive(Clone, Debug)]
pub struct CharacterSet {
    mode: Mode,
    /// A term was not spelt as defined and was read as the defined term it stands for.
    normalized: bool,
}

#[derive(Clone, Debug)]
enum Mode {
    /// One encoding for the whole value (`None` = default repertoire, read as Latin-1 so
    /// that stray high bytes survive).
    Whole(Option<&'static TextEncoding>),
    /// ISO 2022 code extensions with these initial sets.
    Iso2022 { g0: Set, g1: Option<Set> },
}

impl Default for CharacterSet {
    fn default() -> Self {
        CharacterSet {
            mode: Mode::Whole(None),
            normalized: false,
        }
    }
}

impl CharacterSet {
    /// Builds the decoder from the raw value of Specific Character Set. Misspelt terms
    /// (`ISO IR 192`, `iso-ir-100`, `ISO2022 IR 87`, ...) are read as the defined term
    /// they stand for ([`normalize_term`]; [`CharacterSet::normalized`] tells). Unknown
    /// terms fall back to the default repertoire rather than failing the file: a wrong
    /// accent is better than an unindexed study, and the raw value stays in the file.
    pub fn from_value(raw: &[u8]) -> CharacterSet {
        let text = String::from_utf8_lossy(raw);
        let mut normalized = false;
        let terms: Vec<&str> = text
            .split('\\')
            .map(|t| {
                let t = t.trim_matches([' ', '\0']);
                match normalize_term(t) {
                    Some(defined) => {
                        normalized |= defined != t;
                        defined
                    }
                    None => t,
                }
            })
            .collect();
        let any_extension = terms.iter().any(|t| t.starts_with("ISO 2022"));
        let first = terms.first().copied().unwrap_or("");
        let mode = match term(first) {
            Some(Term::Iso2022 { g0, g1 }) => Mode::Iso2022 { g0, g1 },
            // "" (ASCII) or an unknown first term, followed by code extensions.
            Some(Term::Whole(None)) | None if any_extension => Mode::Iso2022 {
                g0: Set::Ascii,
                g1: None,
            },
            Some(Term::Whole(e)) => Mode::Whole(e),
            None => Mode::Whole(None),
        };
        CharacterSet { mode, normalized }
    }

    /// Whether a term of the value was misspelt and read as the defined term it stands
    /// for.
    pub fn normalized(&self) -> bool {
        self.normalized
    }

    /// Decodes a text value of the given kind to UTF-8. `person_name` makes `^` and `=`
    /// reset the code extensions, as PS3.5 6.1.2.5.3 requires for PN.
    pub fn decode(&self, bytes: &[u8], person_name: bool) -> String {
        match self.mode {
            Mode::Whole(None) => latin1(bytes),
            Mode::Whole(Some(e)) => e.decode_without_bom_handling(bytes).0.into_owned(),
            Mode::Iso2022 { g0, g1 } => decode_iso2022(bytes, g0, g1, person_name),
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Parses the escape sequence at the start of `rest` (after ESC); returns the set, whether
/// it designates G1 (else G0), and how many bytes it used.
fn escape(rest: &[u8]) -> Option<(Set, bool, usize)> {
    use encoding_rs::*;
    let sb = |e| Set::SingleByte(e);
    Some(match rest {
        [b'(', b'B', ..] => (Set::Ascii, false, 2),
        [b'(', b'J', ..] => (Set::JisRomaji, false, 2),
        [b')', b'I', ..] => (Set::JisKatakana, true, 2),
        [b'$', b'B', ..] => (Set::Jis0208, false, 2),
        [b'$', b'@', ..] => (Set::Jis0208, false, 2),
        [b'$', b'(', b'D', ..] => (Set::Jis0212, false, 3),
        [b'$', b')', b'C', ..] => (Set::Ksx1001, true, 3),
        [b'$', b')', b'A', ..] => (Set::Gb2312, true, 3),
        [b'-', b'A', ..] => (Set::Latin1, true, 2),
        [b'-', b'B', ..] => (sb(ISO_8859_2), true, 2),
        [b'-', b'C', ..] => (sb(ISO_8859_3), true, 2),
        [b'-', b'D', ..] => (sb(ISO_8859_4), true, 2),
        [b'-', b'L', ..] => (sb(ISO_8859_5), true, 2),
        [b'-', b'G', ..] => (sb(ISO_8859_6), true, 2),
        [b'-', b'F', ..] => (sb(ISO_8859_7), true, 2),
        [b'-', b'H', ..] => (sb(ISO_8859_8), true, 2),
        [b'-', b'M', ..] => (sb(WINDOWS_1254), true, 2),
        [b'-', b'b', ..] => (sb(ISO_8859_15), true, 2),
        [b'-', b'T', ..] => (sb(WINDOWS_874), true, 2),
        _ => return None,
    })
}

/// Accumulates bytes destined for one encoding_rs decoder and flushes on a change.
struct Run {
    out: String,
    pending: Vec<u8>,
    decoder: Option<&'static TextEncoding>,
}

impl Run {
    fn push(&mut self, decoder: Option<&'static TextEncoding>, bytes: &[u8]) {
        if decoder != self.decoder {
            self.flush();
            self.decoder = decoder;
        }
        self.pending.extend_from_slice(bytes);
    }
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.decoder {
            None => self.out.push_str(&latin1(&self.pending)),
            Some(e) => self
                .out
                .push_str(&e.decode_without_bom_handling(&self.pending).0),
        }
        self.pending.clear();
    }
}

fn decode_iso2022(bytes: &[u8], init_g0: Set, init_g1: Option<Set>, person_name: bool) -> String {
    use encoding_rs::{EUC_JP, EUC_KR, GBK, SHIFT_JIS};
    let (mut g0, mut g1) = (init_g0, init_g1);
    let mut run = Run {
        out: String::with_capacity(bytes.len()),
        pending: Vec::new(),
        decoder: None,
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1B {
            if let Some((set, is_g1, used)) = escape(&bytes[i + 1..]) {
                if is_g1 {
                    g1 = Some(set)
                } else {
                    g0 = set
                }
                i += 1 + used;
                continue;
            }
            // An unknown escape: keep the byte rather than lose text.
            run.push(None, &[b]);
            i += 1;
            continue;
        }
        let delimiter = b == b'\\'
            || b == b'\r'
            || b == b'\n'
            || b == b'\t'
            || b == 0x0C
            || (person_name && (b == b'^' || b == b'='));
        if b < 0x80 {
            match g0 {
                Set::Jis0208 | Set::Jis0212
                    if b > 0x20
                        && i + 1 < bytes.len()
                        && bytes[i + 1] > 0x20
                        && bytes[i + 1] < 0x80 =>
                {
                    let pair = [b | 0x80, bytes[i + 1] | 0x80];
                    if g0 == Set::Jis0212 {
                        run.push(Some(EUC_JP), &[0x8F, pair[0], pair[1]]);
                    } else {
                        run.push(Some(EUC_JP), &pair);
                    }
                    i += 2;
                    continue;
                }
                _ => run.push(None, &[b]),
            }
            if delimiter {
                g0 = init_g0;
                g1 = init_g1;
            }
            i += 1;
            continue;
        }
        match g1 {
            Some(Set::Ksx1001) | Some(Set::Gb2312)
                if i + 1 < bytes.len() && bytes[i + 1] >= 0x80 =>
            {
                let enc = if g1 == Some(Set::Ksx1001) {
                    EUC_KR
                } else {
                    GBK
                };
                run.push(Some(enc), &bytes[i..i + 2]);
                i += 2;
            }
            Some(Set::JisKatakana) => {
                run.push(Some(SHIFT_JIS), &[b]);
                i += 1;
            }
            Some(Set::SingleByte(e)) => {
                run.push(Some(e), &[b]);
                i += 1;
            }
            _ => {
                run.push(None, &[b]);
                i += 1;
            }
        }
    }
    run.flush();
    run.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_repertoire_keeps_bytes() {
        assert_eq!(
            CharacterSet::default().decode(b"Smith^John", true),
            "Smith^John"
        );
    }

    #[test]
    fn latin1_and_utf8() {
        let cs = CharacterSet::from_value(b"ISO_IR 100");
        assert_eq!(cs.decode(b"Buc^J\xe9r\xf4me", true), "Buc^Jérôme");
        let cs = CharacterSet::from_value(b"ISO_IR 192");
        assert_eq!(
            cs.decode("Wang^XiaoDong=王^小東".as_bytes(), true),
            "Wang^XiaoDong=王^小東"
        );
    }

    #[test]
    fn japanese_iso2022_ir87_second_value() {
        // PS3.5 H.3.1 example: Yamada^Tarou=山田^太郎=やまだ^たろう
        let raw =
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let cs = CharacterSet::from_value(b"\\ISO 2022 IR 87");
        assert_eq!(cs.decode(raw, true), "Yamada^Tarou=山田^太郎=やまだ^たろう");
    }

    #[test]
    fn korean_iso2022_ir149() {
        // PS3.5 I.2 example: Hong^Gildong=洪^吉洞=홍^길동
        let raw = b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf";
        let cs = CharacterSet::from_value(b"\\ISO 2022 IR 149");
        assert_eq!(cs.decode(raw, true), "Hong^Gildong=洪^吉洞=홍^길동");
    }

    #[test]
    fn gb18030() {
        let (bytes, _, _) = encoding_rs::GB18030.encode("Wang^XiaoDong=王^小东");
        let cs = CharacterSet::from_value(b"GB18030");
        assert_eq!(cs.decode(&bytes, true), "Wang^XiaoDong=王^小东");
    }
}
