"""DICOM files the end-to-end tests write themselves: a large multi-frame native
instance (for downloads that outlast a disconnect or a shutdown) and small single-frame
ones (for `--watch`), under the demo's patient DEMO-001 so the `--dev` ready token can
read them."""

import pathlib

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

PATIENT = "DEMO-001"


def write_instance(
    path: pathlib.Path,
    frames: int = 1,
    rows: int = 64,
    columns: int = 64,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient: str = PATIENT,
    description: str = "e2e",
) -> dict:
    """Writes a native 16-bit Explicit VR Little Endian instance with `frames` frames of
    `rows` x `columns` (frame i filled with a ramp offset by i, so frames differ);
    returns its UIDs and the frame size in bytes."""
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient
    ds.PatientName = "Demo^Patient"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "E2E"
    ds.AccessionNumber = "E2E" + sop_uid[-8:]
    ds.StudyDescription = description
    ds.SeriesDescription = description
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ramp = (np.arange(rows * columns, dtype=np.uint32) % 65536).astype("<u2")
    pixels = np.empty((frames, rows * columns), dtype="<u2")
    for i in range(frames):
        pixels[i] = ramp + np.uint16(i)
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return {
        "study": study_uid,
        "series": series_uid,
        "instance": sop_uid,
        "frame_bytes": rows * columns * 2,
        "frames": frames,
        "path": path,
    }


def write_large_instance(path: pathlib.Path, frames: int = 200) -> dict:
    """A ~100 MB instance (200 frames of 512 x 512, 16 bits) by default."""
    return write_instance(path, frames=frames, rows=512, columns=512, description="large")


def instance_url(info: dict) -> str:
    return (
        f"/dicom-web/studies/{info['study']}/series/{info['series']}"
        f"/instances/{info['instance']}"
    )
