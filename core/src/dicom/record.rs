//! What the index keeps of one DICOM instance ([`InstanceRecord`]), and how it is
//! decoded from the raw values the header scan collected ([`Found`]): character sets
//! applied, UIDs checked, numbers read in the file's byte order, the frame table built.

use super::ScanError;
use super::charset::CharacterSet;
use super::frames::big_endian_pixel_unit;
use super::frames::{self, FrameTable, ImagePixelInfo, OffsetTables};
use super::scan::{PixelData, PixelLayout};
use super::source::ByteSource;
use super::tag::{self, Encoding, Tag, Vr, tags};

/// Patient attributes of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientInfo {
    /// Patient ID (0010,0020).
    pub id: String,
    /// Issuer of Patient ID (0010,0021); empty when absent.
    pub issuer: String,
    /// Patient's Name (0010,0010), decoded.
    pub name: String,
    /// Patient's Birth Date (0010,0030).
    pub birth_date: String,
    /// Patient's Sex (0010,0040).
    pub sex: String,
}

/// Study attributes of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyInfo {
    /// Study Instance UID (0020,000D).
    pub uid: String,
    /// Study Date (0008,0020).
    pub date: String,
    /// Study Time (0008,0030).
    pub time: String,
    /// Timezone Offset From UTC (0008,0201).
    pub timezone_offset: String,
    /// Accession Number (0008,0050).
    pub accession_number: String,
    /// Study Description (0008,1030).
    pub description: String,
    /// Referring Physician's Name (0008,0090).
    pub referring_physician: String,
    /// Study ID (0020,0010).
    pub study_id: String,
}

/// Series attributes of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesInfo {
    /// Series Instance UID (0020,000E).
    pub uid: String,
    /// Modality (0008,0060).
    pub modality: String,
    /// Series Number (0020,0011).
    pub number: Option<i64>,
    /// Series Description (0008,103E).
    pub description: String,
    /// Body Part Examined (0018,0015).
    pub body_part: String,
    /// Laterality (0020,0060).
    pub laterality: String,
    /// Series Date (0008,0021).
    pub date: String,
    /// Series Time (0008,0031).
    pub time: String,
}

/// What the index keeps of one DICOM instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer Syntax UID of the data set (from File Meta, or as sniffed).
    pub transfer_syntax: String,
    /// Instance Number (0020,0013).
    pub instance_number: Option<i64>,
    /// A title for the instance: Document Title, else Image Type.
    pub title: String,
    /// Patient attributes.
    pub patient: PatientInfo,
    /// Study attributes.
    pub study: StudyInfo,
    /// Series attributes.
    pub series: SeriesInfo,
    /// Image pixel attributes, when the instance has Pixel Data.
    pub image: Option<ImagePixelInfo>,
    /// Where the frames are.
    pub frames: FrameTable,
    /// Specific Character Set (0008,0005) as written, when a term was misspelt and read
    /// as the defined term it stands for (`ISO IR 192` as `ISO_IR 192`).
    pub normalized_charset: Option<String>,
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// An instance to index.
    Instance(Box<InstanceRecord>),
    /// A DICOMDIR: valid DICOM, but a media directory, not an instance.
    Dicomdir,
}

/// Raw values of the wanted attributes, decoded once the character set is known.
#[derive(Default)]
pub(super) struct Found {
    pub(super) values: Vec<(Tag, Option<Vr>, Vec<u8>)>,
    pub(super) dicomdir: bool,
}

impl Found {
    pub(super) fn wants(t: Tag) -> bool {
        use tags::*;
        matches!(
            t,
            SPECIFIC_CHARACTER_SET
                | IMAGE_TYPE
                | SOP_CLASS_UID
                | SOP_INSTANCE_UID
                | STUDY_DATE
                | SERIES_DATE
                | STUDY_TIME
                | SERIES_TIME
                | ACCESSION_NUMBER
                | MODALITY
                | REFERRING_PHYSICIAN_NAME
                | TIMEZONE_OFFSET_FROM_UTC
                | STUDY_DESCRIPTION
                | SERIES_DESCRIPTION
                | PATIENT_NAME
                | PATIENT_ID
                | ISSUER_OF_PATIENT_ID
                | PATIENT_BIRTH_DATE
                | PATIENT_SEX
                | BODY_PART_EXAMINED
                | STUDY_INSTANCE_UID
                | SERIES_INSTANCE_UID
                | STUDY_ID
                | SERIES_NUMBER
                | INSTANCE_NUMBER
                | LATERALITY
                | SAMPLES_PER_PIXEL
                | PHOTOMETRIC_INTERPRETATION
                | PLANAR_CONFIGURATION
                | NUMBER_OF_FRAMES
                | ROWS
                | COLUMNS
                | BITS_ALLOCATED
                | BITS_STORED
                | PIXEL_REPRESENTATION
                | DOCUMENT_TITLE
                | EXTENDED_OFFSET_TABLE
                | EXTENDED_OFFSET_TABLE_LENGTHS
        )
    }

