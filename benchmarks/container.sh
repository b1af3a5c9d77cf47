#!/usr/bin/env bash
# Build and run the serving image (deploy/Dockerfile) with podman, on a Debian base
# made here with debootstrap: these machines cannot pull a base image from a registry.
# Not in CI (root, podman, debootstrap, minutes of work). What CI checks instead:
# tests/system/test_ci_container.py (the image's install in a fresh virtualenv).
#
#   sudo benchmarks/container.sh            # → benchmarks/results/container.json
#   KEEP=1 benchmarks/container.sh          # leave the container running afterwards
#   ROOTFS=/path/to/rootfs ...              # reuse a debootstrap folder made before
#
# Steps: debootstrap bookworm (minbase + python3, pip, venv) → `podman import` as
# localhost/mlcycle-base:bookworm (reused when present; REBUILD_BASE=1 remakes it) →
# train the flights example with this checkout's .venv and take the champion's
# bundle → `podman build -f deploy/Dockerfile` (PYTHON_IMAGE = that base, docker
# format so HEALTHCHECK is kept) → run it, wait for its HEALTHCHECK, check it runs
# as non-root without the training libraries, score requests.
#
# Inside a container (as on these machines) podman needs help: rlimits cannot be
# raised without CAP_SYS_RESOURCE (a containers.conf with no default ulimits), and
# crun refuses hybrid cgroups (runc is used when installed). Host networking: the
# service listens on PORT with a prediction token.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
MLCYCLE="$ROOT/.venv/bin/mlcycle"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
BASE="localhost/mlcycle-base:$SUITE"
IMAGE="localhost/mlcycle-serve:bench"
NAME="mlcycle-serve-bench"
PORT="${PORT:-18080}"
TOKEN="bench-$$"
WORK="${WORK:-$(mktemp -d /tmp/mlcycle-container.XXXXXX)}"
OUT="$ROOT/benchmarks/results/container.json"

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'container.sh: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and podman import need it)"
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install podman debootstrap runc)"
done
[ -x "$MLCYCLE" ] || die "no $MLCYCLE: run 'make install' first"

printf '[containers]\ndefault_ulimits = []\n' > "$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
RUNTIME=()
if command -v runc >/dev/null; then RUNTIME=(--runtime runc); fi
podman_() { podman "${RUNTIME[@]}" "$@"; }

cleanup() {
  if [ -z "${KEEP:-}" ]; then podman_ rm --force "$NAME" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- 1. a base image, made locally -------------------------------------------------------
base_seconds=None
if [ -n "${REBUILD_BASE:-}" ] || ! podman image exists "$BASE"; then
  t0=$(now)
  rootfs="${ROOTFS:-$WORK/rootfs}"
  if [ ! -x "$rootfs/usr/bin/python3" ]; then
    say "debootstrap $SUITE into $rootfs"
    debootstrap --variant=minbase \
      --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
      "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || die "debootstrap failed: see $WORK/debootstrap.log"
  fi
  # The base trusts what this machine trusts (a TLS-inspecting proxy's CA, say): the
  # build stage fetches from PyPI. uv reads SSL_CERT_FILE; Debian's pip, the system store.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  say "podman import → $BASE"
  # Debian marks its Python externally managed; the build stage's `pip install uv` is the
  # image's own business.
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' - "$BASE" >/dev/null
  base_seconds=$(since "$t0")
fi

# --- 2. a bundle, trained by this checkout -----------------------------------------------
say "training the flights example (5% sample) for a bundle"
mkdir -p "$WORK/context"
(cd "$WORK" && OMP_NUM_THREADS=1 "$MLCYCLE" init flights --example flights --sample 0.05 >/dev/null \
  && cd flights && OMP_NUM_THREADS=1 "$MLCYCLE" run --json > run.json)
(cd "$WORK/flights" && "$PY" - "$WORK/context/bundle" <<'EOF'
import shutil, sys
from pathlib import Path
import mlcycle
project = mlcycle.Project.load("mlcycle.yaml")
resolved, folder = project.bundle(f"{project.name}@champion")
shutil.copytree(folder, Path(sys.argv[1]) / resolved.bundle_id)
print(resolved.bundle_id)
EOF
) > "$WORK/bundle_id"
# The context deploy/Dockerfile.dockerignore allows, assembled (podman 4.3 may not read
# a Dockerfile-specific ignore file).
cp "$ROOT/pyproject.toml" "$ROOT/uv.lock" "$ROOT/README.md" "$WORK/context/"
(cd "$ROOT" && tar -c --exclude=__pycache__ src) | tar -C "$WORK/context" -x

# --- 3. build ------------------------------------------------------------------------------
say "podman build -f deploy/Dockerfile (base $BASE)"
t0=$(now)
podman_ build --network host --format docker --build-arg "PYTHON_IMAGE=$BASE" \
  -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$WORK/context" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; die "podman build failed: see $WORK/build.log"; }
build_seconds=$(since "$t0")
image_bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")

# --- 4. run until healthy ------------------------------------------------------------------
say "podman run, waiting for the HEALTHCHECK"
podman_ rm --force "$NAME" >/dev/null 2>&1 || true
t0=$(now)
podman_ run --detach --name "$NAME" --network host -e PORT="$PORT" \
  -e MLCYCLE_PREDICT_TOKEN="$TOKEN" -e MLCYCLE_ADMIN_TOKEN="$TOKEN" "$IMAGE" >/dev/null
healthy_seconds=None
for _ in $(seq 240); do
  if podman_ healthcheck run "$NAME" >/dev/null 2>&1; then healthy_seconds=$(since "$t0"); break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
  sleep 0.5
done
if [ "$healthy_seconds" = None ]; then
  podman_ logs "$NAME" >&2 || true
  die "the container never became healthy"
fi

# --- 5. what the image holds, and a few predictions -----------------------------------------
say "checks and requests"
uid=$(podman_ exec "$NAME" id -u)
training_libs=$(podman_ exec "$NAME" python -c \
  "import importlib.util as u, json; print(json.dumps([n for n in ('optuna', 'lightgbm', 'duckdb', 'skl2onnx', 'onnx', 'ray', 'pytest') if u.find_spec(n)]))")
"$PY" - "$PORT" "$TOKEN" "$OUT" <<EOF
import json, statistics, sys, time, urllib.request
port, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
record = {"dep_delay": 42, "hour": 17, "day_of_week": 6, "carrier": "UA", "origin": "EWR",
          "dest": "ORD", "distance": 719}
def call(path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json",
                                          "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())
answer = call("/predict", [record])
times = []
for _ in range(200):
    t = time.perf_counter(); call("/predict", [record]); times.append(time.perf_counter() - t)
result = {
    "what": "deploy/Dockerfile built with podman on a debootstrap $SUITE base; run until healthy",
    "base_image_seconds": $base_seconds,
    "build_seconds": $build_seconds,
    "image_mb": round($image_bytes / 1e6, 1),
    "start_to_healthy_seconds": $healthy_seconds,
    "uid": int("$uid"),
    "training_libraries_importable": json.loads('$training_libs'),
    "engine": call("/admin/traffic")["engine"],
    "prediction": answer["predictions"],
    "single_row_request_ms": {"p50": round(statistics.median(times) * 1e3, 2),
                              "p90": round(sorted(times)[int(len(times) * 0.9)] * 1e3, 2)},
    "note": "one client, sequential requests over loopback (latency, not throughput)",
}
import pathlib
pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(out).write_text(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
EOF
