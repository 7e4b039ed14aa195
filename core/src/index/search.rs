//! QIDO-RS searches over the index: conditions in, rows out. The conditions are built
//! by `crate::wado::qido` and `crate::fhir` from the query string and by `crate::auth`
//! from a grant's compartment, naming attributes as [`Field`]s; the SQL of each lives
//! here alone, and values only ever reach the database as bound parameters. Condition SQL is in the subset both backends answer alike (see
//! the index module's docs).

pub use super::db::Value;

use super::Index;
use super::db::Param;
use crate::error::Result;

/// Level of a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `studies`.
    Study,
    /// `series` (of all studies, or of one).
    Series,
    /// `instances` (of all, one study, or one series).
    Instance,
}

/// Most values one search parameter may list (`ModalitiesInStudy=CT,MR,...`, a list of
/// UIDs). SQLite binds at most 32,766 values in one statement; the few list parameters
/// of a search stay far below that at this bound, so a long list is a 400, not an error
/// from the database.
pub const MAX_LIST_VALUES: usize = 1000;

/// An attribute a search can match, named by its DICOM keyword (PS3.6) or, for
/// [`Field::LastUpdated`], by the FHIR element it answers. Where each is stored (table,
/// column, the folded key beside a person name) is the index's business alone: callers
/// name the attribute, this module writes the SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the keywords are the standard's spelling
pub enum Field {
    /// (0008,0016), instance level.
    SOPClassUID,
    /// (0008,0018), instance level.
    SOPInstanceUID,
    /// (0008,0020), DA `YYYYMMDD` (`''` when unknown).
    StudyDate,
    /// (0008,0030), TM.
    StudyTime,
    /// (0008,0050).
    AccessionNumber,
    /// (0008,0060), series level.
    Modality,
    /// (0008,0090), PN.
    ReferringPhysicianName,
    /// (0008,1030).
    StudyDescription,
    /// (0008,103E), series level.
    SeriesDescription,
    /// (0010,0010), PN.
    PatientName,
    /// (0010,0020).
    PatientID,
    /// (0010,0021).
    IssuerOfPatientID,
    /// (0010,0030), DA.
    PatientBirthDate,
    /// (0010,0040).
    PatientSex,
    /// (0018,0015), series level.
    BodyPartExamined,
    /// (0020,000D).
    StudyInstanceUID,
    /// (0020,000E), series level.
    SeriesInstanceUID,
    /// (0020,0010).
    StudyID,
    /// (0020,0011), series level, integer.
    SeriesNumber,
    /// (0020,0013), instance level, integer.
    InstanceNumber,
    /// When the index last changed the study, milliseconds since the Unix epoch (FHIR
    /// `meta.lastUpdated`, searched with `_lastUpdated`).
    LastUpdated,
}

impl Field {
    /// The column (over the search's `p`, `st`, `se`, `i` aliases) holding the value.
    fn column(self) -> &'static str {
        match self {
            Field::SOPClassUID => "i.sop_class_uid",
            Field::SOPInstanceUID => "i.sop_instance_uid",
            Field::StudyDate => "st.date",
            Field::StudyTime => "st.time",
            Field::AccessionNumber => "st.accession_number",
            Field::Modality => "se.modality",
            Field::ReferringPhysicianName => "st.referring_physician",
            Field::StudyDescription => "st.description",
            Field::SeriesDescription => "se.description",
            Field::PatientName => "p.name",
            Field::PatientID => "p.patient_id",
            Field::IssuerOfPatientID => "p.issuer",
            Field::PatientBirthDate => "p.birth_date",
            Field::PatientSex => "p.sex",
            Field::BodyPartExamined => "se.body_part",
            Field::StudyInstanceUID => "st.study_uid",
            Field::SeriesInstanceUID => "se.series_uid",
            Field::StudyID => "st.study_id",
            Field::SeriesNumber => "se.number",
            Field::InstanceNumber => "i.number",
            Field::LastUpdated => "st.updated_ms",
        }
    }

    /// The column of the folded key kept beside a person name ([`super::fold_name`] of
    /// it; schema migration 4), which case-insensitive name matching compares; the
    /// value's own column for any other field.
    fn folded_column(self) -> &'static str {
        match self {
            Field::PatientName => "p.name_key",
            Field::ReferringPhysicianName => "st.referring_physician_key",
            other => other.column(),
        }
    }
}

/// One condition, already in SQL with `?` placeholders.
#[derive(Clone, Debug)]
pub struct Condition {
    /// A boolean SQL expression over `st`, `p`, `se`, `i`.
    pub sql: String,
    /// Its bound values.
    pub params: Vec<Value>,
}

