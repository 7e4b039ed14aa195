//! QIDO-RS: the query string, matching (PS3.4 C.2.2.2: wildcards, ranges, UID lists,
//! fuzzy person names), `includefield`, paging, and the DICOM JSON of the results.

use crate::dicom::json::{json_string, person_name_json};
use crate::index::fold_name;
use crate::index::search::{Condition, Field, Level, MAX_LIST_VALUES, Search, SearchRow};

/// How an attribute is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// UID list matching.
    Uid,
    /// Single value, `*`/`?` wildcards, case-sensitive.
    Text,
    /// Person name: wildcards, case-insensitive, `fuzzymatching`.
    Name,
    /// Date or date range.
    Date,
    /// Time or time range.
    Time,
    /// Code or list of codes.
    Code,
    /// Integer.
    Int,
    /// A study with a series of any of these modalities.
    Modalities,
    /// Returned, not matchable.
    ReturnOnly,
}

struct Attr {
    tag: u32,
    keyword: &'static str,
    vr: &'static str,
    level: Level,
    kind: Kind,
    /// Where the index matches it (`None`: returned only, or matched otherwise).
    field: Option<Field>,
}

#[rustfmt::skip]
static ATTRS: &[Attr] = &[
    Attr { tag: 0x0008_0005, keyword: "SpecificCharacterSet", vr: "CS", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0008_0016, keyword: "SOPClassUID", vr: "UI", level: Level::Instance, kind: Kind::Uid, field: Some(Field::SOPClassUID) },
    Attr { tag: 0x0008_0018, keyword: "SOPInstanceUID", vr: "UI", level: Level::Instance, kind: Kind::Uid, field: Some(Field::SOPInstanceUID) },
    Attr { tag: 0x0008_0020, keyword: "StudyDate", vr: "DA", level: Level::Study, kind: Kind::Date, field: Some(Field::StudyDate) },
    Attr { tag: 0x0008_0030, keyword: "StudyTime", vr: "TM", level: Level::Study, kind: Kind::Time, field: Some(Field::StudyTime) },
    Attr { tag: 0x0008_0050, keyword: "AccessionNumber", vr: "SH", level: Level::Study, kind: Kind::Text, field: Some(Field::AccessionNumber) },
    Attr { tag: 0x0008_0056, keyword: "InstanceAvailability", vr: "CS", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0008_0060, keyword: "Modality", vr: "CS", level: Level::Series, kind: Kind::Code, field: Some(Field::Modality) },
    Attr { tag: 0x0008_0061, keyword: "ModalitiesInStudy", vr: "CS", level: Level::Study, kind: Kind::Modalities, field: None },
    Attr { tag: 0x0008_0090, keyword: "ReferringPhysicianName", vr: "PN", level: Level::Study, kind: Kind::Name, field: Some(Field::ReferringPhysicianName) },
    Attr { tag: 0x0008_0201, keyword: "TimezoneOffsetFromUTC", vr: "SH", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0008_1030, keyword: "StudyDescription", vr: "LO", level: Level::Study, kind: Kind::Text, field: Some(Field::StudyDescription) },
    Attr { tag: 0x0008_103E, keyword: "SeriesDescription", vr: "LO", level: Level::Series, kind: Kind::Text, field: Some(Field::SeriesDescription) },
    Attr { tag: 0x0008_1190, keyword: "RetrieveURL", vr: "UR", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0010_0010, keyword: "PatientName", vr: "PN", level: Level::Study, kind: Kind::Name, field: Some(Field::PatientName) },
    Attr { tag: 0x0010_0020, keyword: "PatientID", vr: "LO", level: Level::Study, kind: Kind::Text, field: Some(Field::PatientID) },
    Attr { tag: 0x0010_0021, keyword: "IssuerOfPatientID", vr: "LO", level: Level::Study, kind: Kind::Text, field: Some(Field::IssuerOfPatientID) },
    Attr { tag: 0x0010_0030, keyword: "PatientBirthDate", vr: "DA", level: Level::Study, kind: Kind::Date, field: Some(Field::PatientBirthDate) },
    Attr { tag: 0x0010_0040, keyword: "PatientSex", vr: "CS", level: Level::Study, kind: Kind::Code, field: Some(Field::PatientSex) },
    Attr { tag: 0x0018_0015, keyword: "BodyPartExamined", vr: "CS", level: Level::Series, kind: Kind::Code, field: Some(Field::BodyPartExamined) },
    Attr { tag: 0x0020_000D, keyword: "StudyInstanceUID", vr: "UI", level: Level::Study, kind: Kind::Uid, field: Some(Field::StudyInstanceUID) },
    Attr { tag: 0x0020_000E, keyword: "SeriesInstanceUID", vr: "UI", level: Level::Series, kind: Kind::Uid, field: Some(Field::SeriesInstanceUID) },
    Attr { tag: 0x0020_0010, keyword: "StudyID", vr: "SH", level: Level::Study, kind: Kind::Text, field: Some(Field::StudyID) },
    Attr { tag: 0x0020_0011, keyword: "SeriesNumber", vr: "IS", level: Level::Series, kind: Kind::Int, field: Some(Field::SeriesNumber) },
    Attr { tag: 0x0020_0013, keyword: "InstanceNumber", vr: "IS", level: Level::Instance, kind: Kind::Int, field: Some(Field::InstanceNumber) },
    Attr { tag: 0x0020_1206, keyword: "NumberOfStudyRelatedSeries", vr: "IS", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0020_1208, keyword: "NumberOfStudyRelatedInstances", vr: "IS", level: Level::Study, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0020_1209, keyword: "NumberOfSeriesRelatedInstances", vr: "IS", level: Level::Series, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0028_0008, keyword: "NumberOfFrames", vr: "IS", level: Level::Instance, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0028_0010, keyword: "Rows", vr: "US", level: Level::Instance, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0028_0011, keyword: "Columns", vr: "US", level: Level::Instance, kind: Kind::ReturnOnly, field: None },
    Attr { tag: 0x0028_0100, keyword: "BitsAllocated", vr: "US", level: Level::Instance, kind: Kind::ReturnOnly, field: None },
];

