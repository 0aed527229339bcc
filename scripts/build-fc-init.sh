#!/usr/bin/env bash
# Builds fc-init as a static x86_64 release binary, checks that it has no ELF interpreter
# (no PT_INTERP program header, so it needs no dynamic loader in the guest), and prints
# its path on standard output.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="x86_64-unknown-linux-gnu"
cd "$repo_root"

# With --target, RUSTFLAGS reach only the target artifacts, not build scripts or proc
# macros, so the host builds in target/release stay untouched.
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p fc-init --target "$target" >&2

target_dir="$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
binary="${target_dir:-$repo_root/target}/$target/release/fc-init"

if [[ ! -x "$binary" ]]; then
    echo "build-fc-init: $binary was not built" >&2
    exit 1
fi

# readelf lists program headers; an INTERP header names the dynamic loader.
if command -v readelf >/dev/null 2>&1; then
    if readelf --program-headers --wide "$binary" | grep -q '\bINTERP\b'; then
        echo "build-fc-init: $binary has an ELF interpreter, it is not static" >&2
        exit 1
    fi
elif command -v file >/dev/null 2>&1; then
    if ! file --brief "$binary" | grep -q 'statically linked\|static-pie linked'; then
        echo "build-fc-init: $binary is not statically linked: $(file --brief "$binary")" >&2
        exit 1
    fi
else
    echo "build-fc-init: neither readelf (binutils) nor file is installed to check $binary" >&2
    exit 1
fi

echo "$binary"