impl Condition {
    /// `column IN (?, ...)`: one list, whatever its length (a chain of ORs would hit
    /// SQLite's expression-depth limit of 1,000).
    fn one_of(column: &str, values: Vec<Value>) -> Condition {
        Condition {
            sql: format!("{column} IN ({})", placeholders(values.len())),
            params: values,
        }
    }

    /// The study has a series of one of these modalities.
    pub fn study_has_modality(codes: Vec<Value>) -> Condition {
        let inner = Condition::one_of("sm.modality", codes);
        Condition {
            sql: format!(
                "EXISTS (SELECT 1 FROM series sm WHERE sm.study = st.id AND {})",
                inner.sql
            ),
            params: inner.params,
        }
    }
}

impl Condition {
    /// The study is this one.
    pub fn study_is(study_uid: &str) -> Condition {
        Condition {
            sql: "st.study_uid = ?".into(),
            params: vec![Value::Text(study_uid.to_string())],
        }
    }

    /// The study's patient has this Patient ID (and Issuer of Patient ID).
    pub fn patient_is(patient_id: &str, issuer: Option<&str>) -> Condition {
        match issuer {
            Some(issuer) => Condition {
                sql: "p.patient_id = ? AND p.issuer = ?".into(),
                params: vec![
                    Value::Text(patient_id.to_string()),
                    Value::Text(issuer.to_string()),
                ],
            },
            None => Condition {
                sql: "p.patient_id = ?".into(),
                params: vec![Value::Text(patient_id.to_string())],
            },
        }
    }

    /// The study's patient is linked to FHIR Patient `fhir_patient` of token issuer
    /// `iss` (or of `other_iss`: `""` to let unassigned links serve, else `iss` again);
    /// of any issuer when `iss` is `None`.
    pub fn linked_to(iss: Option<(&str, &str)>, fhir_patient: &str) -> Condition {
        match iss {
            Some((iss, other)) => Condition {
                sql: "EXISTS (SELECT 1 FROM patient_links l WHERE l.fhir_issuer IN (?, ?) AND l.fhir_patient = ? AND l.patient_id = p.patient_id AND l.issuer = p.issuer)".into(),
                params: vec![
                    Value::Text(iss.to_string()),
                    Value::Text(other.to_string()),
                    Value::Text(fhir_patient.to_string()),
                ],
            },
            None => Condition {
                sql: "EXISTS (SELECT 1 FROM patient_links l WHERE l.fhir_patient = ? AND l.patient_id = p.patient_id AND l.issuer = p.issuer)".into(),
                params: vec![Value::Text(fhir_patient.to_string())],
            },
        }
    }

    /// The study has a series of one of these modality codes.
    pub fn study_has_modality_code(codes: &[String]) -> Condition {
        Condition::study_has_modality(codes.iter().map(|c| Value::Text(c.clone())).collect())
    }

    /// All of `all` (an empty list holds).
    pub fn all(all: Vec<Condition>) -> Condition {
        if all.is_empty() {
            return Condition::always(true);
        }
        let mut sql = Vec::new();
        let mut params = Vec::new();
        for c in all {
            sql.push(format!("({})", c.sql));
            params.extend(c.params);
        }
        Condition {
            sql: sql.join(" AND "),
            params,
        }
    }

    /// One of `any` (an empty list never holds).
    pub fn any(any: Vec<Condition>) -> Condition {
        if any.is_empty() {
            return Condition::always(false);
        }
        let mut sql = Vec::new();
        let mut params = Vec::new();
        for c in any {
            sql.push(format!("({})", c.sql));
            params.extend(c.params);
        }
        Condition {
            sql: sql.join(" OR "),
            params,
        }
    }

    /// A condition that always (or never) holds.
    pub fn always(holds: bool) -> Condition {
        Condition {
            sql: if holds { "1 = 1" } else { "0 = 1" }.into(),
            params: Vec::new(),
        }
    }
}

/// A comparison of a date column with a range of days, by FHIR search prefix
/// (FHIR R4 §3.1.1.5.6: `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `sa`, `eb`).
#[derive(Clone, Debug)]
pub enum DayRange {
    /// A DICOM date column (`YYYYMMDD`, `''` when unknown): the range is `[first,
    /// last]` inclusive, and an unknown date is in no range but differs from every date.
    DicomDate {
        /// First day, `YYYYMMDD`.
        first: String,
        /// Last day, `YYYYMMDD`.
        last: String,
    },
    /// A column of milliseconds since the epoch: the range is `[lo, hi)`.
    Millis {
        /// First millisecond.
        lo: i64,
        /// First millisecond after.
        hi: i64,
    },
}

