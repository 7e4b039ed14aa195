"""Decoded pixel data (issue 13): frames of compressed instances asked for as
uncompressed `application/octet-stream` are decoded by sia (dicom-rs codecs) and must
equal pydicom's `pixel_array` (pydicom decoding with pylibjpeg): byte for byte for
lossless syntaxes, within the codec tolerance below for lossy ones."""

import shutil

import numpy as np
import pydicom
import pytest

from conftest import index_json, the_instance, transfer_syntax
from test_wado_frames import get, parse_multipart

pytest.importorskip("pylibjpeg", reason="pydicom needs pylibjpeg to decode the reference frames")

EXPLICIT_LE = "1.2.840.10008.1.2.1"
UNCOMPRESSED = 'Accept: multipart/related; type="application/octet-stream"'
# Lossy JPEG: two IDCT implementations (libjpeg's and jpeg-decoder's) and their chroma
# upsampling differ by rounding; no sample may differ by more than this.
LOSSY_MAX_DIFF = 4
# Why sia may answer 406 for a syntax it otherwise decodes; anything else is a failure.
LOSSY = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.203",
}
KNOWN_406 = {
    "1.2.840.10008.1.2.4.80": "JPEG-LS needs the jpegls cargo feature (CharLS, off by default)",
    "1.2.840.10008.1.2.4.81": "JPEG-LS needs the jpegls cargo feature (CharLS, off by default)",
}


def frames_url(db, numbers):
    study, series, sop = the_instance(db)
    return f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{','.join(map(str, numbers))}"


def reference(ds):
    """pydicom's frames as a list of arrays (YBR JPEG and JPEG 2000 with a colour
    transform come out RGB from both decoders; RLE keeps its stored colour)."""
    arr = ds.pixel_array if transfer_syntax(ds) != pydicom.uid.RLELossless else pydicom.pixels.pixel_array(ds, as_rgb=False)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    return list(arr) if n > 1 else [arr]


def compressed_files(per_file_index):
    for path, (db, report) in per_file_index.items():
        if report["indexed"] != 1:
            continue
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds:
            continue
        uid = transfer_syntax(ds)
        if uid.is_compressed and uid != pydicom.uid.DeflatedExplicitVRLittleEndian:
            yield path, db, ds, uid


def test_decoded_frames_equal_pydicom(sia, per_file_index):
    exact, lossy, refused = [], [], []
    for path, db, ds, uid in compressed_files(per_file_index):
        n = int(ds.get("NumberOfFrames", 1) or 1)
        order = list(range(n, 0, -1))
        status, fields, body, rc = get(sia, db, frames_url(db, order), UNCOMPRESSED)
        assert rc == 0 or status >= 400, path.name
        try:
            expected = reference(ds)
        except Exception:  # pydicom cannot decode it either (damaged codestream)
            assert status in (406, 500), (path.name, status)
            continue
        if status == 406:
            assert uid in KNOWN_406, (path.name, body[:200])
            refused.append(path.name)
            continue
        assert status == 200, (path.name, status, body[:300])
        parts = parse_multipart(fields["Content-Type"], body)
        assert len(parts) == n
        for k, ((ctype, location, payload), want) in enumerate(zip(parts, [expected[i - 1] for i in order])):
            assert ctype == ("application/octet-stream", EXPLICIT_LE), path.name
            assert location.endswith(f"/frames/{order[k]}")
            want = np.ascontiguousarray(want)
            if not uid in LOSSY:
                assert payload == want.tobytes(), f"{path.name}: frame {order[k]} differs"
            else:
                got = np.frombuffer(payload, dtype=want.dtype).reshape(want.shape)
                diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).max()
                assert diff <= LOSSY_MAX_DIFF, f"{path.name}: frame {order[k]} differs by {diff}"
        (lossy if uid in LOSSY else exact).append(path.name)
    # The families that decode in the default build: JPEG (baseline, lossless), JPEG
    # 2000, RLE, each with files in pydicom's set.
    assert len(exact) >= 10 and len(lossy) >= 17, (exact, lossy, refused)
    assert any("jp2k" in name or "J2K" in name for name in exact)
    assert any("rle" in name.lower() for name in exact)
    assert any("jpeg_gdcm" in name for name in exact), "JPEG Lossless SV1"
    # RLE of Bits Allocated 32 (split into 16-bit halves for the registry's codec) and
    # 12-bit JPEG DCT (libjpeg-turbo, the default `jpeg12` feature), grey and colour.
    for name in ("SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm"):
        assert name in exact, (name, refused)
    # (JPEG-lossy.dcm, also 12-bit, has scan parameters invalid for a sequential process:
    # libjpeg and libjpeg-turbo both refuse it, so pydicom cannot decode it and sia
    # answers 500 naming the fault; only GDCM's leniency reads it.)
    assert "JPGExtended.dcm" in lossy, refused


