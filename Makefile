# ferbatch — set-up, demo and tests. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.ferbatch-setup
# the pins, defined once (setup, fer-venv; the Dockerfiles repeat them: tests/test_docker_lint.py)
TORCH_PINS  := "torch==2.14.1" "torchvision==0.29.1"
FACENET_PIN := "facenet-pytorch==2.6.0"

.PHONY: setup demo test test-fast lint bench bench-all bench-profile bench-gpu fer-venv browser image-test clean

setup: $(STAMP)

# torch/torchvision are pinned (they install from this machine's disk); facenet-pytorch's
# metadata pins torch<2.3, numpy<2, Pillow<10.3, but it runs on current versions: --no-deps.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e ".[dev]"
	$(PIP) install --quiet --no-deps $(FACENET_PIN)
	$(PY) -c "import torch, torchvision, av, facenet_pytorch, ray, pyarrow, cv2; print('ferbatch setup ok: torch', torch.__version__, 'av', av.__version__)"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ferbatch demo --out demo_out

# Debian's Chromium for the HTML report's browser test (the test skips, with a reason, if absent).
# Installs a system package, so `make test` does not call it: CI (.ci/run) does, before the tests.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"

lint: setup
	$(VENV)/bin/ruff check ferbatch tests bench examples jobs

test: setup lint
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

bench: setup
	$(PY) bench/bench_pipeline.py

# The `fer` package (the speed bar of `make bench-all`) in a venv of its own: fer 25.10.3 needs
# TensorFlow and facenet-pytorch (--no-deps, as above); setuptools<80 for its pkg_resources
# import; triton removed: its C extension segfaults when TensorFlow was imported first.
fer-venv:
	test -x .fer-venv/bin/python || $(PYTHON) -m venv .fer-venv
	.fer-venv/bin/pip install --quiet $(TORCH_PINS)
	.fer-venv/bin/pip install --quiet tensorflow-cpu opencv-contrib-python matplotlib pandas requests \
		"tqdm>=4.62.1" "moviepy>=1.0.3,<2.0" "ffmpeg-python>=0.2.0" Pillow "setuptools<80"
	.fer-venv/bin/pip install --quiet --no-deps "fer==25.10.3" $(FACENET_PIN)
	.fer-venv/bin/pip uninstall --yes --quiet triton || true
	.fer-venv/bin/python -c "from fer.fer import FER; FER(mtcnn=True); print('fer venv ok')"

# Issue 14's figures in one command (vs fer, detection interval, --fps 5 vs decode, peak RSS per
# resolution and duration, cost vs length and number of videos); long: it generates and analyses
# about an hour of video (`--quick`, `--only SECTIONS` for less).
bench-all: setup
	$(PY) bench/bench_issue14.py --json bench/issue14_results.json | tee bench/issue14_results.txt

# Where the time of a whole `ferbatch run` goes (py-spy, sorted into stages)
bench-profile: setup
	$(PY) bench/bench_profile.py --json bench/profile_results.json | tee bench/profile_results.txt

# GPU throughput (needs CUDA): 360p/720p/1080p, 1-8 workers per GPU -> bench/gpu_results.json
bench-gpu: setup
	$(PY) bench/bench_gpu.py --json bench/gpu_results.json

# The slow image test (FERBATCH_IMAGE_TEST=1), output shown as it runs: docker/image_test.sh builds
# the CPU image with podman (vfs, chroot) from a Debian base (mmdebstrap), runs `ferbatch demo` in
# it and reads its Parquet here. Needs podman + mmdebstrap (apt-get install podman mmdebstrap);
# not part of `make test` (about 45 minutes on 2 cores).
image-test: setup
	FERBATCH_IMAGE_TEST=1 $(VENV)/bin/pytest -q -s tests/test_image_build.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