    pub(super) fn put(&mut self, t: Tag, vr: Option<Vr>, v: Vec<u8>) {
        // Last one wins, as in a data set read front to back.
        self.values.retain(|(k, _, _)| *k != t);
        self.values.push((t, vr, v));
    }

    pub(super) fn raw(&self, t: Tag) -> Option<(&Option<Vr>, &[u8])> {
        self.values
            .iter()
            .find(|(k, _, _)| *k == t)
            .map(|(_, vr, v)| (vr, v.as_slice()))
    }

    /// A default-repertoire value (UI, CS, DA, TM, IS, ...), trimmed of padding.
    pub(super) fn text(&self, t: Tag) -> Option<String> {
        self.raw(t).map(|(_, v)| {
            String::from_utf8_lossy(v)
                .trim_matches([' ', '\0'])
                .to_string()
        })
    }

    /// A value in the data set's character set, trimmed of padding. Person names also
    /// lose empty trailing component groups (`Doe^John=` is `Doe^John`).
    pub(super) fn decoded(&self, t: Tag, cs: &CharacterSet, person_name: bool) -> String {
        self.raw(t)
            .map(|(_, v)| {
                let text = cs.decode(v, person_name);
                let text = text.trim_matches([' ', '\0']);
                if person_name {
                    text.trim_end_matches('=')
                } else {
                    text
                }
                .to_string()
            })
            .unwrap_or_default()
    }

    /// A US value, or an IS value where a writer used IS (Number of Frames as US is seen too).
    pub(super) fn number(&self, t: Tag, big_endian: bool) -> Option<i64> {
        let (vr, v) = self.raw(t)?;
        match vr {
            Some(Vr::US) | Some(Vr::SS) if v.len() >= 2 => {
                let a = [v[0], v[1]];
                Some(i64::from(if big_endian {
                    u16::from_be_bytes(a)
                } else {
                    u16::from_le_bytes(a)
                }))
            }
            Some(Vr::UL) | Some(Vr::SL) if v.len() >= 4 => {
                let a = [v[0], v[1], v[2], v[3]];
                Some(i64::from(if big_endian {
                    u32::from_be_bytes(a)
                } else {
                    u32::from_le_bytes(a)
                }))
            }
            _ => {
                let s = String::from_utf8_lossy(v);
                let first = s.split('\\').next().unwrap_or("").trim_matches([' ', '\0']);
                first.parse::<i64>().ok().or_else(|| {
                    first
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                        .map(|f| f as i64)
                })
            }
        }
    }

    pub(super) fn u64_list(&self, t: Tag, big_endian: bool) -> Option<Vec<u64>> {
        let (_, v) = self.raw(t)?;
        if v.len() % 8 != 0 {
            return None;
        }
        Some(
            v.chunks_exact(8)
                .map(|c| {
                    let a: [u8; 8] = c.try_into().expect("chunk of 8");
                    if big_endian {
                        u64::from_be_bytes(a)
                    } else {
                        u64::from_le_bytes(a)
                    }
                })
                .collect(),
        )
    }

