//! The `Accept` header: an RFC 7231 media-range parser (several ranges, q-values,
//! quoted and unquoted parameters), with DICOMweb's legacy type names normalised.

use std::fmt;

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
        let (k, s) = t.split_once('/').unwrap_or((t, ""));
        (self.kind == "*" || self.kind == k) && (self.subtype == "*" || self.subtype == s)
    }

    /// `type/subtype`.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.kind, self.subtype)
    }
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

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Older names that clients still send (PS3.18 2017 Table 6.1.1.8-3b).
pub fn normalise_media_type(t: &str) -> String {
    let t = t.to_ascii_lowercase();
    match t.as_str() {
        "image/x-dicom-rle" => "image/dicom-rle".into(),
        "image/x-jls" => "image/jls".into(),
        _ => t,
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

    /// Parses one `Accept` value. An empty value accepts nothing (RFC 7231 5.3.2).
    pub fn parse(value: &str) -> Result<AcceptHeader, AcceptError> {
        let mut ranges = Vec::new();
        for element in split_unquoted(value, ',')? {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() {
                continue; // "#rule" allows empty list elements
            }
            let mut parts = split_unquoted(element, ';')?.into_iter();
            let essence = parts
                .next()
                .unwrap_or_default()
                .trim_matches([' ', '\t'])
                .to_string();
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
            let normalised = normalise_media_type(&essence);
            let (kind, subtype) = normalised.split_once('/').expect("checked above");
            let mut range = MediaRange {
                kind: kind.into(),
                subtype: subtype.into(),
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
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            // The guard steps over the escaped character (or finds none).
            '\\' if quoted && chars.next().is_none() => {
                return Err(AcceptError("dangling escape".into()));
            }
            '\\' if quoted => {}
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
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
    fn commas_inside_quotes_do_not_split() {
        let a =
            AcceptHeader::parse("multipart/related; type=\"image/jpeg\"; foo=\"a,b\", */*;q=0.1")
                .unwrap();
        assert_eq!(a.ranges.len(), 2);
        assert_eq!(a.ranges[0].param("foo"), Some("a,b"));
    }
}
