#!/usr/bin/env bash
# Put a pinned mermaid.min.js into DEST (tests/docs/test_mermaid_render.py renders every Mermaid
# diagram of the docs with it in chromium). Debian packages no Mermaid, so it comes from the npm
# registry as the release tarball, checked against the sha512 pinned here (the registry's
# `dist.integrity`). Does nothing when DEST already holds the pinned file.
#
# Usage: scripts/fetch-mermaid.sh DEST     (the Makefile's venv set-up uses .venv/share/mermaid)
# To upgrade: set VERSION, TARBALL_SHA512 from `npm view mermaid@VERSION dist.integrity`
# (base64: `echo ... | cut -d- -f2 | base64 -d | xxd -p -c 64` gives the hex) and MIN_JS_SHA512
# from the extracted file, then run `make test`.
set -euo pipefail

VERSION=12.3.0
TARBALL_SHA512=e35d774dd5de2c0b0caee27bf4ea452f93bcf8b4c55e142a676eb4ac5ded8149a2340b519b852e99ed3823eeb93d137ac99ebd2787fcad56165bccd193ae5463
MIN_JS_SHA512=09a127e8359827530cd261404fd9ef273777cf980fb174ccef0ce9adbf30c7ad795b34e74d2ac6adb2a4654a9ed6cdb89695b6ed7e07948ad216f426ff292a64
URL="https://registry.npmjs.org/mermaid/-/mermaid-${VERSION}.tgz"

if [ "$#" -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
target="$1/mermaid.min.js"

if [ -f "$target" ] && echo "$MIN_JS_SHA512  $target" | sha512sum --check --status; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl --fail --silent --show-error --location --max-time 300 --retry 3 \
    --output "$work/mermaid.tgz" "$URL"
if ! echo "$TARBALL_SHA512  $work/mermaid.tgz" | sha512sum --check --status; then
    echo "$0: $URL does not match the pinned sha512; refusing it" >&2
    exit 1
fi
tar -xzf "$work/mermaid.tgz" -C "$work" package/dist/mermaid.min.js
if ! echo "$MIN_JS_SHA512  $work/package/dist/mermaid.min.js" | sha512sum --check --status; then
    echo "$0: dist/mermaid.min.js of mermaid $VERSION does not match the pinned sha512" >&2
    exit 1
fi
mkdir -p "$1"
# Copied beside the target, then renamed: a half-written file is never taken for a good one.
cp "$work/package/dist/mermaid.min.js" "$target.part"
mv "$target.part" "$target"
echo "mermaid $VERSION -> $target"
