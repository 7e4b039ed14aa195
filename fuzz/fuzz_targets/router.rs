//! `Engine::handle` on arbitrary method, path, query and headers against a small fixed
//! index (the demo set): never a panic, a status from the documented set, and a
//! Content-Length that matches the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sia::http::Request;
use sia::{Config, Engine};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<(tempfile::TempDir, Engine)> = OnceLock::new();
    &ENGINE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            sia::demo::write_demo(&dir.path().join("data")).expect("demo");
            let engine = Engine::open(Config {
                db: dir.path().join("i.db"),
                ..Config::default()
            })
            .expect("engine");
            engine
                .index(&[dir.path().join("data")], &Default::default())
                .expect("index");
            (dir, engine)
        })
        .1
}

/// Real UIDs of the demo set, so the fuzzer reaches the frame code without guessing them.
const PREFIXES: &[&str] = &[
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.2/series/2.25.228146457203842916711418316839742735.2.1/instances/2.25.228146457203842916711418316839742735.2.1.1/",
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.4/series/2.25.228146457203842916711418316839742735.4.1/instances/2.25.228146457203842916711418316839742735.4.1.1/",
    "/dicom-web/studies/2.25.228146457203842916711418316839742735.3/series/2.25.228146457203842916711418316839742735.3.2/instances/2.25.228146457203842916711418316839742735.3.2.1/",
    "/dicom-web/",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\n');
    let first = fields.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let target = format!("{}{}", PREFIXES[usize::from(sel) % PREFIXES.len()], target);
    let mut req = Request::get(&target);
    req.method = method.to_string();
    for f in fields {
        if let Some((name, value)) = f.split_once(':') {
            req.headers
                .push((name.to_string(), value.trim().to_string()));
        }
    }
    let resp = engine().handle(&req);
    assert!(
        [200, 206, 400, 401, 403, 404, 405, 406, 410, 501].contains(&resp.status),
        "status {}",
        resp.status
    );
    if req.method != "HEAD" {
        assert_eq!(
            resp.header("Content-Length"),
            Some(resp.body.len().to_string().as_str())
        );
    }
});
