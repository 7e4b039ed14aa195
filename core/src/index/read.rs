//! Reading studies back out of the index, with their series and instances.

use super::Index;
use super::db::{Db, Param, Row, Value, params};
use super::search::Condition;
use crate::dicom::{ImagePixelInfo, PatientInfo};
use crate::error::Result;

/// Which studies to read.
#[derive(Clone, Debug, Default)]
pub struct StudyFilter {
    /// Only studies of this DICOM Patient ID ...
    pub patient_id: Option<String>,
    /// ... with this Issuer of Patient ID (`None` = any issuer).
    pub issuer: Option<String>,
    /// Only the study with this Study Instance UID.
    pub study_uid: Option<String>,
}

/// A study with its patient, series and instances.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRow {
    /// Study Instance UID.
    pub uid: String,
    /// The study's patient.
    pub patient: PatientInfo,
    /// Study Date.
    pub date: String,
    /// Study Time.
    pub time: String,
    /// Timezone Offset From UTC.
    pub timezone_offset: String,
    /// Accession Number.
    pub accession_number: String,
    /// Study Description.
    pub description: String,
    /// Referring Physician's Name.
    pub referring_physician: String,
    /// Study ID.
    pub study_id: String,
    /// ModalitiesInStudy, computed from the series.
    pub modalities: Vec<String>,
    /// NumberOfStudyRelatedSeries.
    pub num_series: i64,
    /// NumberOfStudyRelatedInstances.
    pub num_instances: i64,
    /// When the study was last written to the index (Unix milliseconds).
    pub updated_ms: i64,
    /// The FHIR Patient id the study's DICOM patient is linked to (the smallest, if
    /// several are).
    pub fhir_patient: Option<String>,
    /// The series, by Series Number then UID.
    pub series: Vec<SeriesRow>,
}

/// A series with its instances.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRow {
    /// Series Instance UID.
    pub uid: String,
    /// Series Number.
    pub number: Option<i64>,
    /// Modality.
    pub modality: String,
    /// Series Description.
    pub description: String,
    /// Body Part Examined.
    pub body_part: String,
    /// Laterality.
    pub laterality: String,
    /// Series Date.
    pub date: String,
    /// Series Time.
    pub time: String,
    /// NumberOfSeriesRelatedInstances.
    pub num_instances: i64,
    /// The instances, by Instance Number then UID.
    pub instances: Vec<InstanceRow>,
}

/// An instance as the FHIR layer needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRow {
    /// SOP Instance UID.
    pub uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Instance Number.
    pub number: Option<i64>,
    /// Document Title or Image Type.
    pub title: String,
    /// Number of frames (0 for instances without Pixel Data).
    pub frames: i64,
}

impl Index {
    /// Studies matching `filter`, ordered by date, time and UID, with series and instances.
    pub fn studies(&self, filter: &StudyFilter) -> Result<Vec<StudyRow>> {
        let mut conditions = Vec::new();
        let text = |s: &String| vec![Value::Text(s.clone())];
        if let Some(pid) = &filter.patient_id {
            conditions.push(Condition {
                sql: "p.patient_id = ?".into(),
                params: text(pid),
            });
        }
        if let Some(issuer) = &filter.issuer {
            conditions.push(Condition {
                sql: "p.issuer = ?".into(),
                params: text(issuer),
            });
        }
        if let Some(uid) = &filter.study_uid {
            conditions.push(Condition {
                sql: "st.study_uid = ?".into(),
                params: text(uid),
            });
        }
        Ok(self.find_studies(&conditions, u64::MAX, 0)?.0)
    }