/// Attributes returned whatever was asked (PS3.18 Tables 10.6.3-3..5, plus the study
/// and series descriptions viewers show).
const STUDY_DEFAULT: &[u32] = &[
    0x0008_0005,
    0x0008_0020,
    0x0008_0030,
    0x0008_0050,
    0x0008_0056,
    0x0008_0061,
    0x0008_0090,
    0x0008_0201,
    0x0008_1030,
    0x0008_1190,
    0x0010_0010,
    0x0010_0020,
    0x0010_0030,
    0x0010_0040,
    0x0020_000D,
    0x0020_0010,
    0x0020_1206,
    0x0020_1208,
];
const SERIES_DEFAULT: &[u32] = &[
    0x0008_0005,
    0x0008_0060,
    0x0008_103E,
    0x0008_1190,
    0x0020_000D,
    0x0020_000E,
    0x0020_0011,
    0x0020_1209,
];
const INSTANCE_DEFAULT: &[u32] = &[
    0x0008_0005,
    0x0008_0016,
    0x0008_0018,
    0x0008_1190,
    0x0020_000D,
    0x0020_000E,
    0x0020_0013,
    0x0028_0008,
    0x0028_0010,
    0x0028_0011,
    0x0028_0100,
];

/// Most results of one search when the client sets no lower `limit`.
pub const MAX_RESULTS: u64 = 1000;

/// A parsed QIDO-RS request.
#[derive(Debug)]
pub struct Qido {
    /// The search to run.
    pub search: Search,
    /// Tags to return, sorted.
    pub returned: Vec<u32>,
    /// `includefield` names that are not supported (reported in a Warning).
    pub ignored_fields: Vec<String>,
    /// The limit the client asked for, if any.
    pub asked_limit: Option<u64>,
}

