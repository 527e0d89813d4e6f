#!/usr/bin/env bash
# The GPU measurements that the CPU cannot make, in steps that each fit one 10-minute command on a lent machine
# whose Python already has torch, torchvision, opencv and the rest but no dlzoo and no data set (see
# benchmarks/README.md, "On a lent GPU"). Run from the repository root:
#
#   benchmarks/on-gpu.sh check                 # versions, the GPU, the data found, a 1-epoch speedrun on 4,096 images
#   benchmarks/on-gpu.sh speedrun [KEY=VALUE..] # dlzoo bench fashion-speedrun seeds=5 (one warm-up run first), e.g.
#                                              #   speedrun compile=true compile_mode=reduce-overhead
#   benchmarks/on-gpu.sh profile               # dlzoo bench step-profile of fashion-speedrun: as it ships, compiled,
#                                              #   with CUDA graphs (reduce-overhead), and at the old batch 512
#   benchmarks/on-gpu.sh classic alexnet,nin   # dlzoo bench classic for those recipes: 10 epochs, book targets
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
    *)
        echo "usage: benchmarks/on-gpu.sh check|speedrun [KEY=VALUE...]|profile|classic RECIPE[,RECIPE...]" >&2
        exit 2
        ;;
esac
