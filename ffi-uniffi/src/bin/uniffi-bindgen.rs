//! uniffi's binding generator, built from the same uniffi version as the library so the
//! generated Kotlin always matches the scaffolding compiled into the cdylib.

fn main() {
    uniffi::uniffi_bindgen_main()
}