fn bad(m: impl Into<String>) -> (u16, String) {
    (400, m.into())
}

/// Percent-decodes a query component (`+` is a space, as form encoding writes it).
pub fn decode(s: &str) -> Result<String, (u16, String)> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| bad(format!("bad percent-encoding in {s:?}")))?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad(format!("{s:?} is not UTF-8")))
}

fn attr_by_name(name: &str) -> Option<&'static Attr> {
    let by_tag = (name.len() == 8)
        .then(|| u32::from_str_radix(name, 16).ok())
        .flatten();
    ATTRS
        .iter()
        .find(|a| Some(a.tag) == by_tag || a.keyword.eq_ignore_ascii_case(name))
}

fn rank(l: Level) -> u8 {
    match l {
        Level::Study => 0,
        Level::Series => 1,
        Level::Instance => 2,
    }
}

fn is_uid(s: &str) -> bool {
    super::is_uid(s)
}

/// The decoded (key, value) pairs of a query string.
pub fn decode_query(query: &str) -> Result<Vec<(String, String)>, (u16, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Parses the query string of a search at `level`, restricted to a study and series
/// given in the path.
pub fn parse(
    level: Level,
    study: Option<&str>,
    series: Option<&str>,
    query: &str,
) -> Result<Qido, (u16, String)> {
    parse_pairs(level, study, series, &decode_query(query)?)
}

/// Parses the decoded query parameters of a search at `level` (PS3.18 10.6.1),
/// restricted to a study and series given in the path.
pub fn parse_pairs(
    level: Level,
    study: Option<&str>,
    series: Option<&str>,
    query: &[(String, String)],
) -> Result<Qido, (u16, String)> {
    let mut conditions = Vec::new();
    if let Some(s) = study {
        conditions.push(Condition::study_is(s));
    }
    if let Some(s) = series {
        conditions.push(Condition::series_is(s));
    }
    let mut fuzzy = false;
    let (mut limit, mut offset) = (None, 0u64);
    let mut include: Vec<u32> = Vec::new();
    let mut include_all = false;
    let mut ignored = Vec::new();
    let mut matches: Vec<(&'static Attr, String)> = Vec::new();
    for (key, value) in query {
        let value = value.clone();
        match key.as_str() {
            "limit" => {
                limit = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad(format!("limit={value:?} is not a number")))?,
                )
            }
            "offset" => {
                offset = value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("offset={value:?} is not a number")))?
            }
            "fuzzymatching" => {
                fuzzy = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("fuzzymatching is true or false")),
                }
            }
            "emptyvaluematching" | "multiplevaluematching" => {}
            "includefield" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    if name == "all" {
                        include_all = true;
                    } else if let Some(a) = attr_by_name(name) {
                        include.push(a.tag);
                    } else {
                        ignored.push(name.to_string());
                    }
                }
            }
            name => {
                let attr = attr_by_name(name)
                    .ok_or_else(|| bad(format!("{name} is not a supported search attribute")))?;
                if attr.kind == Kind::ReturnOnly {
                    return Err(bad(format!(
                        "{} can be returned but not matched",
                        attr.keyword
                    )));
                }
                if rank(attr.level) > rank(level) {
                    return Err(bad(format!(
                        "{} is not an attribute of this search level",
                        attr.keyword
                    )));
                }
                if matches.iter().any(|(a, _)| a.tag == attr.tag) {
                    return Err(bad(format!("{} is given twice", attr.keyword)));
                }
                matches.push((attr, value));
            }
        }
    }
    for (attr, value) in &matches {
        if let Some(c) = condition(attr, value, fuzzy)? {
            conditions.push(c);
        }
    }
    let defaults: &[u32] = match level {
        Level::Study => STUDY_DEFAULT,
        Level::Series => SERIES_DEFAULT,
        Level::Instance => INSTANCE_DEFAULT,
    };
    let mut returned: Vec<u32> = defaults.to_vec();
    // A search over all series or instances also returns the attributes of the levels
    // above (PS3.18 10.6.3.3.2/3).
    if level == Level::Series && study.is_none() {
        returned.extend_from_slice(STUDY_DEFAULT);
    }
    if level == Level::Instance {
        if series.is_none() {
            returned.extend_from_slice(SERIES_DEFAULT);
        }
        if study.is_none() {
            returned.extend_from_slice(STUDY_DEFAULT);
        }
    }
    if include_all {
        returned.extend(
            ATTRS
                .iter()
                .filter(|a| rank(a.level) <= rank(level))
                .map(|a| a.tag),
        );
    }
    returned.extend(include.iter().copied().filter(|t| {
        ATTRS
            .iter()
            .any(|a| a.tag == *t && rank(a.level) <= rank(level))
    }));
    returned.extend(matches.iter().map(|(a, _)| a.tag));
    returned.sort_unstable();
    returned.dedup();
    let effective = limit.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    Ok(Qido {
        search: Search {
            level,
            conditions,
            offset,
            limit: effective,
        },
        returned,
        ignored_fields: ignored,
        asked_limit: limit,
    })
}