impl Condition {
    /// The study is in the series `series_uid` (QIDO-RS path `series/{uid}`).
    pub fn series_is(series_uid: &str) -> Condition {
        Condition {
            sql: "se.series_uid = ?".into(),
            params: vec![Value::Text(series_uid.to_string())],
        }
    }

    /// `field` equals `value`.
    pub fn text_equals(field: Field, value: &str) -> Condition {
        let column = field.column();
        Condition {
            sql: format!("{column} = ?"),
            params: vec![Value::Text(value.to_string())],
        }
    }

    /// `field` equals the integer `value`.
    pub fn int_equals(field: Field, value: i64) -> Condition {
        let column = field.column();
        Condition {
            sql: format!("{column} = ?"),
            params: vec![Value::Integer(value)],
        }
    }

    /// `field` matches the LIKE `pattern` (case-sensitive on both backends; `%` and `_`
    /// are wildcards, `\` escapes them and itself).
    pub fn like(field: Field, pattern: &str) -> Condition {
        Condition::like_column(field.column(), pattern)
    }

    /// The person name in `field`, folded ([`super::fold_name`]), matches the LIKE
    /// `pattern`, which the caller folds the same way: case-insensitive name matching
    /// (PS3.4 C.2.2.2.4) that both backends answer alike.
    pub fn name_like(field: Field, pattern: &str) -> Condition {
        Condition::like_column(field.folded_column(), pattern)
    }

    fn like_column(column: &str, pattern: &str) -> Condition {
        Condition {
            sql: format!("{column} LIKE ? ESCAPE '\\'"),
            params: vec![Value::Text(pattern.to_string())],
        }
    }

    /// Some component of the person name in `field` (split at `^`, `=` and `,`),
    /// folded ([`super::fold_name`]), matches the LIKE `pattern` from its start
    /// (`pattern` is matched after a space; the caller folds it the same way).
    pub fn name_component_like(field: Field, pattern: &str) -> Condition {
        let column = field.folded_column();
        let words =
            format!("(' ' || replace(replace(replace({column}, '^', ' '), '=', ' '), ',', ' '))");
        Condition {
            sql: format!("{words} LIKE ? ESCAPE '\\'"),
            params: vec![Value::Text(pattern.to_string())],
        }
    }

    /// A DICOM date (`YYYYMMDD`) in `field` is known and within `[lo, hi]` (either
    /// bound may be open).
    pub fn date_between(field: Field, lo: Option<&str>, hi: Option<&str>) -> Condition {
        let column = field.column();
        Condition::known_between(column, column, lo, hi)
    }

    /// A DICOM time in `field` is known and its `HHMMSS` within `[lo, hi]` (six-digit
    /// bounds; either may be open).
    pub fn time_between(field: Field, lo: Option<&str>, hi: Option<&str>) -> Condition {
        let column = field.column();
        let hhmmss = format!("substr({column} || '000000', 1, 6)");
        Condition::known_between(column, &hhmmss, lo, hi)
    }

    fn known_between(column: &str, expr: &str, lo: Option<&str>, hi: Option<&str>) -> Condition {
        let mut sql = format!("{column} != ''");
        let mut params = Vec::new();
        if let Some(lo) = lo {
            sql.push_str(&format!(" AND {expr} >= ?"));
            params.push(Value::Text(lo.to_string()));
        }
        if let Some(hi) = hi {
            sql.push_str(&format!(" AND {expr} <= ?"));
            params.push(Value::Text(hi.to_string()));
        }
        Condition { sql, params }
    }

