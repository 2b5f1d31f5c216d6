#!/usr/bin/env bash
# Issue 12's GPU check, one prepared script for the lent H200 (docs/gpu.md has the calls in order):
#   1. installs onnxruntime-gpu (from the xz parts earlier calls left in /tmp/ortx, plus any
#      carried in .gpu/) and the wheels of .whl/ (bench/gpu_wheels.sh, run here) into /tmp;
#   2. runs the test suite's `gpu` marker (CUDA session + IO binding, the measured device choice,
#      the fp16 variant, /config and /stats on CUDA);
#   3. builds the bench models there: a synthetic catalogue (`shopserve export synthetic`), the
#      MiniLM-sized search encoder with its fp16 variant and the recommend encoder
#      (bench/gpu_shop.py); the MLP is bench/gpu_engine.py's own;
#   4. the engine path in-process against raw IO binding on the MLP at batch 4096 (target >= 50%);
#   5. /v1/search- and /v1/recommend-shaped requests over HTTP with 8 workers (target >= 20,000
#      requests/s each at p99 <= 10 ms), wrk or aiohttp processes as the load generator;
# within GPU_CHECK_BUDGET_S (480 s), each step under its own time limit. Results under $OUT
# (at most 8 files come back): gpu_check.log, env.txt, pytest.txt, shop.json, engine.json,
# http.json, server.log, summary.md.
#
# GPU_CHECK_DRY_RUN=1 runs it here, on the CPU, in under 3 minutes: tiny sizes, nothing installed
# (the project's .venv), the engine and HTTP steps on the CPU provider, `gpu` tests collected and
# skipped. It proves the steps, not the figures.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO_ROOT=$PWD
DRY=${GPU_CHECK_DRY_RUN:-0}
OUT=${OUT:-$(mktemp -d /tmp/gpu-check-out.XXXXXX)}
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
T0=$SECONDS
STATUS=0

if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-$REPO_ROOT/.venv/bin/python}
  SITE=$WORK/site
  ITEMS=2000 USERS=200 DIM=32 ENCODER=(--layers 1 --hidden 32 --heads 2)
  ENGINE=(--device cpu --batch 256 --seconds 1)
  HTTP=(--workers 2 --concurrency 8 --warm-s 1 --measure-s 2 --device cpu)
else
  PY=${PYTHON:-python3}
  SITE=/tmp/site
  ITEMS=100000 USERS=10000 DIM=384 ENCODER=(--layers 6 --hidden 384 --heads 12)
  ENGINE=(--device cuda --batch 4096 --seconds 5)
  HTTP=(--workers 8 --concurrency "64,128,256" --warm-s 2 --measure-s 8 --device auto)
fi

step() { # NAME LIMIT_S COMMAND...: run under the smaller of LIMIT_S and what is left of the budget
  local name=$1 limit=$2 left rc start
  shift 2
  left=$((BUDGET_S - (SECONDS - T0)))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "== $name: SKIPPED, the ${BUDGET_S} s budget is spent"
    STATUS=1
    return 1
  fi
  echo "== $name (limit ${limit} s; $((SECONDS - T0)) s so far)"
  start=$SECONDS
  timeout --kill-after=15 "$limit" "$@"
  rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  ((rc != 0)) && STATUS=1
  return $rc
}

