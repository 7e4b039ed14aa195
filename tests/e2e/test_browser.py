"""The imaging client in a real browser (issue 10): headless Chromium (Debian's
`chromium`, driven by Playwright from PyPI) against `sia serve --dev` serving the SMART
imaging app at /app/ and the OHIF viewer at /viewer/.

- The seed journey: /app/ -> Launch -> the dev EHR's patient picker (a click) -> token ->
  the banner names that patient -> the list holds exactly that patient's studies -> Open
  -> OHIF's viewport shows the image (canvas pixels not all one value). A screenshot is
  kept as an artifact (and, with SIA_UPDATE_SCREENSHOT=1, written to
  docs/screenshot-viewer.png for the README).
- Another patient's study is refused in the browser: the app shows the 403, and OHIF
  handed that study under this patient's capability draws no pixels.
- An expired (or otherwise refused) token: the app says so and launches again.
- dicomweb-client (npm) in a page of another origin retrieves metadata and frames
  cross-origin with the bearer token (the preflight is answered).
- Every request the browser made is recorded: none was answered 5xx, and none carried a
  token in its URL except capability URLs (/dicom-web/cap/...).

Needs /usr/bin/chromium (scripts/test installs it with apt-get when it can), Playwright
(tests/e2e/requirements.txt) and the web packages of scripts/web-deps (run here if needed).
"""

import base64
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import DEMO_ROOT, ROOT, Server

