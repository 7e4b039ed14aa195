"""Engine.authorize against the engine's decision table: every row of
tests/py/test_auth.py (keys and tokens made there with cryptography and PyJWT), with
that test's configuration, must give the row's status, the RFC 6750 challenge on a
refusal, and the same status Engine.handle gives the row's request."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType
from typing import Any

import pytest

import sia

TESTS_PY = pathlib.Path(__file__).resolve().parents[2] / "tests" / "py"


def load_test_auth() -> ModuleType:
    """tests/py/test_auth.py as a module; its `from conftest import run_sia` is served by
    tests/py/conftest.py, put in place under that name only while it is imported."""
    spec = importlib.util.spec_from_file_location("sia_py_conftest", TESTS_PY / "conftest.py")
    assert spec and spec.loader
    py_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py_conftest)
    saved = sys.modules.get("conftest")
    sys.modules["conftest"] = py_conftest
    try:
        spec = importlib.util.spec_from_file_location("sia_py_test_auth", TESTS_PY / "test_auth.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("conftest", None)
        else:
            sys.modules["conftest"] = saved
    return module


auth = load_test_auth()
ROOT = auth.ROOT

# The access each DICOMweb target of the table asks for.
ACCESS: dict[str, dict[str, str]] = {
    auth.OWN_STUDY: {"study": f"{ROOT}.1"},
    auth.OTHER_STUDY: {"study": f"{ROOT}.3"},
    auth.OWN_FRAME: {"study": f"{ROOT}.2", "series": f"{ROOT}.2.1", "sop": f"{ROOT}.2.1.1"},
    auth.SEARCH: {},
}


@pytest.fixture(scope="module")
def secured(demo_dir: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("authorize")
    with sia.Engine(base / "sia.db") as e:
        e.index(demo_dir, progress=False)
        e.link("123", "DEMO-001", "SIA_DEMO")
    keys = auth.write_keys_and_config(base)
    with sia.Engine(None, base / "sia.toml") as e:
        yield e, keys


def test_the_decision_table(secured: Any) -> None:
    engine, keys = secured
    table = auth.rows(keys)
    assert len(table) >= 30
    failures = []
    for name, token, target, want in table:
        d = engine.authorize(token, **ACCESS[target])
        status = 200 if d.allowed else d.status
        if status != want:
            failures.append(f"{name}: {status} (want {want}): {d.message}")
        if bool(d) != (want == 200):
            failures.append(f"{name}: bool(decision) is {bool(d)}")
        if want == 401 and not (d.challenge or "").startswith("Bearer"):
            failures.append(f"{name}: 401 without a Bearer challenge: {d.challenge!r}")
        if want != 200 and not d.message:
            failures.append(f"{name}: refused without a message")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        handled = engine.handle("GET", target, headers=headers).status
        if handled != status:
            failures.append(f"{name}: authorize {status}, handle {handled}")
    assert not failures, "\n".join(failures)


def test_no_token_is_a_401_challenge_and_bad_arguments_raise(secured: Any) -> None:
    engine, _ = secured
    d = engine.authorize(None, f"{ROOT}.1")
    assert not d and d.status == 401 and (d.challenge or "").startswith("Bearer")
    with pytest.raises(sia.InvalidInput):
        engine.authorize("x", "not a uid")
    with pytest.raises(sia.InvalidInput):
        engine.authorize("x", None, f"{ROOT}.1.1")


def test_without_issuers_everything_is_allowed(engine: sia.Engine) -> None:
    assert engine.authorize(None, f"{ROOT}.1")
    assert engine.authorize(None)
