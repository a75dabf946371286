#!/usr/bin/env bash
# Vendor the charting library of the EventIndex pages (Vega, Vega-Lite, vega-embed) and Swagger UI (the API's docs
# page, /eventindex/docs) into plugins/eventindex_web/static/vendor/: the machines that serve the pages have no
# internet, so no CDN.
# Fetches the pinned packages with `npm pack` (the npm registry only), copies their minified UMD browser builds
# (plain <script> tags; globals vega, vegaLite, vegaEmbed) and licences, and writes vendor/README.md.
# Usage: scripts/vendor-js.sh   (change the versions below, rerun, commit static/vendor/)
set -euo pipefail
cd "$(dirname "$0")/.."

# versions that work together: vega-lite 6.5 needs vega ^6.4 (peerDependencies); vega-embed 7 takes any
VEGA=6.4.0
VEGA_LITE=6.5.0
VEGA_EMBED=7.3.0
SWAGGER_UI=5.35.0  # swagger-ui-dist: the browser build FastAPI's get_swagger_ui_html loads

DEST=plugins/eventindex_web/static/vendor
command -v npm >/dev/null || { echo "vendor-js.sh: npm is needed" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

mkdir -p "$DEST"
for spec in "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED"; do
  name=${spec%@*}
  tgz=$(cd "$TMP" && npm pack --silent "$spec" | tail -n 1)
  mkdir -p "$TMP/$name"
  tar xzf "$TMP/$tgz" -C "$TMP/$name"
  pkg="$TMP/$name/package"
  [ -f "$pkg/build/$name.min.js" ] || { echo "vendor-js.sh: $spec has no build/$name.min.js" >&2; exit 1; }
  # a UMD build assigns a global when loaded with a plain <script> tag
  head -c 600 "$pkg/build/$name.min.js" | grep -q 'typeof define' \
    || { echo "vendor-js.sh: $spec build/$name.min.js is not a UMD build" >&2; exit 1; }
  cp "$pkg/build/$name.min.js" "$DEST/$name.min.js"
  cp "$pkg/LICENSE" "$DEST/LICENSE.$name"
  echo "vendored $spec ($(wc -c <"$DEST/$name.min.js") bytes)"
done

# Swagger UI: the bundle (global SwaggerUIBundle), its stylesheet and icon, as shipped at the package's root
tgz=$(cd "$TMP" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI" | tail -n 1)
mkdir -p "$TMP/swagger"
tar xzf "$TMP/$tgz" -C "$TMP/swagger"
pkg="$TMP/swagger/package"
cp "$pkg/swagger-ui-bundle.js" "$DEST/swagger-ui-bundle.js"
cp "$pkg/swagger-ui.css" "$DEST/swagger-ui.css"
cp "$pkg/favicon-32x32.png" "$DEST/swagger-favicon-32x32.png"
cp "$pkg/LICENSE" "$DEST/LICENSE.swagger-ui"
echo "vendored swagger-ui-dist@$SWAGGER_UI ($(wc -c <"$DEST/swagger-ui-bundle.js") bytes)"

cat >"$DEST/README.md" <<EOF
# Vendored JavaScript (charting of the EventIndex pages, Swagger UI of the API's docs)

The pages load these with plain \`<script>\` tags from \`/eventindex/static/vendor/\` (no CDN: the machines
that serve them have no internet). They are the packages' minified UMD browser builds, unchanged, in this order:
\`vega.min.js\` (global \`vega\`), \`vega-lite.min.js\` (global \`vegaLite\`), \`vega-embed.min.js\` (global \`vegaEmbed\`).

| file | package | version | source | licence |
|---|---|---|---|---|
| \`vega.min.js\` | vega | $VEGA | https://registry.npmjs.org/vega/-/vega-$VEGA.tgz (https://github.com/vega/vega) | BSD-3-Clause, \`LICENSE.vega\` |
| \`vega-lite.min.js\` | vega-lite | $VEGA_LITE | https://registry.npmjs.org/vega-lite/-/vega-lite-$VEGA_LITE.tgz (https://github.com/vega/vega-lite) | BSD-3-Clause, \`LICENSE.vega-lite\` |
| \`vega-embed.min.js\` | vega-embed | $VEGA_EMBED | https://registry.npmjs.org/vega-embed/-/vega-embed-$VEGA_EMBED.tgz (https://github.com/vega/vega-embed) | BSD-3-Clause, \`LICENSE.vega-embed\` |

The API's docs page (\`/eventindex/docs\`, FastAPI's \`get_swagger_ui_html\`) loads \`swagger-ui-bundle.js\` (global
\`SwaggerUIBundle\`), \`swagger-ui.css\` and \`swagger-favicon-32x32.png\` (the package's \`favicon-32x32.png\`).

| file | package | version | source | licence |
|---|---|---|---|---|
| \`swagger-ui-bundle.js\`, \`swagger-ui.css\`, \`swagger-favicon-32x32.png\` | swagger-ui-dist | $SWAGGER_UI | https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-$SWAGGER_UI.tgz (https://github.com/swagger-api/swagger-ui) | Apache-2.0, \`LICENSE.swagger-ui\` |

vega-lite $VEGA_LITE requires vega ^6.4 (its peerDependencies); vega-embed $VEGA_EMBED accepts any vega and vega-lite.

Regenerate (or upgrade: edit the pinned versions first) with \`scripts/vendor-js.sh\`, which fetches the packages
with \`npm pack\`, copies \`build/<name>.min.js\` (Swagger UI: the files above) and \`LICENSE\` of each here and
rewrites this file.
EOF
echo "wrote $DEST/README.md"
