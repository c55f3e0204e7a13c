#!/bin/sh
# Install the project into the Python that runs Triton's python-backend stub: non-editable, so
# `runtime` (and its package data: the sample photos) is imported from site-packages, never
# from a source tree or a PYTHONPATH. Both images run it; tests/test_deploy.py runs the same
# line with `--no-deps --target DIR` and imports every python model as the stub would.
#   usage: install-project.sh SRC [pip install options]
set -eu
src=${1:?usage: install-project.sh SRC [pip install options]}
shift
python3 -m pip install --no-cache-dir "$@" "$src"
