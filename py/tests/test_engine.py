"""The Engine's calls on the demo set: studies, search, metadata, links, handle, errors,
closing; and the package's shape (exceptions, stubs)."""

from __future__ import annotations

import pathlib
import threading

import pytest

import sia
from conftest import instances

DEMO_ROOT = "2.25.228146457203842916711418316839742735"


def test_studies_are_imaging_study_resources_filtered_by_patient(engine: sia.Engine) -> None:
    every = engine.studies()
    assert len(every) == 4
    assert all(s["resourceType"] == "ImagingStudy" for s in every)
    mine = engine.studies(patient_id="DEMO-001")
    assert mine and len(mine) < len(every)
    assert all(s["subject"]["identifier"]["value"] == "DEMO-001" for s in mine)
    assert engine.studies(patient_id="DEMO-001", issuer="no-such-issuer") == []
    assert len(engine.studies(patient_id="DEMO-001", issuer="SIA_DEMO")) == len(mine)
    assert engine.studies(patient_id="nobody") == []


def test_search_returns_the_searchset_bundle(engine: sia.Engine) -> None:
    bundle = engine.search(patient_identifier="SIA_DEMO|DEMO-001")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    studies = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    assert {s["id"] for s in studies} == {s["id"] for s in engine.studies(patient_id="DEMO-001")}
    assert engine.search(_count=1)["entry"][0]["resource"]["resourceType"] == "ImagingStudy"
    assert engine.search({"modality": "MR"})["total"] >= 1
    with pytest.raises(sia.InvalidInput) as e:
        engine.search(no_such_parameter="1")
    assert e.value.status == 400 and "no_such_parameter" in str(e.value)


def test_metadata_is_dicom_json_per_instance(engine: sia.Engine) -> None:
    study, series, sop = instances(engine)[0]
    one = engine.metadata(study, series, sop)
    assert len(one) == 1 and one[0]["00080018"]["Value"] == [sop]
    in_series = engine.metadata(study, series)
    assert sop in {i["00080018"]["Value"][0] for i in in_series}
    in_study = engine.metadata(study)
    assert len(in_study) >= len(in_series)
    with pytest.raises(sia.NotFound):
        engine.metadata(DEMO_ROOT + ".404")
    with pytest.raises(sia.InvalidInput):
        engine.metadata("1.2/../../etc")
    with pytest.raises(sia.InvalidInput):
        engine.metadata(study, None, sop)


def test_handle_answers_as_the_server_with_chunks_as_memoryviews(engine: sia.Engine) -> None:
    study, series, sop = instances(engine)[0]
    r = engine.handle("GET", f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata")
    assert r.status == 200 and r.reason == "OK"
    assert r.header("content-type") == "application/dicom+json"
    assert int(r.header("Content-Length") or -1) == len(r.body) == r.content_length
    views = r.chunks
    assert all(isinstance(v, memoryview) and v.readonly for v in views)
    assert b"".join(bytes(v) for v in views) == r.body
    missing = engine.handle("GET", "/fhir/ImagingStudy/nope", headers={"Accept": "application/fhir+json"})
    assert missing.status == 404 and missing.header("Content-Type", ).startswith("application/fhir+json")
    bad = engine.handle("GET", "/dicom-web/studies?BadKey=1", headers=[(b"accept", b"*/*")])
    assert bad.status == 400


def test_link_and_unlink(engine: sia.Engine) -> None:
    engine.link("123", "DEMO-001", "")
    assert engine.unlink("123", "DEMO-001", "") is True
    assert engine.unlink("123", "DEMO-001", "") is False
    with pytest.raises(sia.InvalidInput):
        engine.link("", "DEMO-001")


def test_errors_form_one_hierarchy_with_the_engines_message() -> None:
    for cls in (
        sia.InvalidInput,
        sia.InvalidDicom,
        sia.NotFound,
        sia.Gone,
        sia.AccessDenied,
        sia.InvalidToken,
        sia.NotAcceptable,
        sia.TooCostly,
        sia.Unavailable,
        sia.Cancelled,
        sia.ConfigError,
        sia.InternalError,
        sia.EngineClosed,
    ):
        assert issubclass(cls, sia.SiaError), cls
    assert issubclass(sia.NotFound, LookupError) and issubclass(sia.InvalidInput, ValueError)


def test_a_bad_configuration_is_a_config_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bad.toml").write_text("[server]\nbase_url = 1\n")
    with pytest.raises(sia.ConfigError) as e:
        sia.Engine(None, tmp_path / "bad.toml")
    assert "bad.toml" in str(e.value)
    with pytest.raises(sia.ConfigError):
        sia.Engine(None)
    with pytest.raises(sia.ConfigError):
        sia.Engine(tmp_path / "x.db", read_mode="carrier-pigeon")


def test_configuration_paths_are_relative_to_its_folder(demo_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sia.toml").write_text(
        '[server]\nbase_url = "http://127.0.0.1:9999"\ndb = "here.db"\n'
    )
    with sia.Engine(None, tmp_path / "conf" / "sia.toml") as e:
        assert pathlib.Path(e.db) == tmp_path / "conf" / "here.db"
        assert e.base_url == "http://127.0.0.1:9999"
    assert (tmp_path / "conf" / "here.db").exists()


def test_close_is_idempotent_and_later_calls_raise_engine_closed(demo_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with sia.Engine(tmp_path / "sia.db") as e:
        assert not e.closed
    assert e.closed
    e.close()
    for call in (e.studies, lambda: e.index(demo_dir), lambda: e.handle("GET", "/fhir/metadata")):
        with pytest.raises(sia.EngineClosed):
            call()
    assert "closed" in repr(e)


def test_one_engine_serves_many_threads(engine: sia.Engine) -> None:
    every = instances(engine)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for study, series, sop in every:
                assert engine.metadata(study, series, sop)[0]["00080018"]["Value"] == [sop]
        except BaseException as e:  # noqa: BLE001 (collected for the main thread)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_the_package_ships_stubs_and_py_typed() -> None:
    root = pathlib.Path(sia.__file__).parent
    assert (root / "py.typed").exists()
    assert (root / "_sia.pyi").exists()
