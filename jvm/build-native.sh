#!/usr/bin/env bash
# Builds the sia-uniffi cdylib with cargo and generates its Kotlin bindings with the
# crate's own uniffi-bindgen (library mode), for jvm/pom.xml's generate-sources phase.
#   build-native.sh OUT_DIR
# Writes OUT_DIR/generated-sources/uniffi/org/sia/sia_uniffi.kt and links the library
# into OUT_DIR/native/ (the folder surefire passes to JNA as jna.library.path).
# Reuses the workspace's debug build (CARGO_TARGET_DIR is honoured); set
# SIA_CARGO_PROFILE=release for a release library (the benchmark).
set -euo pipefail
out="$(realpath -m "$1")"
cd "$(dirname "$0")/.."
profile="${SIA_CARGO_PROFILE:-debug}"
flags=()
[ "$profile" = release ] && flags=(--release)
cargo build -q -p sia-uniffi "${flags[@]}"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
lib="$target_dir/$profile/libsia_uniffi.so"
mkdir -p "$out/native" "$out/generated-sources/uniffi"
"$target_dir/$profile/uniffi-bindgen" generate --library "$lib" --language kotlin \
  --no-format --out-dir "$out/generated-sources/uniffi"
ln -sf "$lib" "$out/native/libsia_uniffi.so"
