#!/usr/bin/env bash
# Runs cloze-kernels' tests on aarch64 (NEON paths) under qemu user-mode emulation.
#
# Installs the Rust target, the cross linker and qemu if needed. If any of them cannot be
# installed, prints one line "NEON was not verified: <reason>" and exits 0 (the x86 paths are
# still tested by the main run). If the tests run and fail, exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "NEON was not verified: $*"
    exit 0
}

TARGET=aarch64-unknown-linux-gnu

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    rustup target add "$TARGET" >/tmp/neon-rustup.log 2>&1 ||
        skip "rustup target add $TARGET failed ($(tail -n 1 /tmp/neon-rustup.log))"
fi

if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null ||
    [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || skip "not root and no sudo to apt-get install the cross tools"
        SUDO="sudo -n"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update >/tmp/neon-apt.log 2>&1 ||
        skip "apt-get update failed ($(tail -n 1 /tmp/neon-apt.log))"
    $SUDO apt-get install -y qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        >>/tmp/neon-apt.log 2>&1 ||
        skip "apt-get install of qemu-user-static/gcc-aarch64-linux-gnu failed ($(tail -n 1 /tmp/neon-apt.log))"
fi

command -v qemu-aarch64-static >/dev/null || skip "qemu-aarch64-static is not on PATH after install"

echo "neon: cargo test --release --target $TARGET -p cloze-kernels (under qemu)"
exec cargo test --release --target "$TARGET" -p cloze-kernels
