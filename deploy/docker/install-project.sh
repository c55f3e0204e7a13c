#!/bin/sh
# Install the project as users get it: build its wheel from SRC, install that wheel (never the
# source tree, never editable), so that `runtime`, `training`, `export` and their package data
# (sample photos, shipped weights) are imported from site-packages. Both images run it;
# tests/test_deploy.py runs the same script with `--no-deps --target DIR` and imports every
# python model, and runs `python -m export build-engines --onnx-only`, from outside the checkout.
#   usage: install-project.sh SRC [pip install options]
set -eu
src=${1:?usage: install-project.sh SRC [pip install options]}
shift
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
python3 -m pip wheel --quiet --no-cache-dir --no-deps --wheel-dir "$wheels" "$src"
python3 -m pip install --no-cache-dir "$@" "$wheels"/*.whl