    /// Studies meeting every condition (over `st` and `p`), ordered by date, time and
    /// UID, `limit` of them from `offset`; also how many meet them in all.
    pub fn find_studies(
        &self,
        conditions: &[Condition],
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<StudyRow>, u64)> {
        let mut filter = String::from(" FROM studies st JOIN patients p ON p.id = st.patient");
        let mut args: Vec<Param<'_>> = Vec::new();
        for (k, c) in conditions.iter().enumerate() {
            filter.push_str(if k == 0 { " WHERE (" } else { " AND (" });
            filter.push_str(&c.sql);
            filter.push(')');
            args.extend(c.params.iter().map(Param::from));
        }
        self.read(|conn| {
            let sql = format!(
                "SELECT st.id, st.study_uid, p.patient_id, p.issuer, p.name, p.birth_date, p.sex,
                        st.date, st.time, st.timezone_offset, st.accession_number, st.description,
                        st.referring_physician, st.study_id, st.modalities, st.num_series, st.num_instances,
                        st.updated_ms,
                        (SELECT min(l.fhir_patient) FROM patient_links l
                          WHERE l.patient_id = p.patient_id AND l.issuer = p.issuer)
                 {filter} ORDER BY st.date, st.time, st.study_uid LIMIT ? OFFSET ?"
            );
            let mut all = args.clone();
            all.push(Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
            all.push(Param::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
            let studies: Vec<(i64, StudyRow)> =
                conn.query_map(&sql, &all, |r| Ok((r.get::<i64>(0)?, study_row(r)?)))?;
            // A short first page is the whole result: no need to count.
            let total = if offset == 0 && (studies.len() as u64) < limit {
                studies.len() as u64
            } else {
                let n: i64 = conn.query_one(&format!("SELECT count(*){filter}"), &args, |r| r.get(0))?;
                n.max(0) as u64
            };
            Ok((with_series(conn, studies)?, total))
        })
    }
}

fn study_row(r: &Row<'_>) -> Result<StudyRow> {
    let modalities: String = r.get(14)?;
    Ok(StudyRow {
        uid: r.get(1)?,
        patient: PatientInfo {
            id: r.get(2)?,
            issuer: r.get(3)?,
            name: r.get(4)?,
            birth_date: r.get(5)?,
            sex: r.get(6)?,
        },
        date: r.get(7)?,
        time: r.get(8)?,
        timezone_offset: r.get(9)?,
        accession_number: r.get(10)?,
        description: r.get(11)?,
        referring_physician: r.get(12)?,
        study_id: r.get(13)?,
        modalities: modalities
            .split('\\')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        num_series: r.get(15)?,
        num_instances: r.get(16)?,
        updated_ms: r.get(17)?,
        fhir_patient: r.get(18)?,
        series: Vec::new(),
    })
}

/// Fills in the series and instances of `studies` with two queries in all (not two per
/// study: a page of studies is one round of SQL).
fn with_series(conn: &mut Db, studies: Vec<(i64, StudyRow)>) -> Result<Vec<StudyRow>> {
    use std::collections::HashMap;
    if studies.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Param<'_>> = studies.iter().map(|(id, _)| Param::Int(*id)).collect();
    let marks = super::search::placeholders(ids.len());
    let series: Vec<(i64, i64, SeriesRow)> = conn.query_map(
        &format!(
            "SELECT id, study, series_uid, number, modality, description, body_part, laterality, date, time, num_instances
             FROM series WHERE study IN ({marks}) ORDER BY study, number IS NULL, number, series_uid"
        ),
        &ids,
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                SeriesRow {
                    uid: r.get(2)?,
                    number: r.get(3)?,
                    modality: r.get(4)?,
                    description: r.get(5)?,
                    body_part: r.get(6)?,
                    laterality: r.get(7)?,
                    date: r.get(8)?,
                    time: r.get(9)?,
                    num_instances: r.get(10)?,
                    instances: Vec::new(),
                },
            ))
        },
    )?;
    let mut instances: HashMap<i64, Vec<InstanceRow>> = HashMap::new();
    let rows = conn.query_map(
        &format!(
            "SELECT i.series, i.sop_instance_uid, i.sop_class_uid, i.number, i.title, i.number_of_frames
             FROM instances i JOIN series se ON se.id = i.series WHERE se.study IN ({marks})
             ORDER BY i.series, i.number IS NULL, i.number, i.sop_instance_uid"
        ),
        &ids,
        |r| {
        Ok((
            r.get::<i64>(0)?,
            InstanceRow {
                uid: r.get(1)?,
                sop_class_uid: r.get(2)?,
                number: r.get(3)?,
                title: r.get(4)?,
                frames: r.get(5)?,
            },
        ))
    })?;
    for (series_id, inst) in rows {
        instances.entry(series_id).or_default().push(inst);
    }
    let mut by_study: HashMap<i64, Vec<SeriesRow>> = HashMap::new();
    for (id, study, mut s) in series {
        s.instances = instances.remove(&id).unwrap_or_default();
        by_study.entry(study).or_default().push(s);
    }
    Ok(studies
        .into_iter()
        .map(|(id, mut st)| {
            st.series = by_study.remove(&id).unwrap_or_default();
            st
        })
        .collect())
}

