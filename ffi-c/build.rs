//! Gives the shared library a SONAME, which cargo does not set on a cdylib: the ABI
//! version is the major version, or `0.minor` before 1.0 (where a minor release may
//! break the ABI), as cargo-c does. The install script (scripts/install-libsia) names
//! the files to match: libsia.so.0.1.0, the SONAME link libsia.so.0.1, and libsia.so.

fn main() {
    let major: u64 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let abi = if major == 0 {
        format!("0.{minor}")
    } else {
        major.to_string()
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsia.so.{abi}");
    }
    println!("cargo:rustc-env=SIA_ABI_VERSION={abi}");
    println!("cargo:rerun-if-changed=build.rs");
}