/// DICOM wildcards to a LIKE pattern with `\` as escape (`%`, `_` and `\` in the
/// value match themselves).
fn like(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn list(value: &str) -> Vec<String> {
    value
        .split([',', '\\'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn range(
    value: &str,
    check: fn(&str) -> bool,
    what: &str,
) -> Result<(Option<String>, Option<String>), (u16, String)> {
    let (lo, hi) = match value.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (value.trim(), value.trim()),
    };
    if lo.is_empty() && hi.is_empty() {
        return Err(bad(format!("{what} range {value:?} has no bound")));
    }
    for b in [lo, hi] {
        if !b.is_empty() && !check(b) {
            return Err(bad(format!("{b:?} is not a valid {what}")));
        }
    }
    Ok((
        (!lo.is_empty()).then(|| lo.to_string()),
        (!hi.is_empty()).then(|| hi.to_string()),
    ))
}

fn is_date(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_time(s: &str) -> bool {
    let whole = s.split('.').next().unwrap_or("");
    (2..=6).contains(&whole.len())
        && whole.len().is_multiple_of(2)
        && whole.bytes().all(|b| b.is_ascii_digit())
}

/// Most bytes a single (not listed) match value may have.
const MAX_VALUE_LEN: usize = 1024;

fn condition(attr: &Attr, value: &str, fuzzy: bool) -> Result<Option<Condition>, (u16, String)> {
    // The index field matched; only `ReturnOnly` and `Modalities` have none.
    let col = || {
        attr.field
            .ok_or_else(|| bad(format!("{} cannot be matched", attr.keyword)))
    };
    // Universal matching: `*`, or a zero-length value (PS3.4 C.2.2.2.3), which a list of
    // only empty values also is.
    if value == "*" || value.trim().is_empty() {
        return Ok(None);
    }
    // A value is at most a few dozen characters in DICOM (a PN group 64, LO 64); a long
    // one is no match worth running, and SQLite refuses LIKE/GLOB patterns past 50,000
    // bytes. Lists are bounded by count below.
    let is_list = matches!(attr.kind, Kind::Uid | Kind::Code | Kind::Modalities);
    if !is_list && value.len() > MAX_VALUE_LEN {
        return Err(bad(format!(
            "{} is {} bytes long; at most {MAX_VALUE_LEN} are accepted",
            attr.keyword,
            value.len()
        )));
    }
    // A list of only empty values is universal matching too.
    let listed = if is_list {
        let values = list(value);
        if values.is_empty() {
            return Ok(None);
        }
        if values.len() > MAX_LIST_VALUES {
            return Err(bad(format!(
                "{} lists {} values; at most {MAX_LIST_VALUES} are accepted",
                attr.keyword,
                values.len()
            )));
        }
        values
    } else {
        Vec::new()
    };
    Ok(Some(match attr.kind {
        Kind::Uid => {
            if !listed.iter().all(|u| is_uid(u)) {
                return Err(bad(format!(
                    "{}={value:?} is not a list of UIDs",
                    attr.keyword
                )));
            }
            Condition::text_in(col()?, &listed)
        }
        // Case-sensitive (PS3.4 C.2.2.2.4 leaves case to the attribute; only PN folds).
        Kind::Text if value.contains(['*', '?']) => Condition::like(col()?, &like(value)),
        Kind::Text => Condition::text_equals(col()?, value),
        // Names ignore case: the folded key the index keeps beside each name (see
        // `crate::index::fold_name`) against the value folded the same way. Fuzzy: any
        // name component starting with the value.
        Kind::Name if fuzzy => {
            Condition::name_component_like(col()?, &format!("% {}%", like(&fold_name(value))))
        }
        Kind::Name => Condition::name_like(col()?, &like(&fold_name(value))),
        Kind::Code => Condition::text_in(col()?, &listed),
        Kind::Int => {
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("{}={value:?} is not a number", attr.keyword)))?;
            Condition::int_equals(col()?, n)
        }
        Kind::Modalities => Condition::study_has_modality_code(&listed),
        Kind::Date => {
            let (lo, hi) = range(value, is_date, "date")?;
            Condition::date_between(col()?, lo.as_deref(), hi.as_deref())
        }
        Kind::Time => {
            let (lo, hi) = range(value, is_time, "time")?;
            // Times are compared on HHMMSS; a bound's missing digits widen it.
            let digits = |t: &str| t.split('.').next().unwrap_or("").to_string();
            let lo = lo.map(|t| format!("{:0<6}", digits(&t)));
            let hi = hi.map(|t| format!("{:9<6}", digits(&t)));
            Condition::time_between(col()?, lo.as_deref(), hi.as_deref())
        }
        Kind::ReturnOnly => return Ok(None),
    }))
}

/// The DICOM JSON object of one result row.
pub fn row_json(row: &SearchRow, returned: &[u32], dicomweb_base: &str, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for &tag in returned {
        let Some(attr) = ATTRS.iter().find(|a| a.tag == tag) else {
            continue;
        };
        let retrieve = match (row.sop_instance_uid.is_empty(), row.series_uid.is_empty()) {
            (false, _) => format!(
                "{dicomweb_base}/studies/{}/series/{}/instances/{}",
                row.study_uid, row.series_uid, row.sop_instance_uid
            ),
            (true, false) => format!(
                "{dicomweb_base}/studies/{}/series/{}",
                row.study_uid, row.series_uid
            ),
            (true, true) => format!("{dicomweb_base}/studies/{}", row.study_uid),
        };
        let text_value: Option<String> = match tag {
            0x0008_0005 => Some("ISO_IR 192".into()),
            0x0008_0016 => Some(row.sop_class_uid.clone()),
            0x0008_0018 => Some(row.sop_instance_uid.clone()),
            0x0008_0020 => Some(row.study_date.clone()),
            0x0008_0030 => Some(row.study_time.clone()),
            0x0008_0050 => Some(row.accession_number.clone()),
            0x0008_0056 => Some("ONLINE".into()),
            0x0008_0060 => Some(row.modality.clone()),
            0x0008_0201 => Some(row.timezone_offset.clone()),
            0x0008_1030 => Some(row.study_description.clone()),
            0x0008_103E => Some(row.series_description.clone()),
            0x0008_1190 => Some(retrieve),
            0x0010_0020 => Some(row.patient_id.clone()),
            0x0010_0021 => Some(row.issuer.clone()),
            0x0010_0030 => Some(row.birth_date.clone()),
            0x0010_0040 => Some(row.sex.clone()),
            0x0018_0015 => Some(row.body_part.clone()),
            0x0020_000D => Some(row.study_uid.clone()),
            0x0020_000E => Some(row.series_uid.clone()),
            0x0020_0010 => Some(row.study_id.clone()),
            _ => None,
        };
        // Timezone Offset is conditional: only when the study has one.
        if tag == 0x0008_0201 && row.timezone_offset.is_empty() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(format!("\"{tag:08X}\":{{\"vr\":\"{}\"", attr.vr).as_bytes());
        let number = |n: Option<i64>| n.map(|v| v.to_string());
        let values: Vec<Vec<u8>> = match tag {
            0x0010_0010 | 0x0008_0090 => {
                let pn = if tag == 0x0010_0010 {
                    &row.patient_name
                } else {
                    &row.referring_physician
                };
                if pn.is_empty() {
                    Vec::new()
                } else {
                    let mut v = Vec::new();
                    person_name_json(&mut v, pn);
                    vec![v]
                }
            }
            0x0008_0061 => row
                .modalities
                .split('\\')
                .filter(|m| !m.is_empty())
                .map(|m| {
                    let mut v = Vec::new();
                    json_string(&mut v, m);
                    v
                })
                .collect(),
            0x0020_0011 | 0x0020_0013 | 0x0020_1206 | 0x0020_1208 | 0x0020_1209 | 0x0028_0008
            | 0x0028_0010 | 0x0028_0011 | 0x0028_0100 => {
                let n = match tag {
                    0x0020_0011 => row.series_number,
                    0x0020_0013 => row.instance_number,
                    0x0020_1206 => Some(row.study_series),
                    0x0020_1208 => Some(row.study_instances),
                    0x0020_1209 => Some(row.series_instances),
                    0x0028_0008 => (row.frames > 0).then_some(row.frames),
                    0x0028_0010 => row.rows,
                    0x0028_0011 => row.columns,
                    _ => row.bits_allocated,
                };
                number(n).map(|s| vec![s.into_bytes()]).unwrap_or_default()
            }
            _ => match text_value {
                Some(t) if !t.is_empty() => {
                    let mut v = Vec::new();
                    json_string(&mut v, &t);
                    vec![v]
                }
                _ => Vec::new(),
            },
        };
        if !values.is_empty() {
            out.extend_from_slice(b",\"Value\":[");
            out.extend_from_slice(&values.join(&b','));
            out.push(b']');
        }
        out.push(b'}');
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse(
            Level::Study,
            None,
            None,
            "PatientID=ABC*&StudyDate=20200101-&limit=5&includefield=00081030,Bogus",
        )
        .unwrap();
        assert_eq!(q.search.conditions.len(), 2);
        assert_eq!(q.search.limit, 5);
        assert_eq!(q.ignored_fields, vec!["Bogus".to_string()]);
        assert!(
            parse(Level::Study, None, None, "Modality=CT").is_err(),
            "series attribute at study level"
        );
        assert!(parse(Level::Study, None, None, "StudyDate=2020").is_err());
        assert!(parse(Level::Study, None, None, "StudyInstanceUID=1.2,../x").is_err());
        // A safe non-conformant UID is a UID (issue 14).
        assert!(parse(Level::Study, None, None, "StudyInstanceUID=1.2,abc").is_ok());
        assert!(parse(Level::Study, None, None, "Nonsense=1").is_err());
        assert!(parse(Level::Study, None, None, "PatientID=%zz").is_err());
        assert!(parse(Level::Series, None, None, "Modality=CT&00080060=MR").is_err());
    }

    #[test]
    fn patterns() {
        assert_eq!(like("Doe*_x?"), "Doe%\\_x_");
        assert_eq!(decode("Doe%5EJ+x").unwrap(), "Doe^J x");
    }
}
