#!/usr/bin/env bash
# Writes .dvc/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed
# inlined (the versions DVC's own page loads from a CDN), so `dvc plots show/diff` render
# without network. The page has no {scripts} placeholder, so DVC adds no CDN tags.
# Run from the repository root; needs npm (packages from the npm registry).
set -euo pipefail
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null \
  && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <meta charset="utf-8">'
  echo '    <title>DVC Plot</title>'
  for js in vega-5.20.2/package/build/vega.min.js vega-lite-5.2.0/package/build/vega-lite.min.js \
            vega-embed-6.18.2/package/build/vega-embed.min.js; do
    echo "    <script>/* ${js%%/*} (npm) */"
    cat "$tmp/$js"
    echo '    </script>'
  done
  echo '    <style>table { border-spacing: 15px; }</style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} > .dvc/plots/offline.html
rm -rf "$tmp"
echo "wrote .dvc/plots/offline.html ($(wc -c < .dvc/plots/offline.html) bytes)"
