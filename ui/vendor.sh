#!/bin/sh
# Reproduces ui/assets/vendor/ from pinned npm packages: the browser dashboard needs no build
# step, only these files, byte for byte as published (checked against the sha256 sums in
# ui/assets/vendor/README.md). Run from anywhere: sh ui/vendor.sh [--check]
set -eu
PREACT=11.2.0
HTM=3.1.1
UPLOT=1.6.32

here=$(cd "$(dirname "$0")" && pwd)
out="$here/assets/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cd "$tmp"
npm pack --silent "preact@$PREACT" "htm@$HTM" "uplot@$UPLOT" >/dev/null
for p in "preact-$PREACT" "htm-$HTM" "uplot-$UPLOT"; do
	mkdir "$p" && tar xzf "$p.tgz" -C "$p"
done

# source-in-package destination
files="preact-$PREACT/package/dist/preact.mjs preact.mjs
preact-$PREACT/package/hooks/dist/hooks.mjs preact-hooks.mjs
preact-$PREACT/package/LICENSE LICENSE.preact
htm-$HTM/package/dist/htm.mjs htm.mjs
htm-$HTM/package/LICENSE LICENSE.htm
uplot-$UPLOT/package/dist/uPlot.esm.js uplot.mjs
uplot-$UPLOT/package/dist/uPlot.min.css uplot.css
uplot-$UPLOT/package/LICENSE LICENSE.uplot"

# The one change made to a published file: the hooks import preact by its bare name, which a
# browser resolves only through an import map, and the dashboard's Content-Security-Policy
# (script-src 'self') forbids the inline script an import map is. Point it at the file.
sed -i 's|from"preact"|from"./preact.mjs"|' "preact-$PREACT/package/hooks/dist/hooks.mjs"
grep -q 'from"./preact.mjs"' "preact-$PREACT/package/hooks/dist/hooks.mjs" || { echo "preact hooks: import not patched" >&2; exit 1; }

if [ "${1:-}" = "--check" ]; then
	echo "$files" | while read -r src dst; do
		if ! cmp -s "$src" "$out/$dst"; then echo "ui/assets/vendor/$dst differs from npm" >&2; exit 1; fi
	done
	echo "ui/assets/vendor matches preact@$PREACT htm@$HTM uplot@$UPLOT"
	exit 0
fi

mkdir -p "$out"
echo "$files" | while read -r src dst; do cp "$src" "$out/$dst"; done

{
	echo "# Vendored front-end libraries"
	echo
	echo "Copied from the npm registry by \`sh ui/vendor.sh\` (which also checks them:"
	echo "\`sh ui/vendor.sh --check\`). Nothing is compiled: the pages are plain ES modules. One"
	echo "change: \`preact-hooks.mjs\` imports \`./preact.mjs\` instead of the bare name \`preact\`"
	echo "(an import map would be an inline script, which the dashboard's CSP forbids)."
	echo "To upgrade, change the versions at the top of \`ui/vendor.sh\`, run it and commit."
	echo
	echo "| file | package | license |"
	echo "|---|---|---|"
	echo "| preact.mjs, preact-hooks.mjs | preact@$PREACT (dist/preact.mjs, hooks/dist/hooks.mjs) | MIT (LICENSE.preact) |"
	echo "| htm.mjs | htm@$HTM (dist/htm.mjs) | Apache-2.0 (LICENSE.htm) |"
	echo "| uplot.mjs, uplot.css | uplot@$UPLOT (dist/uPlot.esm.js, dist/uPlot.min.css) | MIT (LICENSE.uplot) |"
	echo
	echo "sha256:"
	echo
	echo '```'
	(cd "$out" && sha256sum preact.mjs preact-hooks.mjs htm.mjs uplot.mjs uplot.css)
	echo '```'
} >"$out/README.md"
echo "vendored preact@$PREACT htm@$HTM uplot@$UPLOT into $out"