install_device_packages() { # onnxruntime-gpu, the wheels, wrk; nothing here in a dry run
  mkdir -p /tmp/ortx /tmp/whl
  cp .gpu/ort.part.* /tmp/ortx/ 2>/dev/null
  if [ ! -d /tmp/ortsite/onnxruntime ]; then
    if ! ls /tmp/ortx/ort.part.* >/dev/null 2>&1; then
      echo "no onnxruntime-gpu parts in /tmp/ortx or .gpu/: carry them first (docs/gpu.md)"
      return 1
    fi
    mkdir -p /tmp/ortsite && cat /tmp/ortx/ort.part.* | xz -d -T0 | tar x -C /tmp/ortsite || return 1
  fi
  [ -d .whl ] && cp -r .whl/. /tmp/whl/
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" /tmp/whl/*.whl || return 1
  if ! command -v wrk >/dev/null && ls /tmp/whl/deb/*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/wrkroot
    for f in /tmp/whl/deb/*.deb; do dpkg -x "$f" /tmp/wrkroot; done
    printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/wrkroot/usr/lib/x86_64-linux-gnu exec /tmp/wrkroot/usr/bin/wrk "$@"\n' \
      >/tmp/wrkroot/wrk && chmod +x /tmp/wrkroot/wrk
  fi
}

entry_points() { # `shopserve export|bench` find their commands through entry points: register them
  "$PY" - "$SITE" <<'EOF'
import pathlib, sys, tomllib
site = pathlib.Path(sys.argv[1]) / "shopserve-0.0.0+gpucheck.dist-info"
site.mkdir(parents=True, exist_ok=True)
eps = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]["entry-points"]
(site / "METADATA").write_text("Metadata-Version: 2.1\nName: shopserve\nVersion: 0.0.0+gpucheck\n")
group = "shopserve.commands"
lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in eps[group].items()]
(site / "entry_points.txt").write_text("\n".join(lines) + "\n")
EOF
}

echo "== gpu_check: dry run $DRY, out $OUT, work $WORK, budget $BUDGET_S s, $(date -u +%FT%TZ)"
mkdir -p "$SITE"
if [ "$DRY" != 1 ]; then
  step "install onnxruntime-gpu and wheels" 90 bash -c "$(declare -f install_device_packages); PY=$PY SITE=$SITE install_device_packages" \
    || { echo "install failed: nothing else can run"; exit 1; }
  export PATH=/tmp/wrkroot:$PATH
fi
entry_points
export PYTHONPATH=$SITE:/tmp/ortsite:$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
SHOPSERVE=("$PY" -m server)

{
  echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
  "$PY" -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers(), o.__file__)'
  "$PY" -c 'import litestar, msgspec, numpy, numba; print("litestar", litestar.__version__ if hasattr(litestar, "__version__") else "?", "msgspec", msgspec.__version__, "numpy", numpy.__version__, "numba", numba.__version__)'
  echo "wrk: $(command -v wrk || echo none)"
  echo "cores: $(nproc); memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

GPU_TESTS=$(grep -rl --include='*.py' "pytest.mark.gpu" tests | sort | tr '\n' ' ')
step "pytest -m gpu" 150 bash -c "'$PY' -m pytest -m gpu -q -rs -s -p no:cacheprovider $GPU_TESTS \
  2>&1 | tee '$OUT/pytest.txt'; exit \${PIPESTATUS[0]}"

step "synthetic catalogue" 60 "${SHOPSERVE[@]}" export synthetic --items "$ITEMS" --users "$USERS" \
  --dim "$DIM" --out "$WORK/synth.npz"
step "bench models (search and recommend encoders, fp16 variant)" 180 "$PY" -m bench.gpu_shop \
  --synthetic "$WORK/synth.npz" --out "$WORK/repo" "${ENCODER[@]}" --fp16 --json "$OUT/shop.json"

step "engine in-process vs raw IO binding (MLP)" 100 "$PY" -m bench.gpu_engine "${ENGINE[@]}" \
  --json "$OUT/engine.json"

step "HTTP /v1/search and /v1/recommend" 260 "$PY" -m bench.gpu_http --repository "$WORK/repo" \
  "${HTTP[@]}" --json "$OUT/http.json" --log "$WORK/server.log" --pid-file "$WORK/server.pid"
if [ -s "$WORK/server.pid" ] && kill -0 -- "-$(cat "$WORK/server.pid")" 2>/dev/null; then
  echo "stopping the server left behind (process group $(cat "$WORK/server.pid"))"
  kill -TERM -- "-$(cat "$WORK/server.pid")" 2>/dev/null
  sleep 5
  kill -KILL -- "-$(cat "$WORK/server.pid")" 2>/dev/null
fi
[ -f "$WORK/server.log" ] && grep -E "WARNING|ERROR|Traceback|shopserve.runtime|supervisor" \
  "$WORK/server.log" | tail -n 400 >"$OUT/server.log"

"$PY" - "$OUT" "$DRY" <<'EOF' | tee "$OUT/summary.md"
import json, pathlib, sys
out, dry = pathlib.Path(sys.argv[1]), sys.argv[2] == "1"
print("# GPU check summary" + (" (DRY RUN on the CPU: no GPU figure)" if dry else ""))
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
shop, engine, http = load("shop.json"), load("engine.json"), load("http.json")
if shop:
    print(f"\nbench models: {json.dumps(shop)}")
if engine:
    from bench.gpu_engine import format_table as engine_table
    print("\n" + engine_table(engine))
else:
    print("\nengine: no result")
if http:
    from bench.gpu_http import format_table as http_table
    print("\n" + http_table(http))
else:
    print("\nHTTP: no result")
EOF
echo "== gpu_check: done in $((SECONDS - T0)) s, status $STATUS; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $STATUS