CHROMIUM = os.environ.get("SIA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT = 30
# OHIF loads ~20 MB of JavaScript and decodes in software here: generous.
VIEWER_TIMEOUT_MS = 90_000
CT_STUDY = f"{DEMO_ROOT}.1"  # DEMO-001, CT CHEST, 9 instances
US_STUDY = f"{DEMO_ROOT}.2"  # DEMO-001, US ABDOMEN
OTHER_STUDY = f"{DEMO_ROOT}.3"  # DEMO-002's
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in tests/e2e/requirements.txt")


@pytest.fixture(scope="module")
def web_cache() -> pathlib.Path:
    """The pinned fhirclient, OHIF and dicomweb-client (scripts/web-deps is idempotent)."""
    out = subprocess.run([str(ROOT / "scripts" / "web-deps")], check=True, capture_output=True, text=True)
    cache = pathlib.Path(out.stdout.strip().splitlines()[-1])
    for need in ["fhirclient/fhir-client.min.js", "ohif/index.html", "dicomweb-client/dicomweb-client.js"]:
        assert (cache / need).is_file(), need
    return cache


@pytest.fixture(scope="module")
def web_server(sia, demo_dir, web_cache, tmp_path_factory):
    """`sia serve DEMO --dev` with the app and the viewer (as scripts/run starts it)."""
    work = tmp_path_factory.mktemp("web")
    s = Server(
        sia,
        work,
        [
            demo_dir,
            "--dev",
            "--db",
            work / "sia.db",
            "--app",
            ROOT / "app",
            "--app-lib",
            web_cache / "fhirclient",
            "--viewer",
            web_cache / "ohif",
        ],
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Recorder:
    """Every request a browser context made, with its answer's status."""

    def __init__(self, context):
        self.requests = []  # [url, method, status or None, failure]
        self.lock = threading.Lock()
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("requestfailed", self._failed)

    def _request(self, req):
        with self.lock:
            self.requests.append({"req": req, "url": req.url, "method": req.method, "status": None})

    def _find(self, req):
        for r in reversed(self.requests):
            if r["req"] is req:
                return r
        return None

    def _response(self, resp):
        with self.lock:
            r = self._find(resp.request)
            if r is not None:
                r["status"] = resp.status

    def _failed(self, req):
        with self.lock:
            r = self._find(req)
            if r is not None:
                r["failure"] = req.failure

    def check(self, tokens=()):
        """No 5xx; no token in any URL but a capability URL."""
        assert self.requests, "the browser made no request"
        for r in self.requests:
            url = r["url"]
            assert r["status"] is None or r["status"] < 500, f"{r['method']} {url} -> {r['status']}"
            if url.startswith("data:") or url.startswith("blob:"):
                continue
            parsed = urllib.parse.urlsplit(url)
            capability = "/dicom-web/cap/" in parsed.path
            for t in tokens:
                assert t not in url, f"a token in the URL of {r['method']} {url[:120]}"
            query = urllib.parse.parse_qs(parsed.query)
            assert not {"token", "access_token"} & set(query), url[:160]
            if not capability:
                assert not JWT.search(url), f"a JWT in the URL of {r['method']} {url[:160]}"

    def statuses(self, pattern):
        return [(r["status"], r["url"]) for r in self.requests if re.search(pattern, r["url"])]


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.recorder = Recorder(ctx)
    yield ctx
    ctx.close()


def launch_as(page, base, patient_id):
    """/app/ -> Launch -> the dev EHR's picker -> click `patient_id` -> the app again."""
    page.goto(f"{base}/app/")
    page.click("#launch-button")
    page.wait_for_selector("text=Choose a patient", timeout=TIMEOUT * 1000)
    page.click(f'a[href*="patient={patient_id}"]')
    page.wait_for_selector("#patient-banner:not([hidden])", timeout=TIMEOUT * 1000)


def app_token(page) -> str:
    """The access token fhirclient keeps in the tab's sessionStorage."""
    return page.evaluate(
        """() => {
          const key = JSON.parse(sessionStorage.getItem('SMART_KEY'));
          return JSON.parse(sessionStorage.getItem(key)).tokenResponse.access_token;
        }"""
    )


def expected_studies(server, patient_id) -> dict:
    r = server.get(f"/fhir/ImagingStudy?patient=Patient/{patient_id}", token=server.token)
    assert r.status_code == 200
    return {e["resource"]["id"]: e["resource"] for e in r.json()["entry"]}


# The viewport's pixels: cornerstone draws each viewport on a 2D canvas.
VIEWPORT_PIXELS = """() => {
  const out = [];
  for (const c of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let min = 255, max = 0, lit = 0;
    for (let i = 0; i < d.length; i += 4) {
      const v = d[i] + d[i + 1] + d[i + 2];
      if (v / 3 < min) min = v / 3;
      if (v / 3 > max) max = v / 3;
      if (v > 0) lit++;
    }
    out.push({width: c.width, height: c.height, min, max, lit});
  }
  return out;
}"""


def wait_for_pixels(page, timeout_ms=VIEWER_TIMEOUT_MS):
    deadline = time.time() + timeout_ms / 1000
    seen = []
    while time.time() < deadline:
        seen = page.evaluate(VIEWPORT_PIXELS)
        if any(c["max"] > c["min"] and c["lit"] > 100 for c in seen):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"no image in OHIF's viewport after {timeout_ms} ms: {seen}")


def skip_tour(page):
    """OHIF's first-visit tour covers part of the viewport: skip it when shown."""
    skip = page.locator("text=Skip all")
    try:
        skip.first.click(timeout=3000)
    except Exception:
        pass


def test_seed_journey_app_launch_picker_banner_studies_and_ohif_pixels(web_server, context, tmp_path):
    base = web_server.base
    page = context.new_page()
    launch_as(page, base, "DEMO-001")

    # The banner names the patient the picker was clicked for.
    patient = web_server.get("/dev/fhir/Patient/DEMO-001", token=web_server.token).json()
    name = patient["name"][0]
    banner = page.locator("#patient-banner")
    assert " ".join(name["given"] + [name["family"]]) in banner.inner_text()
    assert banner.get_attribute("data-patient") == "DEMO-001"

    # The study list: exactly that patient's studies, with their details.
    page.wait_for_selector("#study-table tbody tr", timeout=TIMEOUT * 1000)
    want = expected_studies(web_server, "DEMO-001")
    rows = page.locator("#study-table tbody tr")
    got = {rows.nth(i).get_attribute("data-study"): rows.nth(i) for i in range(rows.count())}
    assert set(got) == set(want) == {CT_STUDY, US_STUDY}
    for uid, study in want.items():
        row = got[uid]
        assert row.locator("td.date").inner_text() == study["started"][:10]
        assert row.locator("td.modality").inner_text() == ", ".join(m["code"] for m in study["modality"])
        assert row.locator("td.description").inner_text() == study["description"]
        assert row.locator("td.series").inner_text() == str(study["numberOfSeries"])
        assert row.locator("td.instances").inner_text() == str(study["numberOfInstances"])
        acsn = [i["value"] for i in study["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
        assert row.locator("td.accession").inner_text() == acsn[0]
    token = app_token(page)
    assert token

    # Open the CT study: OHIF on that study, through its capability address.
    href = got[CT_STUDY].locator("a.open-study").get_attribute("href")
    assert href.startswith(f"{base}/viewer/viewer?StudyInstanceUIDs={CT_STUDY}#dicomweb=")
    got[CT_STUDY].locator("a.open-study").click()
    page.wait_for_url(re.compile(r"/viewer/viewer\?StudyInstanceUIDs="), timeout=TIMEOUT * 1000)
    canvases = wait_for_pixels(page)
    assert "#dicomweb" not in page.url  # taken out of the address bar
    skip_tour(page)
    time.sleep(1)
    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000, canvases
    if os.environ.get("SIA_UPDATE_SCREENSHOT") == "1":
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(shot, docs / "screenshot-viewer.png")

    rec = context.recorder
    (tmp_path / "requests.json").write_text(
        json.dumps([{k: r.get(k) for k in ("method", "url", "status")} for r in rec.requests], indent=1)
    )
    # OHIF asked through the capability, and every DICOMweb answer was 200.
    dicomweb = rec.statuses(r"/dicom-web/")
    assert dicomweb and all("/dicom-web/cap/" in u for _, u in dicomweb), dicomweb
    assert all(s in (200, 304) for s, _ in dicomweb), dicomweb
    assert rec.statuses(r"/frames/1")
    rec.check(tokens=[token])
    # Neither the token nor a capability reached the server's log.
    log = web_server.log()
    assert token not in log and not JWT.search(log)


def test_another_patients_study_is_refused_in_the_browser(web_server, context):
    base = web_server.base
    page = context.new_page()
    launch_as(page, base, "DEMO-001")
    page.wait_for_selector("#study-table tbody tr", timeout=TIMEOUT * 1000)
    token = app_token(page)
    ct_href = page.locator(f'tr[data-study="{CT_STUDY}"] a.open-study').get_attribute("href")

    # The app, asked for DEMO-002's study: the imaging server's 403, explained; no link.
    page.evaluate("uid => { location.hash = 'study=' + uid; }", OTHER_STUDY)
    msg = page.locator('#message[data-kind="forbidden"]')
    msg.wait_for(timeout=TIMEOUT * 1000)
    assert "not in your patient's record" in msg.inner_text()
    assert page.locator("#studies").is_hidden()
    assert page.locator("a.open-study").count() == 0
    # The same token, straight at DICOMweb from the page: 403 too.
    status = page.evaluate(
        """async ([url, token]) => (await fetch(url, {headers: {Authorization: 'Bearer ' + token}})).status""",
        [f"{base}/dicom-web/studies/{OTHER_STUDY}/metadata", token],
    )
    assert status == 403

    # OHIF handed DEMO-002's study under DEMO-001's CT capability: its searches find
    # nothing, anything of that study is 403, OHIF says the study is not found; no pixels.
    fragment = ct_href.split("#", 1)[1]
    page.goto(f"{base}/viewer/viewer?StudyInstanceUIDs={OTHER_STUDY}#{fragment}")
    page.wait_for_url(re.compile(r"notfoundstudy"), timeout=VIEWER_TIMEOUT_MS)
    time.sleep(1)
    asked = context.recorder.statuses(re.escape(OTHER_STUDY))
    assert any("/cap/" in u for _, u in asked), asked
    for status, url in asked:
        path = urllib.parse.urlsplit(url).path
        if "/viewer/" in path:
            continue
        assert status == 403 or path.endswith(("/studies", "/series", "/instances")), (status, url)
    served = context.recorder.statuses(rf"{re.escape(OTHER_STUDY)}.*/(frames|metadata)")
    assert all(status == 403 for status, _ in served), served
    pixels = page.evaluate(VIEWPORT_PIXELS)
    assert not any(c["max"] > c["min"] for c in pixels), pixels
    context.recorder.check(tokens=[token])


def test_an_expired_token_asks_to_launch_again(web_server, context):
    base = web_server.base
    page = context.new_page()
    launch_as(page, base, "DEMO-001")
    page.wait_for_selector("#study-table tbody tr", timeout=TIMEOUT * 1000)
    token = app_token(page)
    # The token the tab holds stops being accepted (as when it expires): the app says so.
    page.evaluate(
        """() => {
          const key = JSON.parse(sessionStorage.getItem('SMART_KEY'));
          const state = JSON.parse(sessionStorage.getItem(key));
          const [h, p, s] = state.tokenResponse.access_token.split('.');
          const claims = JSON.parse(atob(p.replace(/-/g, '+').replace(/_/g, '/')));
          claims.exp = Math.floor(Date.now() / 1000) - 3600;
          const b64 = btoa(JSON.stringify(claims)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
          state.tokenResponse.access_token = [h, b64, s].join('.');
          sessionStorage.setItem(key, JSON.stringify(state));
        }"""
    )
    page.reload()
    msg = page.locator('#message[data-kind="expired"]')
    msg.wait_for(timeout=TIMEOUT * 1000)
    assert "Launch again" in msg.inner_text()
    # Launching again reaches the picker and a fresh session.
    page.click("#message-action")
    page.wait_for_selector("text=Choose a patient", timeout=TIMEOUT * 1000)
    page.click('a[href*="patient=DEMO-001"]')
    page.wait_for_selector("#study-table tbody tr", timeout=TIMEOUT * 1000)
    assert app_token(page) != token
    context.recorder.check(tokens=[token])


class _Static(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def other_origin(web_cache, tmp_path):
    """A second, tiny HTTP server on another loopback port: a page and dicomweb-client."""
    root = tmp_path / "other-origin"
    root.mkdir()
    shutil.copy(web_cache / "dicomweb-client" / "dicomweb-client.js", root / "dicomweb-client.js")
    (root / "index.html").write_text(
        "<!doctype html><meta charset=utf-8><title>another origin</title>"
        '<script src="dicomweb-client.js"></script><p>dicomweb-client from another origin</p>'
    )
    handler = lambda *a, **kw: _Static(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_dicomweb_client_in_a_page_of_another_origin_with_the_bearer_token(web_server, context, other_origin):
    base = web_server.base
    token = web_server.token  # DEMO-001's ready token (the dev EHR's, as an app would hold)
    study = web_server.get(f"/dicom-web/studies/{CT_STUDY}/series", token=token).json()
    series = study[0]["0020000E"]["Value"][0]
    instances = web_server.get(f"/dicom-web/studies/{CT_STUDY}/series/{series}/instances", token=token).json()
    instance = instances[0]["00080018"]["Value"][0]
    page = context.new_page()
    page.goto(f"{other_origin}/index.html")
    assert not page.url.startswith(base)
    result = page.evaluate(
        """async ([url, token, study, series, instance]) => {
          const client = new DICOMwebClient.api.DICOMwebClient({
            url, headers: {Authorization: 'Bearer ' + token}});
          const metadata = await client.retrieveSeriesMetadata({
            studyInstanceUID: study, seriesInstanceUID: series});
          const frames = await client.retrieveInstanceFrames({
            studyInstanceUID: study, seriesInstanceUID: series, sopInstanceUID: instance,
            frameNumbers: [1]});
          const bytes = new Uint8Array(frames[0]);
          let bin = '';
          for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
          return {metadata: metadata.length, uids: metadata.map(m => m['00080018'].Value[0]),
                  frame: btoa(bin), origin: location.origin};
        }""",
        [f"{base}/dicom-web", token, CT_STUDY, series, instance],
    )
    assert result["origin"] == other_origin
    assert result["metadata"] == len(instances) and instance in result["uids"]
    # The frame is byte-equal to the one a plain client gets.
    r = web_server.get(
        f"/dicom-web/studies/{CT_STUDY}/series/{series}/instances/{instance}/frames/1",
        token=token,
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
    )
    assert r.status_code == 200
    boundary = re.search(r'boundary="?([^";]+)', r.headers["Content-Type"]).group(1).encode()
    part = r.content.split(b"--" + boundary)[1]
    want = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    assert base64.b64decode(result["frame"]) == want
    # Authorization is not a CORS-safelisted header: the browser preflighted, and sia
    # answered (the server logs every request it answered).
    assert re.search(r"OPTIONS /dicom-web/studies/\S+/metadata 200", web_server.log()), web_server.log()[-2000:]
    context.recorder.check(tokens=[token])


def test_capability_urls_serve_their_study_to_ohifs_searches_and_nothing_else(web_server):
    token = web_server.token
    bundle = web_server.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=token).json()
    study = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == CT_STUDY)
    (endpoint,) = study["contained"]
    address = endpoint["address"]
    assert address.startswith(f"{web_server.base}/dicom-web/cap/")
    path = address[len(web_server.base) :]
    # OHIF's study-level searches under the capability: exactly its study.
    for query in [f"StudyInstanceUID={CT_STUDY}", "00100020=DEMO-001", "PatientID=DEMO-002", ""]:
        r = web_server.get(f"{path}/studies?{query}")
        assert r.status_code in (200, 204), (query, r.status_code, r.text)
        found = {s["0020000D"]["Value"][0] for s in (r.json() if r.status_code == 200 else [])}
        assert found <= {CT_STUDY}, (query, found)
        if query.startswith(("StudyInstanceUID", "00100020")):
            assert found == {CT_STUDY}, query
    # Another study under it: refused.
    assert web_server.get(f"{path}/studies/{OTHER_STUDY}/series").status_code == 403
    assert web_server.get(f"{path}/studies/{OTHER_STUDY}/metadata").status_code == 403


def test_caching_headers_and_the_viewers_rewritten_files(web_server):
    token = web_server.token
    series = web_server.get(f"/dicom-web/studies/{CT_STUDY}/series", token=token)
    assert series.headers["Cache-Control"] == "no-cache"
    uid = series.json()[0]["0020000E"]["Value"][0]
    meta = web_server.get(f"/dicom-web/studies/{CT_STUDY}/series/{uid}/metadata", token=token)
    assert meta.status_code == 200
    assert meta.headers["Cache-Control"] == "private, max-age=86400"
    assert "Authorization" in meta.headers["Vary"]
    inst = meta.json()[0]["00080018"]["Value"][0]
    frame = web_server.get(
        f"/dicom-web/studies/{CT_STUDY}/series/{uid}/instances/{inst}/frames/1",
        token=token,
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert frame.status_code == 200 and frame.headers["Cache-Control"] == "private, max-age=86400"
    # Refusals are not cached as such.
    assert "max-age" not in web_server.get(f"/dicom-web/studies/{CT_STUDY}/series/{uid}/metadata").headers.get(
        "Cache-Control", ""
    )
    search = web_server.get("/fhir/ImagingStudy?patient=Patient/DEMO-001", token=token)
    assert search.headers["Cache-Control"] == "no-store"
    # The viewer: served under /viewer/ with its links rewritten, a runtime configuration,
    # hashed bundles immutable.
    index = web_server.get("/viewer/")
    assert index.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in index.text
    assert 'src="/app' not in index.text and 'src="/viewer/app.bundle.' in index.text
    bundle = re.search(r'src="/viewer/(app\.bundle\.[0-9a-f]+\.js)"', index.text).group(1)
    js = web_server.get(f"/viewer/{bundle}")
    assert js.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert '__webpack_require__.p = "/viewer/";' in js.text
    conf = web_server.get("/viewer/app-config.js")
    assert conf.headers["Cache-Control"] == "no-cache"
    assert f'var base = "{web_server.base}/dicom-web";' in conf.text
    assert web_server.get("/viewer/viewer?StudyInstanceUIDs=1.2.3").text == index.text
    assert web_server.get("/viewer/no-such-file.js").status_code == 404
    app = web_server.get("/app/")
    assert app.status_code == 200 and "fhir-client.min.js" in app.text
    assert web_server.get("/app/lib/fhir-client.min.js").status_code == 200
    assert web_server.get("/app/../Cargo.toml").status_code in (400, 404)
    assert f"{web_server.base}/app/" in web_server.stdout()
