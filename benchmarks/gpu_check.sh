#!/usr/bin/env bash
# The GPU check (issue 14), one command for the day a GPU is lent; about 10 minutes on
# one H100 (stages measured there on 2026-11-27; use --budget to fit a shorter lease).
# It writes every figure to one JSON file (and its log beside it):
#   1. environment: device, memory, driver, torch and CUDA versions
#   2. the CUDA-only tests (tests/test_cuda.py: bf16 autocast, channels-last, pinned
#      host batches, torch.compile, CUDA steps = CPU steps), skipped on a CPU
#   3. benchmarks/speed.py for every method: densenet121, 224 px, batch 48 (12 labeled),
#      bf16; ms/step, images/s, ratio to supervised
#   4. the same with --compile for supervised and srcmt (the compile gain)
#   5. a one-epoch paper-preset run of supervised, mt, srcmt and fixmatch on
#      isic2018-mini: the supervised loss must fall and the metrics be finite
#   6. three steps on CUDA against the same steps on the CPU, within bf16 tolerance
#   7. where compiled and eager outputs part (benchmarks/compile_repro.py: pooling ops,
#      memory formats, dtypes, compile modes, whole backbones; GPU only)
#   8. sweep throughput against runs at once (benchmarks/gpu_sweep_throughput.py: one
#      seed of every method of the 20% reference spec at --jobs 1, 2, 4, 8, images on
#      the GPU, a 1/N memory share each; with --data-root a folder or a data pack)
# (run in the order 1, 2, 6, 3, 4, 5, 7, 8: the cheap correctness stages first). gpu_check.json
# is rewritten after every stage, so a check cut off by its lease still reports the
# stages it finished ("complete": false).
#
# usage: bash benchmarks/gpu_check.sh [--out DIR] [--data-root DIR] [--pretrained]
#                                     [--budget SECONDS] [--only STAGES] [--dry-run]
#                                     [--reference-steps N]
#   --out        where gpu_check.json and gpu_check.log go (default: $OUT, else gpu_check/)
#   --data-root  isic2018-mini, a folder or a data pack (ssl-bench pack) for stage 8
#                (default ../shared/data/isic2018-mini); without it the
#                speed stages use the built-in digits data and stage 5 is skipped
#   --pretrained start the paper runs from ImageNet weights (needs them downloaded or
#                cached; the default starts from scratch: the check is about numerics)
#   --budget     seconds the whole check may take (e.g. a GPU lease): each stage's limit
#                is cut to what is left, and a stage with under 30 s left is skipped
#   --only       comma-separated stages to run, e.g. cuda_tests,paper_runs to rerun those
#                (environment always runs; the others are skipped and noted)
#   --reference-steps  summed steps of the committed 20% reference runs, for stage 8's
#                projection when their folders are not carried (default: read them)
#   --dry-run    every stage on the CPU at a tiny size: checks this script, not a GPU
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # ssl_bench without an install

out="${OUT:-gpu_check}"
data_root="../shared/data/isic2018-mini"
pretrained=false
dry_run=false
budget=0
only=""
reference_steps=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --data-root) data_root="$2"; shift 2 ;;
        --pretrained) pretrained=true; shift ;;
        --budget) budget="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --reference-steps) reference_steps="$2"; shift 2 ;;
        --dry-run) dry_run=true; shift ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$budget" =~ ^[0-9]+$ ]]; then
    echo "gpu_check.sh: --budget must be a whole number of seconds, not '$budget'" >&2; exit 2
