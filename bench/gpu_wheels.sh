#!/usr/bin/env bash
# Runs HERE (a machine with the package registries), before a session's device calls: fetches what
# bench/gpu_check.sh needs on the lent GPU machine (Python 3.12, no registry) and that its image
# lacks (../shared/gpu/README.md, the device KINDS.md package list), and checks what each call
# will carry against the 64 MiB limit. See docs/gpu.md for the calls in order.
#   .whl/*.whl   cp312 manylinux wheels, the versions of requirements.lock, --no-deps (the rest is
#                on the device: numpy, numba, tokenizers, onnx, torch, aiohttp, pytest, anyio ...)
#   .whl/deb/    Debian's wrk and its LuaJIT library (bench/gpu_http.py falls back to aiohttp
#                processes where that wrk cannot run)
#   .gpu/        onnxruntime-gpu in xz parts of 45 MB (../shared/gpu/pack-onnxruntime-gpu.sh),
#                made when missing
# Both folders are git-ignored (.gitignore), so they travel only when a call names them in carry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT=$((64 * 1024 * 1024))
# the serving packages the device image lacks, or has at versions the server was not tested with
PACKAGES=(litestar litestar-htmx msgspec multipart polyfactory faker rich-click sniffio uvicorn
  httptools prometheus-client grpcio protobuf typing-extensions tomli-w)

lock_version() { # NAME -> the version pinned in requirements.lock (empty when not pinned)
  awk -v n="$(echo "$1" | tr 'A-Z_' 'a-z-')" \
    'index(tolower($1), n "==") == 1 { split($1, a, "=="); print a[2]; exit }' requirements.lock
}

rm -rf .whl && mkdir -p .whl/deb
specs=()
for p in "${PACKAGES[@]}"; do
  v=$(lock_version "$p")
  specs+=("$p${v:+==$v}")
done
echo "wheels for cp312: ${specs[*]}"
log=$(mktemp)
if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${specs[@]}" 2>"$log"; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
n_names=$(ls .whl/*.whl | sed 's#.*/##; s#-.*##' | tr 'A-Z_' 'a-z-' | sort | uniq -d | wc -l)
if [ "$n_names" != 0 ]; then echo "two versions of one package in .whl: pip there stops" >&2; exit 1; fi

if command -v apt-get >/dev/null; then
  (cd .whl/deb && apt-get download wrk libluajit-5.1-2 >/dev/null 2>&1) \
    || echo "no wrk .deb (apt-get update first?): gpu_http.py will use aiohttp there" >&2
fi

if ! ls .gpu/ort.part.* >/dev/null 2>&1; then
  bash ../shared/gpu/pack-onnxruntime-gpu.sh .gpu
fi

# what travels in every call: tracked files and untracked ones git does not ignore
# (a tracked file deleted in the work tree has no size: stat's failure is not ours)
tree=$(git ls-files -z -c -o --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
  | awk '{s += $1} END {print s + 0}') || true
whl=$(du -cb .whl | tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "working tree: $(mib "$tree"); .whl: $(mib "$whl") ($(ls .whl/*.whl | wc -l) wheels, $(ls .whl/deb | wc -l) debs)"
parts=(.gpu/ort.part.*)
last=${parts[-1]}
status=0
for part in "${parts[@]}"; do
  size=$(stat -c %s "$part")
  if [ "$part" = "$last" ]; then
    total=$((tree + size + whl))
    what="$part + .whl (and runs bench/gpu_check.sh)"
  else
    total=$((tree + size))
    what="$part"
  fi
  verdict=ok
  if [ "$total" -gt "$LIMIT" ]; then verdict="OVER 64 MiB"; status=1; fi
  echo "call carrying $what: $(mib "$total") $verdict"
done
if [ "$status" != 0 ]; then
  echo "over the limit: carry .whl in a call of its own (command: mkdir -p /tmp/whl && cp -r .whl/. /tmp/whl/)," >&2
  echo "then the last part alone; gpu_check.sh installs from /tmp/whl too (docs/gpu.md)" >&2
fi
exit "$status"