/// Where an instance's bytes are, for serving frames without parsing.
#[derive(Clone, Debug)]
pub struct InstanceLocation {
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Transfer Syntax UID of the file.
    pub transfer_syntax: String,
    /// Bits Allocated (for big-endian swapping and 1-bit frames).
    pub bits_allocated: u32,
    /// The frame table.
    pub frames: crate::dicom::FrameTable,
    /// The file as indexed.
    pub file: crate::storage::FileIdentity,
    /// The Image Pixel module's description of the frames (PS3.3 C.7.6.3).
    pub pixel: PixelDescription,
}

/// What a host needs to give frame bytes a type and a shape (a NumPy dtype and shape):
/// the Image Pixel module attributes of an instance (PS3.3 C.7.6.3), as indexed. Zero
/// (or empty) where the instance does not have the attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PixelDescription {
    /// Rows (0028,0010).
    pub rows: u32,
    /// Columns (0028,0011).
    pub columns: u32,
    /// Samples per Pixel (0028,0002).
    pub samples_per_pixel: u32,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u32,
    /// Bits Stored (0028,0101).
    pub bits_stored: u32,
    /// Pixel Representation (0028,0103): 0 unsigned, 1 two's complement.
    pub pixel_representation: u32,
    /// Planar Configuration (0028,0006): 0 colour-by-pixel, 1 colour-by-plane.
    pub planar_configuration: u32,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME2`, `RGB`.
    pub photometric_interpretation: String,
}

impl Index {
    /// The Image Pixel attributes of an instance as the index holds them, or `None` when
    /// the instance is not indexed or has no pixel module.
    pub fn image_pixel_info(&self, sop_instance_uid: &str) -> Result<Option<ImagePixelInfo>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT rows, columns, coalesce(samples_per_pixel, 1), bits_allocated,
                        coalesce(bits_stored, bits_allocated), coalesce(pixel_representation, 0),
                        coalesce(photometric, ''), coalesce(planar_configuration, 0), number_of_frames
                 FROM instances WHERE sop_instance_uid = ?1 AND rows IS NOT NULL
                   AND columns IS NOT NULL AND bits_allocated IS NOT NULL",
                params![sop_instance_uid],
                |r| {
                    let u = |i: usize| -> Result<u32> {
                        Ok(u32::try_from(r.get::<i64>(i)?).unwrap_or(0))
                    };
                    Ok(ImagePixelInfo {
                        rows: u(0)?,
                        columns: u(1)?,
                        samples_per_pixel: u(2)?,
                        bits_allocated: u(3)?,
                        bits_stored: u(4)?,
                        pixel_representation: u(5)?,
                        photometric: r.get::<String>(6)?.trim().to_string(),
                        planar_configuration: u(7)?,
                        frames: u(8)?,
                    })
                },
            )
        })
    }

    /// Locates an instance by SOP Instance UID.
    pub fn instance_location(&self, sop_instance_uid: &str) -> Result<Option<InstanceLocation>> {
        self.read(|conn| {
            let row = conn
                .query_opt(
                    "SELECT st.study_uid, se.series_uid, i.transfer_syntax, coalesce(i.bits_allocated, 0), i.frame_table,
                            f.id, f.path, f.size, f.mtime_ns, f.inode,
                            coalesce(i.rows, 0), coalesce(i.columns, 0), coalesce(i.samples_per_pixel, 0),
                            coalesce(i.bits_stored, 0), coalesce(i.pixel_representation, 0),
                            coalesce(i.planar_configuration, 0), coalesce(i.photometric, ''), f.root
                     FROM instances i JOIN series se ON se.id = i.series JOIN studies st ON st.id = se.study
                     JOIN files f ON f.id = i.file WHERE i.sop_instance_uid = ?1",
                    params![sop_instance_uid],
                    |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<u32>(3)?,
                        r.get::<Vec<u8>>(4)?,
                        crate::storage::FileIdentity {
                            id: r.get(5)?,
                            path: self.storage.resolve(&r.get::<String>(17)?, &r.get::<String>(6)?)?,
                            size: r.get::<i64>(7)? as u64,
                            mtime_ns: r.get(8)?,
                            inode: r.get::<i64>(9)? as u64,
                        },
                        PixelDescription {
                            rows: r.get::<i64>(10)?.clamp(0, u32::MAX.into()) as u32,
                            columns: r.get::<i64>(11)?.clamp(0, u32::MAX.into()) as u32,
                            samples_per_pixel: r.get::<i64>(12)?.clamp(0, u32::MAX.into()) as u32,
                            bits_allocated: r.get::<u32>(3)?,
                            bits_stored: r.get::<i64>(13)?.clamp(0, u32::MAX.into()) as u32,
                            pixel_representation: r.get::<i64>(14)?.clamp(0, u32::MAX.into()) as u32,
                            planar_configuration: r.get::<i64>(15)?.clamp(0, u32::MAX.into()) as u32,
                            photometric_interpretation: r.get(16)?,
                        },
                    ))
                })?;
            let Some((study_uid, series_uid, transfer_syntax, bits_allocated, blob, file, pixel)) = row else {
                return Ok(None);
            };
            let frames = crate::dicom::FrameTable::from_bytes(&blob).map_err(crate::Error::schema)?;
            Ok(Some(InstanceLocation { study_uid, series_uid, transfer_syntax, bits_allocated, frames, file, pixel }))
        })
    }
}

/// An instance's place in the hierarchy and its file, for retrieval routes.
#[derive(Clone, Debug)]
pub struct InstanceFile {
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// The file as indexed.
    pub file: crate::storage::FileIdentity,
}

impl Index {
    /// The instances of a study, or of one series, or one instance (by series number,
    /// instance number and UID).
    pub fn instance_files(
        &self,
        study: &str,
        series: Option<&str>,
        instance: Option<&str>,
    ) -> Result<Vec<InstanceFile>> {
        self.read(|conn| {
            conn.query_map(
                "SELECT st.study_uid, se.series_uid, i.sop_instance_uid, f.id, f.path, f.size, f.mtime_ns, f.inode, f.root
                 FROM studies st JOIN series se ON se.study = st.id JOIN instances i ON i.series = se.id
                 JOIN files f ON f.id = i.file
                 WHERE st.study_uid = ?1 AND (CAST(?2 AS TEXT) IS NULL OR se.series_uid = ?2)
                   AND (CAST(?3 AS TEXT) IS NULL OR i.sop_instance_uid = ?3)
                 ORDER BY se.number IS NULL, se.number, se.series_uid, i.number IS NULL, i.number, i.sop_instance_uid",
                params![study, series, instance],
                |r| {
                Ok(InstanceFile {
                    study_uid: r.get(0)?,
                    series_uid: r.get(1)?,
                    sop_instance_uid: r.get(2)?,
                    file: crate::storage::FileIdentity {
                        id: r.get(3)?,
                        path: self.storage.resolve(&r.get::<String>(8)?, &r.get::<String>(4)?)?,
                        size: r.get::<i64>(5)? as u64,
                        mtime_ns: r.get(6)?,
                        inode: r.get::<i64>(7)? as u64,
                    },
                })
            })
        })
    }
}

impl Index {
    /// The DICOM patient (Patient ID, Issuer) and ModalitiesInStudy of a study.
    pub fn study_owner(&self, study_uid: &str) -> Result<Option<(String, String, Vec<String>)>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT p.patient_id, p.issuer, st.modalities FROM studies st JOIN patients p ON p.id = st.patient
                 WHERE st.study_uid = ?1",
                params![study_uid],
                |r| {
                    let m: String = r.get(2)?;
                    Ok((r.get(0)?, r.get(1)?, m.split('\\').filter(|s| !s.is_empty()).map(str::to_string).collect()))
                },
            )
        })
    }

    /// Whether DICOM patient (`patient_id`, `issuer`) is linked to FHIR Patient `fhir_id`
    /// of token issuer `fhir_issuer`; with `unassigned`, links made without a token
    /// issuer count too (the engine asks so only while one issuer is configured).
    pub fn is_linked(
        &self,
        fhir_issuer: &str,
        unassigned: bool,
        fhir_id: &str,
        patient_id: &str,
        issuer: &str,
    ) -> Result<bool> {
        let other = if unassigned { "" } else { fhir_issuer };
        self.read(|conn| {
            conn.exists(
                "SELECT 1 FROM patient_links WHERE fhir_issuer IN (?1, ?2) AND fhir_patient = ?3
                   AND patient_id = ?4 AND issuer = ?5",
                params![fhir_issuer, other, fhir_id, patient_id, issuer],
            )
        })
    }
}
