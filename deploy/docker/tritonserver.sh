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
#   restricted APIs: model-repository (a load request may carry a model's code), shared memory,
#     logging and trace answer only requests with the admin key (runtime/serving/admin_key.py):
#     the one in $ADMIN_KEY_FILE when it exists (deploy/k8s mounts an optional secret there),
#     else a new random key nobody sees. Never printed.
set -eu
MODELS=${MODELS:-/models}
ADMIN_KEY_FILE=${ADMIN_KEY_FILE:-/run/secrets/facerestore/admin-key}
extra=""
if [ -f "$MODELS/tritonserver.args" ]; then
    extra=$(cat "$MODELS/tritonserver.args")
fi
restricted=$(python3 -m runtime.serving.admin_key --key-file "$ADMIN_KEY_FILE")
# shellcheck disable=SC2086  # one flag per word, none holds a space
exec tritonserver --model-repository="$MODELS" \
    --backend-config=python,shm-default-byte-size=16777216 \
    --exit-on-error=false \
    $restricted $extra "$@"
