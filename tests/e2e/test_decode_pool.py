"""Decoding runs off the server's async workers (issue 13): while a burst of slow
decodes is under way, a frame in its stored syntax is still answered at once.

`sia serve` answers stored-syntax frames on its few async workers (one per core) for
speed; a frame that must be decoded is refused there by `Engine::handle_without_decoding`
and answered on the blocking pool. Before that, decodes ran on the async workers: with
every worker decoding or waiting for a decode slot, nothing else was answered until a
decode finished."""

import os
import struct
import threading
import time

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

# Frames of 4096 x 4096 8-bit samples: 16 MiB each to decode, about a second in a debug
# build, tens of milliseconds in a release one: either way far longer than a stored frame.
SIZE = 4096
FRAMES = 4


def write(path, syntax, rows, cols, frames, pixel_data):
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "POOL"
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = frames
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def rle_frame(value):
    """One RLE Lossless frame (PS3.5 Annex G): one segment of 16-byte repeat runs (an
    8:1 ratio, under the registry codec's 32:1 guard against decompression bombs)."""
    return struct.pack("<16I", 1, 64, *([0] * 14)) + bytes([0xF1, value]) * (SIZE * SIZE // 16)


def test_stored_frames_are_answered_during_a_burst_of_decodes(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rle = write(data / "rle.dcm", RLELossless, SIZE, SIZE, FRAMES, encapsulate([rle_frame(k) for k in range(FRAMES)]))
    native = write(data / "native.dcm", ExplicitVRLittleEndian, 64, 64, 1, bytes(range(64)) * 64)
    server = start_server(data, "--db", tmp_path / "sia.db")

    stored = server.get(f"{native}/frames/1", headers={"Accept": "application/octet-stream"})
    assert stored.status_code == 200 and stored.content == bytes(range(64)) * 64

    # One decode alone: how long a decode takes on this machine and build.
    t = time.monotonic()
    one = server.get(f"{rle}/frames/{FRAMES}", headers={"Accept": "application/octet-stream"})
    single = time.monotonic() - t
    assert one.status_code == 200 and one.content == bytes([FRAMES - 1]) * (SIZE * SIZE)

    # Enough decodes to hold every async worker before the change: one per core decoding
    # or waiting for one of the (cores / 2) decode slots, twice over.
    burst = min(2 * (os.cpu_count() or 2), 16)
    done = []

    def decode(n):
        r = server.get(f"{rle}/frames/{n}", headers={"Accept": "application/octet-stream"})
        done.append((time.monotonic(), r.status_code, len(r.content)))

    threads = [threading.Thread(target=decode, args=(1 + k % (FRAMES - 1),)) for k in range(burst)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    r = server.get(f"{native}/frames/1", headers={"Accept": "application/octet-stream"})
    answered = time.monotonic()
    assert r.status_code == 200 and r.content == stored.content
    for t in threads:
        t.join(timeout=120)
    # Decoded (200, the whole frame) or refused while every slot stayed busy (503).
    assert all(status in (200, 503) for _, status, _ in done), done
    assert any(status == 200 and size == SIZE * SIZE for _, status, size in done), done
    # The stored frame did not wait for a decode: it took less than half of one decode
    # (the burst's frames are not in the cache: frame FRAMES was the one decoded alone).
    # Before the change it waited for decodes on its worker: 7.8 to 11.8 s here, against
    # 2 to 4 s for one decode on a loaded debug build; after, 0.03 s.
    waited = answered - t0
    print(f"stored frame {waited:.3f} s, one decode {single:.3f} s")
    assert waited < single / 2, (
        f"the stored-syntax frame took {waited:.3f} s during {burst} decodes; one decode "
        f"alone takes {single:.3f} s"
    )
