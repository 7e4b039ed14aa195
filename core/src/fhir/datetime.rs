//! DICOM DA/TM/offset to FHIR dateTime, and Unix time to FHIR instant.

/// Combines DICOM Date (YYYYMMDD), Time (HHMMSS.FFFFFF, possibly shortened) and a UTC
/// offset (+HHMM) into a FHIR `dateTime`. With a time but no known offset the date alone
/// is given (FHIR requires a zone with a time). `None` when the date is not valid.
pub fn fhir_date_time(
    date: &str,
    time: &str,
    offset: &str,
    assumed_offset: Option<&str>,
) -> Option<String> {
    // ACR-NEMA wrote dates as YYYY.MM.DD.
    let d: String = date.chars().filter(|c| *c != '.').collect();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, day) = (&d[0..4], &d[4..6], &d[6..8]);
    let (mi, di): (u32, u32) = (m.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&mi) || !(1..=31).contains(&di) {
        return None;
    }
    let date_part = format!("{y}-{m}-{day}");
    let zone = dicom_offset(offset).or_else(|| assumed_offset.map(str::to_string));
    let (Some(clock), Some(zone)) = (dicom_time(time), zone) else {
        return Some(date_part);
    };
    Some(format!("{date_part}T{clock}{zone}"))
}

/// `HHMMSS.FFFFFF` (or `HH:MM:SS` from ACR-NEMA, or shortened) as `hh:mm:ss[.fff]`.
fn dicom_time(t: &str) -> Option<String> {
    let t: String = t.chars().filter(|c| *c != ':').collect();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w.to_string(), f.to_string()),
        None => (t, String::new()),
    };
    if whole.len() < 2
        || whole.len() > 6
        || whole.len() % 2 != 0
        || !whole.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut parts = [0u32; 3];
    for (i, chunk) in whole.as_bytes().chunks(2).enumerate() {
        parts[i] = std::str::from_utf8(chunk).ok()?.parse().ok()?;
    }
    // DICOM allows a leap second (60); FHIR's time pattern does too.
    if parts[0] > 23 || parts[1] > 59 || parts[2] > 60 {
        return None;
    }
    let mut s = format!("{:02}:{:02}:{:02}", parts[0], parts[1], parts[2]);
    if !frac.is_empty() && frac.len() <= 6 && frac.bytes().all(|b| b.is_ascii_digit()) {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

/// `+HHMM` / `-HHMM` as `+HH:MM`.
fn dicom_offset(o: &str) -> Option<String> {
    let b = o.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (h, m): (u32, u32) = (o[1..3].parse().ok()?, o[3..5].parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(format!("{}{}:{}", &o[0..1], &o[1..3], &o[3..5]))
}

/// A Unix time in milliseconds as a FHIR `instant` in UTC.
pub fn instant_from_unix_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times() {
        assert_eq!(
            fhir_date_time("20200102", "030405.123", "+0100", None).unwrap(),
            "2020-01-02T03:04:05.123+01:00"
        );
        assert_eq!(
            fhir_date_time("20200102", "0304", "-0500", None).unwrap(),
            "2020-01-02T03:04:00-05:00"
        );
        assert_eq!(
            fhir_date_time("20200102", "030405", "", None).unwrap(),
            "2020-01-02"
        );
        assert_eq!(
            fhir_date_time("20200102", "030405", "", Some("Z")).unwrap(),
            "2020-01-02T03:04:05Z"
        );
        assert_eq!(
            fhir_date_time("2020.01.02", "", "", None).unwrap(),
            "2020-01-02"
        );
        assert_eq!(fhir_date_time("2020", "", "", None), None);
        assert_eq!(fhir_date_time("20201302", "", "", None), None);
        assert_eq!(
            fhir_date_time("20200102", "25", "+0000", None).unwrap(),
            "2020-01-02"
        );
    }

    #[test]
    fn instants() {
        assert_eq!(instant_from_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            instant_from_unix_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            instant_from_unix_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
