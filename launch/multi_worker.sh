#!/usr/bin/env bash
# Multi-worker training with tf.distribute.MultiWorkerMirroredStrategy (--strategy=multi_worker).
#
# Every worker runs the same launcher command; TF_CONFIG tells each one the cluster
# (all workers' host:port) and its own index. Worker 0 is the chief: it alone writes
# --model_dir (checkpoints, TensorBoard logs, final weights) and the results JSON; the
# other workers take part in every step and checkpoint save but write to temporary
# folders that they delete at the end. The global batch (data.batch_size) is split
# across the workers, so results do not depend on the number of workers beyond
# floating-point rounding.
#
# On several machines: start one worker per machine with WORKERS listing all of them
# in the same order and INDEX set to that machine's position; --model_dir and
# --results_dir must be on a file system all workers see (they all resume from the
# chief's checkpoints when the same command is run again).
#
#   # this machine only, two local workers (a demo of the mechanics):
#   DATA=/path/to/bibtex bash launch/multi_worker.sh
#   # two machines:
#   WORKERS=hostA:12345,hostB:12345 INDEX=0 DATA=... bash launch/multi_worker.sh   # on hostA
#   WORKERS=hostA:12345,hostB:12345 INDEX=1 DATA=... bash launch/multi_worker.sh   # on hostB
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
TASK=${TASK:-bibtex}
METHOD=${METHOD:-ldrsp}
RUNS=${RUNS:-runs}
RESULTS=${RESULTS:-results}
EXTRA=${EXTRA:-}   # more launcher flags, e.g. "--epochs=2"

run_worker() {  # run_worker WORKERS INDEX
  local cluster
  cluster=$(python -c 'import json, sys; print(json.dumps([w for w in sys.argv[1].split(",")]))' "$1")
  TF_CONFIG="{\"cluster\": {\"worker\": $cluster}, \"task\": {\"type\": \"worker\", \"index\": $2}}" \
    python -m tfsp.launch --strategy=multi_worker --task="$TASK" --method="$METHOD" --data_dir="$DATA" \
      --model_dir="$RUNS/$TASK-$METHOD-multi_worker" --results_dir="$RESULTS" --results_suffix=-multi_worker --verbose=2 $EXTRA
}

if [ -n "${WORKERS:-}" ]; then
  run_worker "$WORKERS" "${INDEX:?set INDEX to the position of this machine in WORKERS}"
else
  # Two workers on this machine, on two free ports.
  ports=$(python -c 'import socket
s = [socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(",".join(f"127.0.0.1:{x.getsockname()[1]}" for x in s))')
  run_worker "$ports" 1 &
  other=$!
  run_worker "$ports" 0
  wait "$other"
fi