def test_stored_syntax_stays_the_default_and_star_keeps_it(sia, pydicom_test_files, tmp_path):
    path = pydicom_test_files / "MR_small_jp2klossless.dcm"
    db = tmp_path / "x.db"
    index_json(sia, db, path)
    url = frames_url(db, [1])
    for accept in ("Accept: */*", 'Accept: multipart/related; type="application/octet-stream"; transfer-syntax=*'):
        status, fields, body, _ = get(sia, db, url, accept)
        assert status == 200
        ((ctype, _, payload),) = parse_multipart(fields["Content-Type"], body)
        assert ctype[1] == "1.2.840.10008.1.2.4.90", accept
        assert payload[:2] == b"\xff\x4f"
    # Explicitly asked for: decoded; a single part for one frame.
    status, fields, body, _ = get(sia, db, url, f"Accept: application/octet-stream; transfer-syntax={EXPLICIT_LE}")
    assert status == 200 and fields["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert body == pydicom.dcmread(path).pixel_array.tobytes()
    # A syntax sia cannot produce from this one.
    status, _, body, _ = get(sia, db, url, 'Accept: multipart/related; type="image/jls"')
    assert status == 406, body


def hostile_copy(src, dst, patch):
    data = bytearray(src.read_bytes())
    patch(data)
    dst.write_bytes(bytes(data))
    return dst


def test_hostile_codestreams_are_clear_errors(sia, pydicom_test_files, tmp_path):
    """A lying JPEG 2000 SIZ (larger than Rows/Columns), a lying JPEG SOF, and damaged
    entropy-coded data: each a clear 500 naming the frame, never a crash or a huge
    allocation."""

    def lying_siz(data):
        at = data.find(b"\xff\x4f\xff\x51")
        data[at + 8 : at + 16] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")

    def lying_sof(data):
        at = data.find(b"\xff\xc3")
        data[at + 5 : at + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")

    def garbage_scan(data):
        at = data.find(b"\xff\xda")
        for i in range(at + 40, min(len(data) - 16, at + 4000), 3):
            data[i] = 0xFF if data[i] else 0x01

    cases = [
        ("MR_small_jp2klossless.dcm", lying_siz, "header describes"),
        ("SC_rgb_jpeg_gdcm.dcm", lying_sof, "header describes"),
        ("SC_rgb_jpeg_gdcm.dcm", garbage_scan, "cannot be decoded"),
    ]
    for name, patch, message in cases:
        target = tmp_path / name
        db = tmp_path / f"{name}.{patch.__name__}.db"
        hostile_copy(pydicom_test_files / name, target, patch)
        index_json(sia, db, target)
        status, _, body, rc = get(sia, db, frames_url(db, [1]), UNCOMPRESSED)
        assert status in (500, 200), (name, patch.__name__, status)
        if status == 500:
            assert message.encode() in body, body
        shutil.rmtree(tmp_path / "x", ignore_errors=True)
    # The lying headers at least must be refused, not decoded.
    for name, patch in [("MR_small_jp2klossless.dcm", lying_siz), ("SC_rgb_jpeg_gdcm.dcm", lying_sof)]:
        target = tmp_path / f"again-{name}"
        db = tmp_path / f"again-{name}.db"
        hostile_copy(pydicom_test_files / name, target, patch)
        index_json(sia, db, target)
        status, _, body, _ = get(sia, db, frames_url(db, [1]), UNCOMPRESSED)
        assert status == 500 and b"header describes" in body, (name, body[:200])


# ---------------------------------------------------------------------------------
# Rendered and thumbnail resources (PS3.18 10.4): the PNG must equal a rendering
# computed here from pydicom's pixel_array with the standard's formulas.

import io  # noqa: E402

from PIL import Image  # noqa: E402
from pydicom.pixels import apply_color_lut, apply_modality_lut  # noqa: E402


def first_value(v):
    return float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)


def expected_grey(ds, frame, window=None):
    """PS3.3 C.11.2.1.2.1 / C.11.2.1.3 over the Modality LUT output; with no window in
    the request or the data set, the frame's range (linear-exact)."""
    x = apply_modality_lut(frame, ds).astype(np.float64)
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (first_value(ds.WindowCenter), first_value(ds.WindowWidth), str(ds.get("VOILUTFunction", "LINEAR")))
    if window is None:
        lo, hi = x.min(), x.max()
        window = ((lo + hi) / 2, max(hi - lo, np.finfo(float).tiny), "LINEAR_EXACT")
    c, w, fn = window
    fn = fn.upper().replace("-", "_")
    if fn == "LINEAR":
        w = max(w, 1.0)
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        y = np.where(x <= c - 0.5 - (w - 1) / 2, 0, np.where(x > c - 0.5 + (w - 1) / 2, 255, y))
    elif fn == "LINEAR_EXACT":
        y = ((x - c) / w + 0.5) * 255
        y = np.where(x <= c - w / 2, 0, np.where(x > c + w / 2, 255, y))
    else:
        y = 255 / (1 + np.exp(-4 * (x - c) / w))
    y = np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    return 255 - y if ds.PhotometricInterpretation == "MONOCHROME1" else y


def expected_colour(ds, frame):
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        lut = apply_color_lut(frame, ds).astype(np.uint32)
        return ((lut * 255 + 32767) // 65535).astype(np.uint8)
    return frame  # pydicom's pixel_array is RGB already (YBR converted)


def rendered_url(db, level="instance", kind="rendered", query=""):
    study, series, sop = the_instance(db)
    url = {
        "study": f"/dicom-web/studies/{study}",
        "series": f"/dicom-web/studies/{study}/series/{series}",
        "instance": f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
        "frame": f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/1",
    }[level]
    return f"{url}/{kind}" + (f"?{query}" if query else "")


def indexed(sia, tmp_path, path):
    db = tmp_path / f"{path.name}.db"
    index_json(sia, db, path)
    return db


def png_of(sia, db, url):
    status, fields, body, _ = get(sia, db, url, "Accept: image/png")
    assert status == 200 and fields["Content-Type"] == "image/png", (url, status, body[:200])
    return np.asarray(Image.open(io.BytesIO(body)))


@pytest.fixture()
def monochrome1(pydicom_test_files, tmp_path):
    ds = pydicom.dcmread(pydicom_test_files / "MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = tmp_path / "mr_monochrome1.dcm"
    ds.save_as(out)
    return out


GREY = [
    "CT_small.dcm",  # Rescale Slope/Intercept, no window: the frame's range
    "MR_small.dcm",  # the data set's window
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_RLE.dcm",  # decoded
    "MR_small_jp2klossless.dcm",  # decoded
    "J2K_pixelrep_mismatch.dcm",  # decoded, sign-extended, rescaled
]
COLOUR = ["examples_palette.dcm", "examples_rgb_color.dcm", "ExplVR_BigEnd.dcm", "SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm"]


def test_rendered_png_equals_the_standard_windowing(sia, pydicom_test_files, tmp_path, monochrome1):
    for name in GREY + ["mr_monochrome1.dcm"]:
        path = monochrome1 if name == "mr_monochrome1.dcm" else pydicom_test_files / name
        ds = pydicom.dcmread(path)
        db = indexed(sia, tmp_path, path)
        got = png_of(sia, db, rendered_url(db))
        assert np.array_equal(got, expected_grey(ds, ds.pixel_array)), name
        for window in [(40, 400, "linear"), (100, 50, "linear-exact"), (0, 300, "sigmoid")]:
            query = "window=" + ",".join(map(str, window))
            got = png_of(sia, db, rendered_url(db, query=query))
            assert np.array_equal(got, expected_grey(ds, ds.pixel_array, window)), (name, window)
    for name in COLOUR:
        ds = pydicom.dcmread(pydicom_test_files / name)
        db = indexed(sia, tmp_path, pydicom_test_files / name)
        got = png_of(sia, db, rendered_url(db, level="frame"))
        assert np.array_equal(got, expected_colour(ds, ds.pixel_array)), name


def test_rendered_ybr_within_rounding(sia, pydicom_test_files, tmp_path):
    # Native YBR_FULL_422 to RGB (PS3.3 C.7.6.3.1.2): pydicom's integer conversion and
    # sia's floating-point one round differently by at most 1.
    name = "SC_ybr_full_422_uncompressed.dcm"
    ds = pydicom.dcmread(pydicom_test_files / name)
    db = indexed(sia, tmp_path, pydicom_test_files / name)
    got = png_of(sia, db, rendered_url(db)).astype(int)
    assert np.abs(got - ds.pixel_array.astype(int)).max() <= 1


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


# JPEG renderings at the default quality (90) must stay this close to the exact one.
JPEG_MIN_PSNR_DB = 35


def test_rendered_jpeg_and_gif(sia, pydicom_test_files, tmp_path):
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    db = indexed(sia, tmp_path, pydicom_test_files / "CT_small.dcm")
    want = expected_grey(ds, ds.pixel_array, (40, 400, "linear"))
    status, fields, body, _ = get(sia, db, rendered_url(db, query="window=40,400"))
    assert status == 200 and fields["Content-Type"] == "image/jpeg"  # the default
    assert psnr(np.asarray(Image.open(io.BytesIO(body)).convert("L")), want) >= JPEG_MIN_PSNR_DB
    low = get(sia, db, rendered_url(db, query="window=40,400&quality=10"))[2]
    assert len(low) < len(body)
    status, fields, body, _ = get(sia, db, rendered_url(db, query="window=40,400"), "Accept: image/gif")
    assert status == 200 and body[:6] == b"GIF89a"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body)).convert("L")), want)
    assert get(sia, db, rendered_url(db), "Accept: application/dicom")[0] == 406
    for bad in ["window=40", "window=40,0", "viewport=0,5", "quality=0", "window=1,2,cubic"]:
        assert get(sia, db, rendered_url(db, query=bad))[0] == 400, bad


