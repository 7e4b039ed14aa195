//! The `Accept` header: an RFC 7231 media-range parser (several ranges, q-values,
//! quoted and unquoted parameters), with DICOMweb's legacy type names normalised.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// Longest `Accept` value [`AcceptHeader::parse_fields_remembered`] keeps.
pub(crate) const REMEMBERED_VALUE_BYTES: usize = 1024;
/// `Accept` values [`AcceptHeader::parse_fields_remembered`] keeps per thread.
pub(crate) const REMEMBERED_VALUES: usize = 4;

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRange {
    /// Type, lower case (`*` for any).
    pub kind: String,
    /// Subtype, lower case (`*` for any).
    pub subtype: String,
    /// Media-type parameters before `q`, names lower case, values unquoted.
    pub params: Vec<(String, String)>,
    /// Quality in thousandths (0..=1000).
    pub q: u16,
}

impl MediaRange {
    /// The value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this range matches the concrete media type `t` (`type/subtype`).
    pub fn matches(&self, t: &str) -> bool {
        type_matches(&self.kind, &self.subtype, t)
    }

    /// `type/subtype`.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.kind, self.subtype)
    }
}

/// Whether the range `kind/subtype` (either may be `*`) matches the concrete media type
/// `t` (`type/subtype`).
pub(crate) fn type_matches(kind: &str, subtype: &str, t: &str) -> bool {
    let (k, s) = t.split_once('/').unwrap_or((t, ""));
    (kind == "*" || kind == k) && (subtype == "*" || subtype == s)
}

/// A parsed `Accept` header (all `Accept` fields of a request, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptHeader {
    /// The media ranges, in the order sent.
    pub ranges: Vec<MediaRange>,
}

/// A malformed `Accept` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptError(pub String);

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed Accept header: {}", self.0)
    }
}

/// An RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '.'
                | '^'
                | '_'
                | '`'
                | '|'
                | '~'
        )
}

/// The media type `kind/subtype` lower-cased, older names replaced (see
/// [`normalise_media_type`]), as its two halves.
fn normalised_halves(kind: &str, subtype: &str) -> (String, String) {
    let kind = kind.to_ascii_lowercase();
    let mut subtype = subtype.to_ascii_lowercase();
    if kind == "image" {
        match subtype.as_str() {
            "x-dicom-rle" => subtype = "dicom-rle".into(),
            "x-jls" => subtype = "jls".into(),
            _ => {}
        }
    }
    (kind, subtype)
}

/// Older names that clients still send (PS3.18 2017 Table 6.1.1.8-3b).
pub fn normalise_media_type(t: &str) -> String {
    match t.split_once('/') {
        Some((kind, subtype)) => {
            let (kind, subtype) = normalised_halves(kind, subtype);
            format!("{kind}/{subtype}")
        }
        None => t.to_ascii_lowercase(),
    }
}

impl AcceptHeader {
    /// Accept everything (what a missing header means).
    pub fn any() -> AcceptHeader {
        AcceptHeader {
            ranges: vec![MediaRange {
                kind: "*".into(),
                subtype: "*".into(),
                params: Vec::new(),
                q: 1000,
            }],
        }
    }

    /// Parses the values of every `Accept` field; none at all means `*/*`.
    pub fn parse_fields<'a>(
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<AcceptHeader, AcceptError> {
        let mut ranges = Vec::new();
        let mut any_field = false;
        for f in fields {
            any_field = true;
            ranges.extend(AcceptHeader::parse(f)?.ranges);
        }
        if !any_field {
            return Ok(AcceptHeader::any());
        }
        Ok(AcceptHeader { ranges })
    }

