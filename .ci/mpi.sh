#!/usr/bin/env bash
# Distributed tests: builds cloze with the mpi feature and runs tests/distributed.rs, which
# launches `mpirun --allow-run-as-root --oversubscribe -np {1,2,4}` itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpirun >/dev/null; then
  echo "MPI was not verified: mpirun is not installed"
  exit 1
fi
cargo test --release --features mpi --test distributed -- --test-threads=1 --nocapture
