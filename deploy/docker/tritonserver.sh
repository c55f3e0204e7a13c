#!/bin/sh
# The GPU server's command line, in one place (the image's ENTRYPOINT; deploy/k8s adds its
# arguments after these, as `docker run IMAGE ARGS...` does).
#   --exit-on-error=false: a model that fails to load (an AuthFace warm-up without a usable
#     GPU, a refused plan) is UNAVAILABLE and the others serve on; with Triton's default (true)
#     TRITONSERVER_ServerNew returns "failed to load all models" and the server exits
#     (triton-inference-server/core r24.12 src/tritonserver.cc, src/model_repository_manager).
#     Kubernetes readiness checks every ensemble (runtime/serving/probe.py --ready).
#   $MODELS/tritonserver.args: the flags the rendered repository needs (written by
#     `python -m export triton-repo --target gpu` from the contracts: the CUDA memory pool).
set -eu
MODELS=${MODELS:-/models}
extra=""
if [ -f "$MODELS/tritonserver.args" ]; then
    extra=$(cat "$MODELS/tritonserver.args")
fi
# shellcheck disable=SC2086  # one flag per word, none holds a space
exec tritonserver --model-repository="$MODELS" \
    --backend-config=python,shm-default-byte-size=16777216 \
    --exit-on-error=false \
    $extra "$@"
