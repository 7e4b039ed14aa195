//! `include/sia.h` is what cbindgen generates from `ffi-c/abi` today: this test fails
//! when the committed header differs (a changed signature or doc comment not
//! regenerated), and rewrites it when `SIA_BLESS_HEADER=1`.

use std::path::Path;

/// The header as cbindgen makes it now, with the version macros of this crate.
fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let (major, minor, patch) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    );
    let number = major.parse::<u32>().unwrap() * 1_000_000
        + minor.parse::<u32>().unwrap() * 1_000
        + patch.parse::<u32>().unwrap();
    config.after_includes = Some(format!(
        "\n/* The version of this header; sia_version() / sia_version_number() give the\n\
         \x20* library's, which must have the same major (before 1.0: major and minor). */\n\
         #define SIA_VERSION_MAJOR {major}\n\
         #define SIA_VERSION_MINOR {minor}\n\
         #define SIA_VERSION_PATCH {patch}\n\
         #define SIA_VERSION_STRING \"{major}.{minor}.{patch}\"\n\
         /* MAJOR * 1000000 + MINOR * 1000 + PATCH */\n\
         #define SIA_VERSION_NUMBER {number}\n"
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir.join("abi"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn committed_header_is_what_cbindgen_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/sia.h");
    let fresh = generate();
    if std::env::var_os("SIA_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/sia.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi-c/include/sia.h is not what cbindgen generates from ffi-c/abi; regenerate it with\n\
         SIA_BLESS_HEADER=1 cargo test -p sia-ffi --test header\nand commit it"
    );
}

#[test]
fn every_function_in_the_header_is_prefixed_and_documented() {
    let header = generate();
    let mut functions = 0;
    let lines: Vec<&str> = header.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        // Function declarations are the unindented lines with a `(` that are not
        // comments, preprocessor lines or typedefs (a declaration may go on below).
        let starts_declaration = line.contains('(')
            && !line.starts_with([' ', '#', '/', '}', '*'])
            && !line.starts_with("typedef")
            && !line.starts_with("extern");
        if starts_declaration {
            let name = line
                .split('(')
                .next()
                .unwrap()
                .rsplit([' ', '*'])
                .next()
                .unwrap();
            assert!(name.starts_with("sia_"), "{name} is not prefixed sia_");
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with("//"),
                "{name} has no doc comment"
            );
            functions += 1;
        }
    }
    assert!(
        functions >= 20,
        "only {functions} functions found in the header"
    );
}
