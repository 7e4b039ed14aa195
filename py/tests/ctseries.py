"""A synthetic CT series written with pydicom: ``slices`` files of 512 x 512 signed
16-bit pixels (Explicit VR Little Endian), one study and series, one patient. Used by
the tests (frames of realistic size) and by py/bench/bench.py (the volume load)."""

from __future__ import annotations

import pathlib

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT = "2.25.31415926535897932384626433832795"


def write_ct_series(
    folder: pathlib.Path, slices: int = 300, size: int = 512, patient_id: str = "CT-001", root: str = ROOT
) -> list[pathlib.Path]:
    """Writes the series (UIDs under ``root``: another series needs another root);
    returns the files in slice order. Slice k holds a ramp plus k, so every slice
    differs."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = f"{root}.1", f"{root}.1.1"
    y, x = np.mgrid[0:size, 0:size]
    base = ((x + y) % 2048 - 1024).astype("<i2")
    out = []
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"{series}.{k + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"slice{k + 1:04}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.IssuerOfPatientID = patient_id, "Phantom^CT", "SIA_BENCH"
        ds.Modality, ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "CT", "20240101", 1, k + 1
        ds.ImagePositionPatient = [0, 0, float(k)]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (base + k).tobytes()
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def read_with_pydicom(files: list[pathlib.Path]) -> np.ndarray:
    """The volume as pydicom users read it: ``dcmread`` each file, stack ``pixel_array``."""
    return np.stack([pydicom.dcmread(f).pixel_array for f in files])