def test_thumbnails_and_levels(sia, pydicom_test_files, tmp_path):
    db = indexed(sia, tmp_path, pydicom_test_files / "examples_ybr_color.dcm")  # 30 frames, 640×480
    for level in ["study", "series", "instance", "frame"]:
        status, fields, body, _ = get(sia, db, rendered_url(db, level, "thumbnail"))
        assert status == 200 and fields["Content-Type"] == "image/jpeg", level
        img = Image.open(io.BytesIO(body))
        assert max(img.size) == 128 and img.size[0] > img.size[1], (level, img.size)
        assert not any(k in img.info for k in ("comment", "exif")), "no patient data in a thumbnail"
    status, fields, body, _ = get(sia, db, rendered_url(db, "frame", "thumbnail", "viewport=50,50"), "Accept: image/png")
    assert Image.open(io.BytesIO(body)).size == (50, 38)
    # A series renders every frame, inside multipart/related.
    status, fields, body, _ = get(sia, db, rendered_url(db, "series"), 'Accept: multipart/related; type="image/png"')
    assert status == 200
    parts = parse_multipart(fields["Content-Type"], body)
    assert len(parts) == 30 and all(p[0][0] == "image/png" for p in parts)
    assert parts[4][1].endswith("/frames/5/rendered")


def test_wado_uri_renders_jpeg_by_default(sia, pydicom_test_files, tmp_path):
    ds = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    db = indexed(sia, tmp_path, pydicom_test_files / "CT_small.dcm")
    study, series, sop = the_instance(db)
    base = f"/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={sop}"
    status, fields, body, _ = get(sia, db, base)
    assert status == 200 and fields["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    status, fields, body, _ = get(sia, db, base + "&contentType=image/png&windowCenter=40&windowWidth=400")
    assert status == 200 and fields["Content-Type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), expected_grey(ds, ds.pixel_array, (40, 400, "linear")))
    status, fields, body, _ = get(sia, db, base + "&contentType=image/png&rows=64&columns=64")
    assert Image.open(io.BytesIO(body)).size == (64, 64)
    assert get(sia, db, base + "&frameNumber=2")[0] == 404
    assert get(sia, db, base + "&windowCenter=40")[0] == 400
    assert get(sia, db, base + "&contentType=application/dicom")[1]["Content-Type"] == "application/dicom"


# ---------------------------------------------------------------------------------
# application/dicom in Explicit VR Little Endian from compressed instances (PS3.18
# 8.7.3): lossless sources are decoded by default, lossy ones only when asked.


def instance_parts(sia, db, accept):
    study, series, sop = the_instance(db)
    status, fields, body, _ = get(sia, db, f"/dicom-web/studies/{study}/series/{series}/instances/{sop}", accept)
    assert status == 200, body[:300]
    return [(ctype[1], pydicom.dcmread(io.BytesIO(payload))) for ctype, _, payload in parse_multipart(fields["Content-Type"], body)]


def same_attributes(a, b):
    skip = {"PixelData", "PhotometricInterpretation", "PlanarConfiguration", "ExtendedOffsetTable", "ExtendedOffsetTableLengths"}
    ka = {e.keyword or e.tag for e in a if (e.keyword or "") not in skip and e.tag.element != 0}
    kb = {e.keyword or e.tag for e in b if (e.keyword or "") not in skip and e.tag.element != 0}
    assert ka == kb
    for k in ka:
        assert a[k].value == b[k].value, k


MULTIPART_DICOM = 'Accept: multipart/related; type="application/dicom"'


def test_application_dicom_decodes_lossless_sources(sia, pydicom_test_files, tmp_path):
    for name in ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle_2frame.dcm", "J2K_pixelrep_mismatch.dcm"]:
        original = pydicom.dcmread(pydicom_test_files / name)
        db = indexed(sia, tmp_path, pydicom_test_files / name)
        ((ts_uid, ds),) = instance_parts(sia, db, MULTIPART_DICOM)
        assert ts_uid == EXPLICIT_LE and ds.file_meta.TransferSyntaxUID == EXPLICIT_LE, name
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(ds.pixel_array, original.pixel_array), name
        same_attributes(ds, original)
        # transfer-syntax=* keeps the stored form.
        ((ts_uid, _),) = instance_parts(sia, db, MULTIPART_DICOM + "; transfer-syntax=*")
        assert ts_uid == original.file_meta.TransferSyntaxUID


def test_application_dicom_keeps_lossy_sources_unless_asked(sia, pydicom_test_files, tmp_path):
    name = "SC_rgb_dcmtk_+eb+cy+np.dcm"  # JPEG Baseline, YBR_FULL_422
    original = pydicom.dcmread(pydicom_test_files / name)
    db = indexed(sia, tmp_path, pydicom_test_files / name)
    ((ts_uid, _),) = instance_parts(sia, db, MULTIPART_DICOM)
    assert ts_uid == "1.2.840.10008.1.2.4.50"
    ((ts_uid, ds),) = instance_parts(sia, db, f"Accept: multipart/related; type=\"application/dicom\"; transfer-syntax={EXPLICIT_LE}")
    assert ts_uid == EXPLICIT_LE
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    diff = np.abs(ds.pixel_array.astype(int) - original.pixel_array.astype(int)).max()
    assert diff <= LOSSY_MAX_DIFF
    # A syntax sia cannot produce from it: 406.
    study, series, sop = the_instance(db)
    url = f"/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    jls = 'Accept: multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80'
    assert get(sia, db, url, jls)[0] == 406


def test_wado_uri_application_dicom_defaults_to_explicit_le(sia, pydicom_test_files, tmp_path):
    original = pydicom.dcmread(pydicom_test_files / "MR_small_RLE.dcm")
    db = indexed(sia, tmp_path, pydicom_test_files / "MR_small_RLE.dcm")
    study, series, sop = the_instance(db)
    base = f"/wado?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={sop}&contentType=application/dicom"
    status, _, body, _ = get(sia, db, base)
    ds = pydicom.dcmread(io.BytesIO(body))
    assert status == 200 and ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(ds.pixel_array, original.pixel_array)
    status, _, body, _ = get(sia, db, base + "&transferSyntax=1.2.840.10008.1.2.5")
    assert status == 200 and pydicom.dcmread(io.BytesIO(body)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