    /// [`AcceptHeader::parse_fields`], remembered per thread for the last few values
    /// seen: a client sends the same `Accept` with every request (a viewer's frames, a
    /// pipeline's loop), and parsing it anew was a tenth of the instructions of a frame
    /// request. Only single fields of at most [`REMEMBERED_VALUE_BYTES`] are kept, at
    /// most [`REMEMBERED_VALUES`] per thread; malformed ones are parsed (and refused)
    /// every time.
    pub(crate) fn parse_fields_remembered<'a>(
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<Rc<AcceptHeader>, AcceptError> {
        let mut fields = fields.into_iter();
        let value = match (fields.next(), fields.next()) {
            (Some(only), None) => only,
            (None, _) => return Ok(Rc::new(AcceptHeader::any())),
            // Several fields: rare, not worth remembering.
            (Some(a), Some(b)) => {
                return AcceptHeader::parse_fields([a, b].into_iter().chain(fields)).map(Rc::new);
            }
        };
        thread_local! {
            static RECENT: RefCell<Vec<(String, Rc<AcceptHeader>)>> = const { RefCell::new(Vec::new()) };
        }
        if value.len() > REMEMBERED_VALUE_BYTES {
            return AcceptHeader::parse(value).map(Rc::new);
        }
        if let Some(hit) = RECENT.with(|r| {
            let r = r.borrow();
            r.iter().find(|(v, _)| v == value).map(|(_, a)| a.clone())
        }) {
            return Ok(hit);
        }
        let parsed = Rc::new(AcceptHeader::parse(value)?);
        RECENT.with(|r| {
            let mut r = r.borrow_mut();
            r.truncate(REMEMBERED_VALUES - 1);
            r.insert(0, (value.to_string(), parsed.clone()));
        });
        Ok(parsed)
    }

    /// Parses one `Accept` value. An empty value accepts nothing (RFC 7231 5.3.2).
    pub fn parse(value: &str) -> Result<AcceptHeader, AcceptError> {
        let mut ranges = Vec::new();
        for element in split_unquoted(value, ',')? {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() {
                continue; // "#rule" allows empty list elements
            }
            let mut parts = split_unquoted(element, ';')?.into_iter();
            let essence = parts.next().unwrap_or_default().trim_matches([' ', '\t']);
            let (kind, subtype) = essence
                .split_once('/')
                .ok_or_else(|| AcceptError(format!("{essence:?} is not type/subtype")))?;
            if kind.is_empty()
                || subtype.is_empty()
                || !kind.chars().all(is_tchar)
                || !subtype.chars().all(is_tchar)
            {
                return Err(AcceptError(format!("{essence:?} is not type/subtype")));
            }
            if kind == "*" && subtype != "*" {
                return Err(AcceptError(format!(
                    "{essence:?}: a wildcard type needs a wildcard subtype"
                )));
            }
            let (kind, subtype) = normalised_halves(kind, subtype);
            let mut range = MediaRange {
                kind,
                subtype,
                params: Vec::new(),
                q: 1000,
            };
            for p in parts {
                let p = p.trim_matches([' ', '\t']);
                if p.is_empty() {
                    continue;
                }
                let (name, raw) = p
                    .split_once('=')
                    .ok_or_else(|| AcceptError(format!("parameter {p:?} has no value")))?;
                let name = name.trim_matches([' ', '\t']).to_ascii_lowercase();
                if name.is_empty() || !name.chars().all(is_tchar) {
                    return Err(AcceptError(format!("bad parameter name {name:?}")));
                }
                let value = unquote(raw.trim_matches([' ', '\t']))?;
                if name == "q" {
                    range.q = parse_q(&value)?;
                    break; // what follows q is accept-ext, which no one uses
                }
                let value = if name == "type" {
                    normalise_media_type(&value)
                } else {
                    value
                };
                range.params.push((name, value));
            }
            ranges.push(range);
        }
        Ok(AcceptHeader { ranges })
    }
}

/// Splits on `sep` outside quoted strings; the pieces are the text between separators,
/// as written (quotes and escapes kept).
fn split_unquoted(s: &str, sep: char) -> Result<Vec<&str>, AcceptError> {
    // Bytes, not chars: the separators, quote and backslash are ASCII, which no byte of
    // a multi-byte UTF-8 character equals, so every split falls on a char boundary (and
    // an escaped multi-byte character's remaining bytes are ordinary bytes here).
    let sep = u8::try_from(sep).expect("an ASCII separator");
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut bytes = s.bytes().enumerate();
    while let Some((i, b)) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            // The guard steps over the escaped byte (or finds none).
            b'\\' if quoted && bytes.next().is_none() => {
                return Err(AcceptError("dangling escape".into()));
            }
            b'\\' if quoted => {}
            b if b == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(AcceptError("unterminated quoted string".into()));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn unquote(v: &str) -> Result<String, AcceptError> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| AcceptError(format!("bad quoted string {v:?}")))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or('\\')
            } else {
                c
            });
        }
        return Ok(out);
    }
    if v.is_empty() || !v.chars().all(|c| is_tchar(c) || c == '/') {
        // '/' is not a tchar, but `type=application/dicom` unquoted is common; allow it.
        return Err(AcceptError(format!("bad parameter value {v:?}")));
    }
    Ok(v.to_string())
}

