#!/usr/bin/env bash
# Installs what is needed, builds, and starts outpostd serving the bundled example models (the
# Iris classifier and the digits CNN) on the embedded defaults: http://127.0.0.1:8080.
# Extra arguments go to outpostd (e.g. --listen 0.0.0.0:8080, --config config/examples/device.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cat <<'MSG'

outpostd is starting. In another terminal, classify an Iris flower (sepal/petal lengths in cm):

  curl -s localhost:8080/v2/models/iris/infer -H 'Content-Type: application/json' \
    -d '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'

  -> "probabilities" for setosa, versicolor, virginica (this one: setosa, ~0.99998)

More: curl -s localhost:8080/v2/models/iris (metadata), curl -s localhost:8080/metrics,
      curl -s -X POST localhost:8080/v2/repository/index -d '{}'. Ctrl-C drains and stops.

MSG
exec build/bin/outpostd "$@"
