#!/usr/bin/env bash
# `make image-test`: build the CPU image with podman (vfs storage, chroot isolation) from a Debian
# base made by mmdebstrap (no public image registry needed), run `ferbatch demo` inside it, and
# read the Parquet it wrote from the host with ferbatch.load.
#
# Needs: podman and mmdebstrap (Debian: apt-get install podman mmdebstrap), root or subuids.
# Environment: PY (host Python with ferbatch; default .venv/bin/python), DEBIAN_SUITE (bookworm:
# Python 3.11, as the wheels), FERBATCH_IMAGE_WORK (scratch folder), TORCH_INDEX_URL (default:
# this machine's wheel index on disk, mounted into the build), IMAGE_TAG, IMAGE_RUNNER (podman or
# buildah; default: podman where it can run a container, else buildah).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SUITE=${DEBIAN_SUITE:-bookworm}
WORK=${FERBATCH_IMAGE_WORK:-/tmp/ferbatch-image-test}
BASE=localhost/ferbatch-base:$SUITE
TAG=${IMAGE_TAG:-localhost/ferbatch:cpu-test}
PODMAN=(podman --storage-driver vfs)

for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "image-test: $tool not found (apt-get install podman mmdebstrap)" >&2; exit 2; }
done
mkdir -p "$WORK"
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

if ! "${PODMAN[@]}" image exists "$BASE"; then
    step "base image $BASE from Debian $SUITE packages (mmdebstrap)"
    mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        "$SUITE" "$WORK/base.tar"
    "${PODMAN[@]}" import "$WORK/base.tar" "$BASE"
    rm -f "$WORK/base.tar"
fi

# pip's own default index (PyPI) for what is not on this disk; torch/torchvision from the disk.
PYPI=$("$PY" -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
TORCH_INDEX=${TORCH_INDEX_URL:-file:///opt/pypi-more/simple}
MOUNTS=()
for dir in /opt/pypi-more /opt/pypi /opt/wheels; do
    [ -d "$dir" ] && MOUNTS+=(-v "$dir:$dir:ro")
done
# the CA bundle this host's pip trusts (a TLS-inspecting proxy's CA may be in it)
CERT_ARGS=()
HOST_CERT=${PIP_CERT:-$("$PY" -m pip config get global.cert 2>/dev/null || true)}
[ -z "$HOST_CERT" ] && HOST_CERT=/etc/ssl/certs/ca-certificates.crt
if [ -n "$HOST_CERT" ] && [ -f "$HOST_CERT" ]; then
    MOUNTS+=(-v "$HOST_CERT:/run/host-ca.crt:ro")
    CERT_ARGS=(--build-arg PIP_CERT=/run/host-ca.crt)
fi

step "build $TAG (docker/Dockerfile.cpu, BASE_IMAGE=$BASE, TORCH_INDEX_URL=$TORCH_INDEX)"
"${PODMAN[@]}" build --isolation chroot --network host "${MOUNTS[@]}" \
    -f "$ROOT/docker/Dockerfile.cpu" \
    --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_INDEX_URL="$TORCH_INDEX" \
    --build-arg PIP_EXTRA_INDEX_URL="$PYPI" "${CERT_ARGS[@]}" \
    -t "$TAG" "$ROOT"

step "ferbatch demo inside the image"
OUT="$WORK/out"
rm -rf "$OUT" && mkdir -p "$OUT" && chmod 0777 "$OUT"
# `podman run` needs an OCI runtime that may set resource limits; in a sandbox without
# CAP_SYS_RESOURCE crun fails ("setrlimit RLIMIT_NOFILE: Operation not permitted"). Probe with
# the small base image, and run the demo the way the build ran its steps (buildah, chroot
# isolation) where podman cannot.
RUNNER=${IMAGE_RUNNER:-}
if [ -z "$RUNNER" ]; then
    if "${PODMAN[@]}" run --rm --network none --cgroups disabled "$BASE" true 2>"$WORK/probe.err"; then
        RUNNER=podman
    else
        RUNNER=buildah
        echo "podman run is not possible here ($(tail -1 "$WORK/probe.err")): using buildah run --isolation chroot"
    fi
fi
DEMO=(ferbatch demo --out /data/out/demo --quiet)
if [ "$RUNNER" = podman ]; then
    "${PODMAN[@]}" run --rm --network none --cgroups disabled -v "$OUT:/data/out" "$TAG" "${DEMO[@]}"
else
    command -v buildah >/dev/null || { echo "image-test: podman cannot run a container here and buildah is not installed (apt-get install buildah)" >&2; exit 2; }
    BUILDAH=(buildah --storage-driver vfs)
    CTR=$("${BUILDAH[@]}" from --pull-never "$TAG")
    trap '"${BUILDAH[@]}" rm "$CTR" >/dev/null' EXIT
    # chroot isolation shares the host's network namespace; the demo uses none
    "${BUILDAH[@]}" run --isolation chroot -v "$OUT:/data/out" "$CTR" -- "${DEMO[@]}"
fi

step "read its Parquet on the host"
"$PY" - "$OUT/demo/results" <<'PYEOF'
import sys

import ferbatch

res = ferbatch.load(sys.argv[1])
videos = res.videos
print(videos[["video_id", "status", "frames_analyzed", "faces_detected"]].to_string(index=False))
ok = videos[videos.status == "ok"]
assert len(ok) >= 2 and len(res.faces) > 0, "the demo inside the image found no faces"
print(f"image-test: ok ({len(ok)} videos ok, {len(res.faces)} face rows read on the host)")
PYEOF