fi
stage_names=" environment cuda_tests numerics speed_eager speed_compile paper_runs compile_repro sweep_throughput "
for name in ${only//,/ }; do
    if [[ "$stage_names" != *" $name "* ]]; then
        echo "gpu_check.sh: --only: unknown stage '$name' (stages:$stage_names)" >&2; exit 2
    fi
done
check_started=$(date +%s)
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log="$out/gpu_check.log"
: >"$log"
export PYTHONUNBUFFERED=1 SSL_BENCH_CACHE="$work/cache"
python=python3

if $dry_run; then
    device=cpu
    speed=(--device cpu --backbone resnet10t --size 32 --methods supervised,mt --steps 1
           --rounds 1 --warmup 1 --eval-batch-sizes 64 --threads 1)
    runs=(supervised mt)
    numerics_methods=supervised,srcmt
    run_flags=(--dataset digits --image-size 16 --iterations 6 --eval-every 3
               --batch-size 16 --labeled-batch-size 4 --threads 1)
    test_limit=120
else
    device=cuda
    speed=(--device cuda --backbone densenet121 --size 224 --batch-size 48
           --labeled-batch-size 12 --amp true --steps 10 --rounds 2 --warmup 3
           --eval-batch-sizes 256)
    runs=(supervised mt srcmt fixmatch)
    numerics_methods=supervised,mt,srcmt
    run_flags=(--preset paper --dataset isic --data-root "$data_root" --epochs 1
               --eval-every 7 --unsupervised-start 0 --pretrained "$pretrained")
    test_limit=150
fi
if ! $dry_run && [ -d "$data_root" ]; then
    speed+=(--dataset isic --data-root "$data_root")
else
    speed+=(--dataset digits)
fi

collect() {
    "$python" benchmarks/gpu_check_parts.py collect "$work" "$out/gpu_check.json" "$@"
}
# stage NAME LIMIT_SECONDS COMMAND...: run it under a time limit, log it, record the
# outcome, and rewrite gpu_check.json with what is known so far
stage() {
    local name="$1" limit="$2" started status left group="$1"
    shift 2
    started=$(date +%s)
    [[ "$name" == paper_run_* ]] && group=paper_runs
    if [ -n "$only" ] && [ "$name" != environment ] && [[ ",$only," != *",$group,"* ]]; then
        skip "$name" "not in --only $only" "not run"
        return
    fi
    if [ "$budget" -gt 0 ]; then
        left=$(( budget - (started - check_started) ))
        if [ "$left" -lt 30 ]; then
            skip "$name" "only ${left} s of --budget ${budget} left" "not run"
            return
        fi
        [ "$left" -lt "$limit" ] && limit=$left
    fi
    echo "=== $name (limit ${limit} s): $*" | tee -a "$log"
    if timeout "$limit" "$@" >>"$log" 2>&1; then status=ok; else status=failed; fi
    printf '%s\t%s\t%s\t\n' "$name" "$status" "$(( $(date +%s) - started ))" >>"$work/stages.tsv"
    echo "=== $name: $status" | tee -a "$log"
    collect --partial >/dev/null
}
# skip NAME WHY [STATUS]: "skipped" by design (no GPU, no data), or "not run" when
# --only or --budget left it out (then the check is not complete)
skip() {
    local status="${3:-skipped}"
    printf '%s\t%s\t0\t%s\n' "$1" "$status" "$2" >>"$work/stages.tsv"
    echo "=== $1: $status ($2)" | tee -a "$log"
}

stage environment 60 "$python" benchmarks/gpu_check_parts.py environment "$work/environment.json"
stage cuda_tests "$test_limit" "$python" -m pytest -q -n 0 -m cuda tests/test_cuda.py -p no:cacheprovider \
    --junitxml "$work/cuda_tests.xml"
stage numerics 90 "$python" benchmarks/gpu_check_parts.py numerics "$work/numerics.json" \
    --device "$device" --methods "$numerics_methods"
stage speed_eager 150 "$python" benchmarks/speed.py "${speed[@]}" --json "$work/speed_eager.json"
if $dry_run; then
    skip speed_compile "torch.compile is measured on the GPU only"
else
    # densenet121's compile took over 85 s for supervised alone on an H100 (2026-11-27)
    stage speed_compile 300 "$python" benchmarks/speed.py "${speed[@]}" --compile --rounds 1 \
        --methods supervised,srcmt --json "$work/speed_compile.json"
fi
if $dry_run || [ -d "$data_root" ]; then
    for method in "${runs[@]}"; do
        stage "paper_run_$method" 120 "$python" -m ssl_bench run --method "$method" \
            --labeled 0.2 --device "$device" "${run_flags[@]}" -o "$work/runs/$method"
    done
else
    skip paper_runs "no isic2018-mini at $data_root (pass --data-root)"
fi
if $dry_run; then
    skip compile_repro "the compile grid is for CUDA (its CPU dry run: benchmarks/compile_repro.py --dry-run)"
else
    stage compile_repro 240 "$python" benchmarks/compile_repro.py --out "$work"
fi
if $dry_run; then
    stage sweep_throughput 240 "$python" benchmarks/gpu_sweep_throughput.py --dry-run \
        --jobs 1,2 --out "$work"
elif [ -e "$data_root" ]; then
    stage sweep_throughput 300 "$python" benchmarks/gpu_sweep_throughput.py \
        --data-root "$data_root" --budget 290 --out "$work" \
        ${reference_steps:+--reference-steps "$reference_steps"}
else
    skip sweep_throughput "no isic2018-mini folder or pack at $data_root (pass --data-root)"
fi
collect | tee -a "$log"
"$python" -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))['ok'] else 1)" \
    "$out/gpu_check.json"
