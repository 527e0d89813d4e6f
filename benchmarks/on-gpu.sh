#!/usr/bin/env bash
# The GPU measurements that the CPU cannot make, in steps that each fit one 10-minute command on a lent machine
# whose Python already has torch, torchvision, opencv and the rest but no dlzoo and no data set (see
# benchmarks/README.md, "On a lent GPU"). Run from the repository root:
#
#   benchmarks/on-gpu.sh check                 # versions, the GPU, the data found, a 1-epoch speedrun on 4,096 images
#   benchmarks/on-gpu.sh speedrun [KEY=VALUE..] # dlzoo bench fashion-speedrun seeds=5 (10-14; one warm-up first), e.g.
#                                              #   speedrun compile=true compile_mode=reduce-overhead
#   benchmarks/on-gpu.sh profile               # dlzoo bench step-profile of fashion-speedrun: as it ships, compiled,
#                                              #   with CUDA graphs (reduce-overhead), and at the old batch 512
#   benchmarks/on-gpu.sh classic alexnet,nin   # dlzoo bench classic for those recipes: 10 epochs, book targets
#   benchmarks/on-gpu.sh session               # what is still unmeasured, most needed first, in one command that
#                                              #   ends within SESSION_S seconds (default 540)
#
# Fashion-MNIST is read from .data/fashion-mnist/ (the IDX .gz files; `make gpu-data` copies them there), results and
# logs go to $OUT (the device tool's folder that comes back) or else to bench-results/.
set -euo pipefail

export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 DLZOO_DATA="$PWD/.data"
python=${PYTHON:-python3}
out=${OUT:-bench-results}
mkdir -p "$out"
gpu=$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true) | head -1 | tr -cs 'A-Za-z0-9' '-')
gpu=${gpu%-}
tag=${gpu:-cpu}

dlzoo() { "$python" -m dlzoo "$@"; }

case "${1:-}" in
    check)
        nvidia-smi || true
        "$python" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.is_available())'
        dlzoo data | grep -A2 '^fashion-mnist'
        dlzoo bench fashion-speedrun seeds=1 epochs=1 limit=4096 warmup=false
        ;;
    speedrun)
        shift
        name=$(printf '%s' "${*:-recipe}" | tr -cs 'A-Za-z0-9.' '-')
        dlzoo bench fashion-speedrun seeds=5 "$@" --out "$out/fashion-speedrun-$tag-${name%-}.json" 2>&1 \
            | tee "$out/speedrun-${name%-}.log"
        ;;
    profile)
        variants=("" "trainer.compile=true" "trainer.compile=true trainer.compile_mode=reduce-overhead"
                  "data.batch_size=512 optim.lr=0.4")
        for i in "${!variants[@]}"; do
            trace=()
            [[ $i == 0 ]] && trace=("trace=$out/step-trace-$tag.json")
            # TORCH_LOGS=cudagraphs: the log says whether reduce-overhead recorded CUDA graphs or why it skipped them
            TORCH_LOGS=cudagraphs dlzoo bench step-profile "overrides=${variants[$i]}" "${trace[@]}" \
                --out "$out/step-profile-$i-$tag.json" 2>&1 | tee -a "$out/profile.log"
        done
        ;;
    classic)
        models=${2:?name the recipes, e.g. classic alexnet,nin}
        dlzoo bench classic "models=$models" --out "$out/classic-${models//,/-}-$tag.json" 2>&1 \
            | tee "$out/classic-${models//,/-}.log"
        ;;
    session)
        # A lent machine has 15 minutes of device time in all, start-up included, and 10 minutes a command: one
        # command, steps in order of need, each cut off at its own limit or the session's end, whichever is first.
        # Every step leaves its JSON and log in $out, so what finished comes back even if a later step is cut.
        deadline=$((SECONDS + ${SESSION_S:-540}))
        step() {  # step LIMIT_S ARGS...: run `on-gpu.sh ARGS` for at most LIMIT_S seconds and the time left
            local limit=$1 left=$((deadline - SECONDS))
            shift
            ((left > 20)) || { echo "session: no time left for: $*" | tee -a "$out/session.log"; return 0; }
            echo "session: $* (at most $((limit < left ? limit : left)) s)" | tee -a "$out/session.log"
            timeout $((limit < left ? limit : left)) "$0" "$@" || echo "session: '$*' ended with status $?" \
                | tee -a "$out/session.log"
        }
        step 200 speedrun
        # `bench --out` writes {benchmark name: result}; a missing or unreadable file counts as missed, and says why.
        met=$("$python" - "$out/fashion-speedrun-$tag-recipe.json" 2>>"$out/session.log" <<'PY' || echo False
import json, sys
print(all(json.load(open(sys.argv[1]))["fashion-speedrun"]["targets"].values()))
PY
)
        echo "session: fashion-speedrun as shipped meets its targets: $met" | tee -a "$out/session.log"
        # Not met: the per-step launch cost is the suspect, and CUDA graphs are the cure to try.
        [[ $met == True ]] || step 200 speedrun compile=true compile_mode=reduce-overhead
        step 300 classic googlenet
        ;;
    *)
        echo "usage: benchmarks/on-gpu.sh check|speedrun [KEY=VALUE...]|profile|classic RECIPE[,RECIPE...]|session" >&2
        exit 2
        ;;
esac