    /// `field` compared with the days of `range` by FHIR search `prefix`.
    pub fn day_range(field: Field, prefix: &str, range: &DayRange) -> Condition {
        let column = field.column();
        let (sql, params) = match range {
            DayRange::Millis { lo, hi } => {
                let (lo, hi) = (Value::Integer(*lo), Value::Integer(*hi));
                match prefix {
                    "eq" => (format!("{column} >= ? AND {column} < ?"), vec![lo, hi]),
                    "ne" => (format!("({column} < ? OR {column} >= ?)"), vec![lo, hi]),
                    "gt" | "sa" => (format!("{column} >= ?"), vec![hi]),
                    "ge" => (format!("{column} >= ?"), vec![lo]),
                    "lt" | "eb" => (format!("{column} < ?"), vec![lo]),
                    _ => (format!("{column} < ?"), vec![hi]),
                }
            }
            DayRange::DicomDate { first, last } => {
                let (lo, hi) = (Value::Text(first.clone()), Value::Text(last.clone()));
                match prefix {
                    "eq" => (format!("{column} >= ? AND {column} <= ?"), vec![lo, hi]),
                    "ne" => (format!("({column} < ? OR {column} > ?)"), vec![lo, hi]),
                    "gt" | "sa" => (format!("{column} > ?"), vec![hi]),
                    "ge" => (format!("{column} >= ? AND {column} != ''"), vec![lo]),
                    "lt" | "eb" => (format!("{column} < ? AND {column} != ''"), vec![lo]),
                    _ => (format!("{column} <= ? AND {column} != ''"), vec![hi]),
                }
            }
        };
        Condition { sql, params }
    }

    /// `field IN (...)` of these texts.
    pub fn text_in(field: Field, values: &[String]) -> Condition {
        Condition::one_of(
            field.column(),
            values.iter().map(|v| Value::Text(v.clone())).collect(),
        )
    }
}

/// `?,?,...` for `n` bound values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// A search: level, conditions, paging.
#[derive(Clone, Debug)]
pub struct Search {
    /// The level.
    pub level: Level,
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Rows to skip.
    pub offset: u64,
    /// Most rows to return.
    pub limit: u64,
}

/// A row of a search result: study and patient always, series and instance at their
/// levels.
#[derive(Clone, Debug, Default)]
pub struct SearchRow {
    /// Study Instance UID.
    pub study_uid: String,
    /// Study Date.
    pub study_date: String,
    /// Study Time.
    pub study_time: String,
    /// Timezone Offset From UTC.
    pub timezone_offset: String,
    /// Accession Number.
    pub accession_number: String,
    /// Study Description.
    pub study_description: String,
    /// Referring Physician's Name.
    pub referring_physician: String,
    /// Study ID.
    pub study_id: String,
    /// ModalitiesInStudy.
    pub modalities: String,
    /// NumberOfStudyRelatedSeries.
    pub study_series: i64,
    /// NumberOfStudyRelatedInstances.
    pub study_instances: i64,
    /// Patient ID.
    pub patient_id: String,
    /// Issuer of Patient ID.
    pub issuer: String,
    /// Patient's Name.
    pub patient_name: String,
    /// Patient's Birth Date.
    pub birth_date: String,
    /// Patient's Sex.
    pub sex: String,
    /// Series Instance UID (series and instance levels).
    pub series_uid: String,
    /// Modality.
    pub modality: String,
    /// Series Number.
    pub series_number: Option<i64>,
    /// Series Description.
    pub series_description: String,
    /// Body Part Examined.
    pub body_part: String,
    /// NumberOfSeriesRelatedInstances.
    pub series_instances: i64,
    /// SOP Instance UID (instance level).
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Instance Number.
    pub instance_number: Option<i64>,
    /// Rows.
    pub rows: Option<i64>,
    /// Columns.
    pub columns: Option<i64>,
    /// Bits Allocated.
    pub bits_allocated: Option<i64>,
    /// Number of Frames (0 without Pixel Data).
    pub frames: i64,
}

const STUDY_COLUMNS: &str =
    "st.study_uid, st.date, st.time, st.timezone_offset, st.accession_number, st.description,
    st.referring_physician, st.study_id, st.modalities, st.num_series, st.num_instances,
    p.patient_id, p.issuer, p.name, p.birth_date, p.sex";

