#!/usr/bin/env bash
# The GPU paths of sklearn-ecluster, checked and timed on one CUDA GPU in < 8 minutes.
#
#   bash benchmarks/gpu_check.sh          # from anywhere; uses this checkout's package
#
# 1. python -m pytest -m gpu -q            (every @pytest.mark.gpu test)
# 2. benchmarks/bench_gpu.py, one part per call, each under its own hard `timeout`:
#    EnergyAgglomerative at N = 12,936 and N = 40,000 (d = 2048), the graph mode at
#    N = 100,000 (d = 256, exact kNN graph and merges), evaluate_features at
#    Market-1501 size (3,368 x 15,913, 2048-d), ReIDFeatureExtractor throughput
#    (ResNet-50, 256 x 128, AMP off / on) and one round of SelfTrainingReID on a
#    Market-1501-sized set in memory.
# 3. One markdown table, printed and written to $OUT/gpu_check.md (or
#    benchmarks/results/gpu_check.md when OUT is not set), with the pytest log beside it.
#
# Nothing is installed or downloaded: torch, torchvision, scikit-learn, scipy, pillow,
# joblib (and pytest for step 1) must be importable; the package is taken from this
# checkout through PYTHONPATH (no `pip install` needed). Every step has its own hard
# time limit, and none runs past the global deadline (GPU_CHECK_BUDGET seconds after the
# start, default 465), so a slow part cannot eat the others' time and the whole script
# ends within about 8 minutes.
set -u

# all in one function: bash reads it whole before running, so an edit of this file
# during a run cannot change what the run does
main() {
    REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$REPO"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    PY="${PYTHON:-python}"
    DEST="${OUT:-$REPO/benchmarks/results}"
    mkdir -p "$DEST"
    RESULTS="$DEST/gpu_check.jsonl"
    TABLE="$DEST/gpu_check.md"
    : > "$RESULTS"
    # GPU_CHECK_LIMIT_SCALE multiplies every time limit (a dry run on a slow, shared CPU)
    SCALE="${GPU_CHECK_LIMIT_SCALE:-1}"
    scaled() { echo $(( $1 * SCALE )); }
    BUDGET="${GPU_CHECK_BUDGET:-$(scaled 465)}"
    # GPU_CHECK_DRY=1: a dry run of this script on a CPU (tiny sizes), to check its plumbing
    DRY=()
    [ "${GPU_CHECK_DRY:-0}" = 1 ] && DRY=(--device cpu --small)
    BENCH=("$PY" benchmarks/bench_gpu.py --results "$RESULTS" ${DRY[@]+"${DRY[@]}"})
    DEADLINE=$((SECONDS + BUDGET))

    echo "== gpu_check.sh: $(date -u +%FT%TZ), repo $REPO, results in $DEST"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv,noheader
    timeout "$(scaled 60)" "$PY" - <<'EOF'
import os
import sys
try:
    import joblib, PIL, scipy, sklearn, torch, torchvision  # noqa: F401
    import sklearn_ecluster
except ImportError as exc:
    sys.exit(f"gpu_check.sh: missing dependency: {exc}")
if not torch.cuda.is_available() and os.environ.get("GPU_CHECK_DRY") != "1":
    sys.exit("gpu_check.sh: torch sees no CUDA device (torch %s, CUDA build %s)"
             % (torch.__version__, torch.version.cuda))
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (dry run)"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {gpu}, "
      f"sklearn_ecluster from {sklearn_ecluster.__file__}")
EOF
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "gpu_check.sh: the environment check failed (exit $rc; 124: over its time limit)"
        exit 1
    fi

    # run_part NAME LIMIT_S ARGS...: one call of bench_gpu.py under a hard time limit
    run_part() {
        local name="$1" limit
        limit="$(scaled "$2")"
        shift 2
        local left=$((DEADLINE - SECONDS))
        if [ "$left" -lt 15 ]; then
            "${BENCH[@]}" \
                --note "$name" "(skipped)" "skipped: the global budget of ${BUDGET} s is spent"
            return
        fi
        [ "$limit" -gt "$left" ] && limit="$left"
        echo "== $name (limit ${limit} s)"
        local t0=$SECONDS
        timeout -k 5 "$limit" "${BENCH[@]}" "$@"
        local rc=$?
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            "${BENCH[@]}" \
                --note "$name" "(part failed)" "killed by its time limit of ${limit} s"
        elif [ "$rc" -ne 0 ]; then
            "${BENCH[@]}" \
                --note "$name" "(part failed)" "exit status $rc after $((SECONDS - t0)) s (see the log)"
        fi
}

# 1. the GPU tests
limit="$(scaled 60)"
echo "== pytest -m gpu (limit ${limit} s)"
t0=$SECONDS
timeout -k 5 "$limit" "$PY" -m pytest -m gpu -q -p no:cacheprovider tests \
    > "$DEST/pytest_gpu.txt" 2>&1
rc=$?
tail -n 25 "$DEST/pytest_gpu.txt"
summary="$(grep -E '(passed|failed|error|skipped|deselected)' "$DEST/pytest_gpu.txt" | tail -n 1)"
"${BENCH[@]}" --note pytest \
    "python -m pytest -m gpu" "exit $rc in $((SECONDS - t0)) s: ${summary:-no summary (see pytest_gpu.txt)}"

# 2. the timings (limits 40 + 75 + 60 + 40 + 75 + 150 = 440 s; with the checks and
#    pytest 530 s, but no part runs past the global deadline)
run_part cluster-12936 40 --parts cluster --cluster-n 12936
run_part cluster-40000 75 --parts cluster --cluster-n 40000
run_part graph-100000 60 --parts graph --graph-n 100000
run_part metrics 40 --parts metrics
run_part extractor 75 --parts extractor
run_part loop 150 --parts loop

# 3. the table
echo "== results ($((SECONDS)) s in all)"
"$PY" benchmarks/bench_gpu.py --report "$RESULTS" --markdown "$TABLE"
echo "wrote $TABLE"
}

main "$@"
exit