fn parse_q(v: &str) -> Result<u16, AcceptError> {
    let bad = || AcceptError(format!("bad q-value {v:?}"));
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    match int {
        "0" => Ok(frac_val),
        "1" if frac_val == 0 => Ok(1000),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicomweb_examples() {
        let a = AcceptHeader::parse(
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*, multipart/related; type=\"image/*\"; boundary=**;q=0.5",
        )
        .unwrap();
        assert_eq!(a.ranges.len(), 2);
        assert_eq!(a.ranges[0].param("type"), Some("application/octet-stream"));
        assert_eq!(a.ranges[0].param("transfer-syntax"), Some("*"));
        assert_eq!(a.ranges[1].q, 500);
        assert_eq!(a.ranges[1].param("boundary"), Some("**"));
    }

    #[test]
    fn legacy_names_and_unquoted_type() {
        let a =
            AcceptHeader::parse("multipart/related; type=image/x-jls, image/x-dicom-rle").unwrap();
        assert_eq!(a.ranges[0].param("type"), Some("image/jls"));
        assert_eq!(a.ranges[1].essence(), "image/dicom-rle");
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1").unwrap(), 1000);
        assert_eq!(parse_q("0.25").unwrap(), 250);
        assert_eq!(parse_q("1.000").unwrap(), 1000);
        assert!(parse_q("1.5").is_err());
        assert!(parse_q("0.1234").is_err());
        assert!(parse_q("2").is_err());
    }

    #[test]
    fn malformed() {
        for bad in [
            "image",
            "*/jpeg",
            "image/jpeg; q",
            "a/b; type=\"x",
            "a/b; q=7",
            "a b/c",
        ] {
            assert!(AcceptHeader::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remembered_values_parse_as_fresh_ones() {
        let jpeg = "multipart/related; type=\"image/jpeg\"; transfer-syntax=1.2.840.10008.1.2.4.50";
        let first = AcceptHeader::parse_fields_remembered([jpeg]).unwrap();
        let again = AcceptHeader::parse_fields_remembered([jpeg]).unwrap();
        assert!(
            Rc::ptr_eq(&first, &again),
            "the second request reuses the parse"
        );
        assert_eq!(*first, AcceptHeader::parse(jpeg).unwrap());
        // Older values make way for newer ones; each still parses as itself.
        let values: Vec<String> = (0..REMEMBERED_VALUES + 2)
            .map(|i| format!("application/dicom+json, image/x-jls;q=0.{i}"))
            .collect();
        for v in &values {
            assert_eq!(
                *AcceptHeader::parse_fields_remembered([v.as_str()]).unwrap(),
                AcceptHeader::parse(v).unwrap()
            );
        }
        let refreshed = AcceptHeader::parse_fields_remembered([jpeg]).unwrap();
        assert!(!Rc::ptr_eq(&first, &refreshed), "{jpeg} was pushed out");
        assert_eq!(*refreshed, *first);
        // No field, several fields, a long one, a malformed one: as parse_fields says.
        let fields = |f: &[&str]| AcceptHeader::parse_fields_remembered(f.iter().copied());
        assert_eq!(*fields(&[]).unwrap(), AcceptHeader::any());
        assert_eq!(
            *fields(&["image/jpeg", "image/jls;q=0.5"]).unwrap(),
            AcceptHeader::parse_fields(["image/jpeg", "image/jls;q=0.5"]).unwrap()
        );
        let long = format!("image/jpeg; x=\"{}\"", "a".repeat(REMEMBERED_VALUE_BYTES));
        assert_eq!(
            *fields(&[&long]).unwrap(),
            AcceptHeader::parse(&long).unwrap()
        );
        for _ in 0..2 {
            assert!(fields(&["a b/c"]).is_err());
        }
    }

    #[test]
    fn commas_inside_quotes_do_not_split() {
        let a =
            AcceptHeader::parse("multipart/related; type=\"image/jpeg\"; foo=\"a,b\", */*;q=0.1")
                .unwrap();
        assert_eq!(a.ranges.len(), 2);
        assert_eq!(a.ranges[0].param("foo"), Some("a,b"));
    }
}