impl Index {
    /// Runs a search; returns at most `limit + 1` rows so the caller can tell whether
    /// more matched.
    pub fn search(&self, s: &Search) -> Result<Vec<SearchRow>> {
        let (select, from, order) = match s.level {
            Level::Study => (STUDY_COLUMNS.to_string(), "studies st JOIN patients p ON p.id = st.patient", "st.date, st.time, st.study_uid"),
            Level::Series => (
                format!("{STUDY_COLUMNS}, se.series_uid, se.modality, se.number, se.description, se.body_part, se.num_instances"),
                "series se JOIN studies st ON st.id = se.study JOIN patients p ON p.id = st.patient",
                "st.date, st.time, st.study_uid, se.number IS NULL, se.number, se.series_uid",
            ),
            Level::Instance => (
                format!(
                    "{STUDY_COLUMNS}, se.series_uid, se.modality, se.number, se.description, se.body_part, se.num_instances,
                     i.sop_instance_uid, i.sop_class_uid, i.number, i.rows, i.columns, i.bits_allocated, i.number_of_frames"
                ),
                "instances i JOIN series se ON se.id = i.series JOIN studies st ON st.id = se.study JOIN patients p ON p.id = st.patient",
                "st.date, st.time, st.study_uid, se.number IS NULL, se.number, se.series_uid, i.number IS NULL, i.number, i.sop_instance_uid",
            ),
        };
        let mut sql = format!("SELECT {select} FROM {from}");
        let mut params: Vec<Param<'_>> = Vec::new();
        for (k, c) in s.conditions.iter().enumerate() {
            sql.push_str(if k == 0 { " WHERE (" } else { " AND (" });
            sql.push_str(&c.sql);
            sql.push(')');
            params.extend(c.params.iter().map(Param::from));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT ? OFFSET ?"));
        params.push(Param::Int(
            i64::try_from(s.limit.saturating_add(1)).unwrap_or(i64::MAX),
        ));
        params.push(Param::Int(i64::try_from(s.offset).unwrap_or(i64::MAX)));
        let level = s.level;
        self.read(|conn| {
            conn.query_map(&sql, &params, |r| {
                let mut row = SearchRow {
                    study_uid: r.get(0)?,
                    study_date: r.get(1)?,
                    study_time: r.get(2)?,
                    timezone_offset: r.get(3)?,
                    accession_number: r.get(4)?,
                    study_description: r.get(5)?,
                    referring_physician: r.get(6)?,
                    study_id: r.get(7)?,
                    modalities: r.get(8)?,
                    study_series: r.get(9)?,
                    study_instances: r.get(10)?,
                    patient_id: r.get(11)?,
                    issuer: r.get(12)?,
                    patient_name: r.get(13)?,
                    birth_date: r.get(14)?,
                    sex: r.get(15)?,
                    ..SearchRow::default()
                };
                if level != Level::Study {
                    row.series_uid = r.get(16)?;
                    row.modality = r.get(17)?;
                    row.series_number = r.get(18)?;
                    row.series_description = r.get(19)?;
                    row.body_part = r.get(20)?;
                    row.series_instances = r.get(21)?;
                }
                if level == Level::Instance {
                    row.sop_instance_uid = r.get(22)?;
                    row.sop_class_uid = r.get(23)?;
                    row.instance_number = r.get(24)?;
                    row.rows = r.get(25)?;
                    row.columns = r.get(26)?;
                    row.bits_allocated = r.get(27)?;
                    row.frames = r.get(28)?;
                }
                Ok(row)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_FIELD: &[Field] = &[
        Field::SOPClassUID,
        Field::SOPInstanceUID,
        Field::StudyDate,
        Field::StudyTime,
        Field::AccessionNumber,
        Field::Modality,
        Field::ReferringPhysicianName,
        Field::StudyDescription,
        Field::SeriesDescription,
        Field::PatientName,
        Field::PatientID,
        Field::IssuerOfPatientID,
        Field::PatientBirthDate,
        Field::PatientSex,
        Field::BodyPartExamined,
        Field::StudyInstanceUID,
        Field::SeriesInstanceUID,
        Field::StudyID,
        Field::SeriesNumber,
        Field::InstanceNumber,
        Field::LastUpdated,
    ];

    /// Every field names a column of the schema, at a level an instance search joins
    /// (a misspelt column is an SQL error here, not a 500 on the first user query).
    #[test]
    fn every_field_is_a_column_an_instance_search_can_match() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path().join("index.db")).unwrap();
        for &field in EVERY_FIELD {
            let condition = match field {
                Field::SeriesNumber | Field::InstanceNumber | Field::LastUpdated => {
                    Condition::int_equals(field, 1)
                }
                Field::PatientName | Field::ReferringPhysicianName => {
                    Condition::name_component_like(field, "% doe%")
                }
                _ => Condition::text_equals(field, "x"),
            };
            let search = Search {
                level: Level::Instance,
                conditions: vec![condition, Condition::name_like(field, "x")],
                offset: 0,
                limit: 1,
            };
            let rows = index.search(&search);
            assert!(rows.is_ok(), "{field:?}: {:?}", rows.err());
        }
    }

    /// Names are matched through their folded key, every other field through its value.
    #[test]
    fn only_person_names_match_through_a_folded_key() {
        for &field in EVERY_FIELD {
            let folded = field.folded_column() != field.column();
            let is_name = matches!(field, Field::PatientName | Field::ReferringPhysicianName);
            assert_eq!(folded, is_name, "{field:?}");
        }
    }
}
