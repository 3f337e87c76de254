#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (its python3 is 3.12 with torch, without PyAV,
# facenet-pytorch or pytest), downloaded here into device_wheels/ (ignored by git) so that the
# device tool can carry them: run `run(carry=["device_wheels"], command="python3
# bench/device_check.py --out $OUT")` afterwards. About 45 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf device_wheels && mkdir device_wheels
common=(--only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --dest device_wheels)
.venv/bin/python -m pip download --no-deps "${common[@]}" "av==18.1.0" "facenet-pytorch==2.6.0"
.venv/bin/python -m pip download "${common[@]}" "pytest>=8"
du -sh device_wheels