    pub(super) fn into_record<S: ByteSource>(
        self,
        transfer_syntax: String,
        enc: Encoding,
        pixel: Option<PixelData>,
        src: &mut S,
    ) -> Result<Scanned, ScanError> {
        use tags::*;
        let media_class = self.text(MEDIA_STORAGE_SOP_CLASS_UID).unwrap_or_default();
        if self.dicomdir || media_class == tag::MEDIA_STORAGE_DIRECTORY_SOP_CLASS {
            return Ok(Scanned::Dicomdir);
        }
        let cs = self
            .raw(SPECIFIC_CHARACTER_SET)
            .map(|(_, v)| CharacterSet::from_value(v))
            .unwrap_or_default();
        let uid = |t: Tag, name: &str| -> Result<String, ScanError> {
            let v = self.text(t).unwrap_or_default();
            if v.is_empty() {
                return Err(ScanError::malformed(format!(
                    "{name} {t} is missing or empty"
                )));
            }
            if !super::is_safe_uid(&v) {
                return Err(ScanError::malformed(format!(
                    "{name} {t} is not a valid UID, nor a safe identifier: {v:?}"
                )));
            }
            Ok(v)
        };
        let sop_instance_uid = uid(SOP_INSTANCE_UID, "SOP Instance UID")?;
        let study_uid = uid(STUDY_INSTANCE_UID, "Study Instance UID")?;
        let series_uid = uid(SERIES_INSTANCE_UID, "Series Instance UID")?;
        let sop_class_uid = self
            .text(SOP_CLASS_UID)
            .filter(|s| !s.is_empty())
            .unwrap_or(media_class);

        let number = |t| {
            self.number(t, enc.big_endian)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        // Number of Frames as written; what it means is decided by `frames::frame_count`.
        let declared_frames = self.number(NUMBER_OF_FRAMES, enc.big_endian);
        let (image, frame_table) = match pixel {
            None => (None, FrameTable::None),
            Some(p) => {
                let mut image = ImagePixelInfo {
                    rows: number(ROWS),
                    columns: number(COLUMNS),
                    samples_per_pixel: number(SAMPLES_PER_PIXEL).max(1),
                    bits_allocated: number(BITS_ALLOCATED),
                    bits_stored: number(BITS_STORED),
                    pixel_representation: number(PIXEL_REPRESENTATION),
                    photometric: self.text(PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
                    planar_configuration: number(PLANAR_CONFIGURATION),
                    frames: 0,
                };
                if p.tag == FLOAT_PIXEL_DATA {
                    image.bits_allocated = 32;
                } else if p.tag == DOUBLE_FLOAT_PIXEL_DATA {
                    image.bits_allocated = 64;
                }
                let table = match (p.layout, p.deflated) {
                    // Native pixel data of known length inside the deflated stream: the
                    // same rule, on the length its element declares.
                    (PixelLayout::Native { len }, true) => FrameTable::Deflated {
                        count: frames::native_count(&image, declared_frames, len)?,
                    },
                    (_, true) => FrameTable::Deflated {
                        count: frames::frame_count(declared_frames, u64::MAX),
                    },
                    (PixelLayout::Native { len }, false) => {
                        let swap_unit = if enc.big_endian && p.vr != Some(Vr::OB) {
                            big_endian_pixel_unit(image.bits_allocated) as u8
                        } else {
                            0
                        };
                        frames::native(&image, declared_frames, p.value_pos, len, swap_unit)?
                    }
                    (PixelLayout::Encapsulated { fragments }, false) => {
                        let extended =
                            self.u64_list(EXTENDED_OFFSET_TABLE, enc.big_endian)
                                .map(|offsets| {
                                    (
                                        offsets,
                                        self.u64_list(
                                            EXTENDED_OFFSET_TABLE_LENGTHS,
                                            enc.big_endian,
                                        ),
                                    )
                                });
                        let tables = OffsetTables {
                            basic: p.basic_offsets,
                            extended,
                        };
                        frames::encapsulated(src, declared_frames, fragments, &tables)?
                    }
                };
                image.frames = table.count();
                (Some(image), table)
            }
        };

        let title = {
            let doc = self.decoded(DOCUMENT_TITLE, &cs, false);
            if doc.is_empty() {
                self.text(IMAGE_TYPE).unwrap_or_default()
            } else {
                doc
            }
        };
        Ok(Scanned::Instance(Box::new(InstanceRecord {
            sop_instance_uid,
            sop_class_uid,
            transfer_syntax,
            instance_number: self.number(INSTANCE_NUMBER, enc.big_endian),
            title,
            patient: PatientInfo {
                id: self.decoded(PATIENT_ID, &cs, false),
                issuer: self.decoded(ISSUER_OF_PATIENT_ID, &cs, false),
                name: self.decoded(PATIENT_NAME, &cs, true),
                birth_date: self.text(PATIENT_BIRTH_DATE).unwrap_or_default(),
                sex: self.text(PATIENT_SEX).unwrap_or_default(),
            },
            study: StudyInfo {
                uid: study_uid,
                date: self.text(STUDY_DATE).unwrap_or_default(),
                time: self.text(STUDY_TIME).unwrap_or_default(),
                timezone_offset: self.text(TIMEZONE_OFFSET_FROM_UTC).unwrap_or_default(),
                accession_number: self.decoded(ACCESSION_NUMBER, &cs, false),
                description: self.decoded(STUDY_DESCRIPTION, &cs, false),
                referring_physician: self.decoded(REFERRING_PHYSICIAN_NAME, &cs, true),
                study_id: self.decoded(STUDY_ID, &cs, false),
            },
            series: SeriesInfo {
                uid: series_uid,
                modality: self.text(MODALITY).unwrap_or_default(),
                number: self.number(SERIES_NUMBER, enc.big_endian),
                description: self.decoded(SERIES_DESCRIPTION, &cs, false),
                body_part: self.text(BODY_PART_EXAMINED).unwrap_or_default(),
                laterality: self.text(LATERALITY).unwrap_or_default(),
                date: self.text(SERIES_DATE).unwrap_or_default(),
                time: self.text(SERIES_TIME).unwrap_or_default(),
            },
            image,
            frames: frame_table,
            normalized_charset: cs
                .normalized()
                .then(|| self.text(SPECIFIC_CHARACTER_SET).unwrap_or_default()),
        })))
    }
}
