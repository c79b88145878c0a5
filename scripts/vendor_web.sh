#!/usr/bin/env bash
# Vendor the page's two third-party libraries into the package, with their licences:
# marked (Markdown to HTML) and DOMPurify (the HTML sanitiser every rendered answer goes
# through). Pinned by version and by the registry's sha512 integrity, fetched with
# `npm pack`, so users and CI need no npm, no build step and no CDN.
# Run it again after changing a pin below; commit what it writes.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=pichat_trio/web/static/vendor
# name version integrity files-to-keep (path in the package -> file in $dest)
packages=(
    "marked 18.2.1 sha512-ii4bxCTCqqwpT86XZWgJNs+ZnAIZksmLGYMViWA7PDIXYIeNo1x6cDdX3JOip9NM/cI6p8z57FxliACboTruMA== lib/marked.esm.js:marked.esm.js LICENSE:LICENSE.marked"
    "dompurify 3.5.0 sha512-LYC0ZkE8P1V42JsRYTwMdme/2ET8SpOc5AA2eOFjP/IadvRd2fwiT4TVz5vkfy0XUx12aS2UaRkTnfVPNOv9vw== dist/purify.es.mjs:purify.es.mjs LICENSE:LICENSE.dompurify LICENSE-MPL:LICENSE-MPL.dompurify"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
for entry in "${packages[@]}"; do
    read -r name version integrity files <<<"$entry"
    tarball=$(cd "$work" && npm pack --silent "$name@$version")
    actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
    if [[ "$actual" != "$integrity" ]]; then
        echo "vendor_web: $name@$version: integrity $actual, expected $integrity" >&2
        exit 1
    fi
    mkdir -p "$work/$name"
    tar -xzf "$work/$tarball" -C "$work/$name"
    for pair in $files; do
        cp "$work/$name/package/${pair%%:*}" "$dest/${pair#*:}"
    done
    echo "vendor_web: $name@$version -> $dest"
done
{
    echo "Vendored by scripts/vendor_web.sh; do not edit."
    for entry in "${packages[@]}"; do
        read -r name version integrity _ <<<"$entry"
        echo "$name $version $integrity"
    done
} >"$dest/VERSIONS"
