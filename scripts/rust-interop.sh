#!/usr/bin/env bash
# Builds the Rust test peers on the original crate msgtrans =1.0.10 (interop/rust, pinned
# by its Cargo.lock) and runs tests/interop/rust_interop_test.sh against build/bin
# (the release build must exist). The Cargo target folder lives outside the clone, so CI
# reuses it across fresh clones (like ccache); the crate cache is ~/.cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${MSGTRANS_CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/msgtrans/cargo-target}"
# rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
command -v cargo >/dev/null || [ ! -x "$HOME/.cargo/bin/cargo" ] || export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "rust-interop: cargo not found (rustup / Debian cargo >= 1.80 needed)"; exit 1; }
t0=$(date +%s)
cargo build --release --locked --manifest-path interop/rust/Cargo.toml
echo "rust-interop: cargo build took $(( $(date +%s) - t0 ))s (target $CARGO_TARGET_DIR)"
tests/interop/rust_interop_test.sh build/bin "$CARGO_TARGET_DIR/release"
