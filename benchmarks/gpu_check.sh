#!/usr/bin/env bash
# The GPU path on a real GPU, in one prepared run (issue 18). Run from anywhere:
#
#   benchmarks/gpu_check.sh [--device cuda|cpu] [--budget SECONDS] [--keep-work] [--only STEP,...] [OUTDIR]
#
# OUTDIR defaults to $OUT if set, else ./gpu_check_out. Steps, each with its own time limit
# (and all together within --budget: default 450 s on cuda, so the run ends within 8 minutes):
#
#   env            nvidia-smi, python / torch / CUDA / cuDNN / triton versions, the GPUs
#   install        which imports work; `pip install -e .` (--no-deps when every dependency
#                  already imports; nothing else is ever installed); PYTHONPATH=src if it fails
#   mkdata         a generated mini-CelebA in the official formats (write_mini_celeba), in the
#                  background during pytest
#   pytest_gpu     python -m pytest -m gpu tests/test_gpu.py (on cuda: a skipped test fails the step)
#   bench_eager    benchmarks/bench_train.py: ResNet18 at 224 px, project path vs PIL/DataLoader
#                  (4 workers) in the same run, 100 timed steps of batch 256
#   wf_small       presets/celeba_quick.yaml on the mini-CelebA, 64 px crops of 72 px images
#   wf_large       the same at 224 px crops of 256 px images (allow_upscale), own results dir,
#                  at the same time as wf_small
#   bench_compile  bench_train.py --compile (both paths' step through torch.compile; 50 steps)
#
# The workflows run with --profile profiles/gpu --resources gpu=1; on cuda a training job that
# did not run on the GPU fails its step. A failed step is recorded and the next one runs; the
# exit code is 1 if any step did not finish "ok" (failed, timeout, or skipped for a missing
# import / no time left). What comes back: at most 6 files directly in OUTDIR:
#
#   summary.json       every step (status, rc, seconds, limit), versions, imports, pytest cases,
#                      benchmark results, per-workflow training jobs (device, epochs, img/s)
#   logs.tar.gz        every log (steps, Snakemake jobs), configs, workflow tables and reports
#   env.json  nvidia-smi.txt  bench_eager.json  bench_compile.json
#
# --device cpu is the dry mode: the same steps with tiny sizes (160 images; workflows at 16 and
# 112 px crops, 1 dense epoch; 2 timed benchmark steps), to test this script on a machine
# without a GPU (several minutes on 2 cores).
# --only runs just the named steps (e.g. --only env,install,mkdata,wf_large for a rerun; the
# workflows need mkdata, every step after install needs install or an installed package).
# Large intermediate files (images, checkpoints) live in a scratch directory under $TMPDIR,
# deleted at the end unless --keep-work.
set -uo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
HELPER="$REPO/benchmarks/gpu_check.py"
PROJECT_DEPS="torch torchvision numpy pandas pyarrow sklearn scipy matplotlib seaborn jinja2 PIL yaml snakemake"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[gpu_check $(date -u +%H:%M:%S)] $*"; }

# ------------------------------------------------------------------------------ step bodies
# Each runs as `gpu_check.sh --internal-step NAME` under `timeout`, with the GC_* variables
# exported by the driver; stdout+stderr go to $GC_WORK/logs/NAME.log.

need() {  # need MODULE...: stop the step (rc 3) naming the modules that do not import
    local missing
    if ! missing=$("$GC_PY" "$HELPER" missing "$GC_WORK/imports.json" "$@"); then
        echo "SKIPPED: these imports fail on this machine: $missing (see logs/install.log)"
        exit 3
    fi
}

step_env() {
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi >"$GC_OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed (rc $?)"
        nvidia-smi -q >"$GC_WORK/logs/nvidia-smi-q.txt" 2>&1 || true
        cat "$GC_OUT/nvidia-smi.txt"
    else
        echo "nvidia-smi: not found" | tee "$GC_OUT/nvidia-smi.txt"
    fi
    echo "repo: $GC_REPO"
    echo "C compiler (torch.compile needs one): $( (command -v gcc || command -v cc) 2>/dev/null || echo none)"
    df -h "$GC_WORK" 2>/dev/null | tail -n1
    git -C "$GC_REPO" log -1 --format='commit %H %cd' 2>/dev/null || echo "commit: (no git metadata)"
    git -C "$GC_REPO" status --short 2>/dev/null | head -50
    "$GC_PY" "$HELPER" env "$GC_OUT/env.json" --device "$GC_DEVICE"
}

step_install() {
    cd "$GC_REPO" || exit 1
    echo "python: $GC_PY"
    "$GC_PY" "$HELPER" imports "$GC_WORK/imports.json"
    local where
    where=$("$GC_PY" -c "import prunebias, os; print(os.path.realpath(prunebias.__file__))" 2>/dev/null)
    if [[ "$where" == "$GC_REPO/src/prunebias/"* ]]; then
        echo "prunebias already imports from this checkout ($where): no install"
        echo "already installed (editable, this checkout)" >"$GC_WORK/install_mode.txt"
        return 0
    fi
    local missing pip_ok=0 iso=()
    "$GC_PY" -c "import setuptools" 2>/dev/null && iso=(--no-build-isolation)  # offline: no build env download
    if missing=$("$GC_PY" "$HELPER" missing "$GC_WORK/imports.json" $PROJECT_DEPS); then
        echo "+ pip install --no-deps ${iso[*]} -e ."
        "$GC_PY" -m pip install --no-deps "${iso[@]}" -e . && pip_ok=1
        mode="pip install --no-deps ${iso[*]} -e ."
    else
        echo "MISSING dependencies: $missing; trying plain 'pip install -e .' (fails fast without an index)"
        echo "NOTE: missing imports: $missing"
        if timeout 90 "$GC_PY" -m pip install --retries 0 --timeout 5 "${iso[@]}" -e .; then
            pip_ok=1; mode="pip install ${iso[*]} -e ."
        else
            echo "+ pip install --no-deps ${iso[*]} -e .   (the missing packages stay missing)"
            "$GC_PY" -m pip install --no-deps "${iso[@]}" -e . && pip_ok=1
            mode="pip install --no-deps ${iso[*]} -e . (missing: $missing)"
        fi
    fi
    where=$("$GC_PY" -c "import prunebias, os; print(os.path.realpath(prunebias.__file__))" 2>/dev/null)
    if [[ $pip_ok == 1 && "$where" == "$GC_REPO/src/prunebias/"* ]]; then
        echo "$mode" >"$GC_WORK/install_mode.txt"
        echo "installed: prunebias imports from $where"
        [[ -n ${missing:-} ]] && "$GC_PY" "$HELPER" imports "$GC_WORK/imports.json" >/dev/null  # after a plain install
        return 0
    fi
    echo "NOTE: ${missing:+missing imports: $missing; }pip install -e . failed (see log); later steps use PYTHONPATH=src"
    echo "pip install failed or prunebias does not import from this checkout (${where:-not importable}):"
    echo "the following steps use PYTHONPATH=$GC_REPO/src"
    echo "$GC_REPO/src" >"$GC_WORK/pythonpath"
    echo "$mode FAILED; later steps use PYTHONPATH=src" >"$GC_WORK/install_mode.txt"
    return 1
}

step_mkdata() {
    need numpy PIL pandas
    "$GC_PY" "$HELPER" mkdata "$GC_WORK/celeba" "$GC_IMAGES"
}

step_pytest_gpu() {
    need pytest torch numpy pandas pyarrow
    cd "$GC_REPO" || exit 1
    "$GC_PY" -m pytest -m gpu tests/test_gpu.py -p no:cacheprovider --junitxml="$GC_WORK/pytest_gpu.xml"
    local rc=$?
    if [[ $rc == 0 && $GC_DEVICE == cuda ]] && grep -q "<skipped" "$GC_WORK/pytest_gpu.xml"; then
        echo "FAILED: GPU tests were skipped on a --device cuda run"
        return 1
    fi
    return $rc
}

bench() {  # bench NAME [extra flags]
    local name=$1; shift
    need torch torchvision numpy PIL pandas pyarrow
    cd "$GC_REPO" || exit 1
    # shellcheck disable=SC2086
    "$GC_PY" benchmarks/bench_train.py --device "$GC_DEVICE" --arch resnet18 --sizes 224 $GC_BENCH_ARGS \
        "$@" --out "$GC_OUT/bench_$name.json"
}
step_bench_eager() { bench eager; }
step_bench_compile() { bench compile --compile $GC_COMPILE_ARGS; }

workflow() {  # workflow TAG RESOLUTION CROP [--allow-upscale]
    local tag=$1 res=$2 crop=$3; shift 3
    need $PROJECT_DEPS
    local wdir="$GC_WORK/wf_$tag"
    mkdir -p "$wdir"
    if [[ ! -f "$GC_WORK/celeba/list_eval_partition.txt" ]]; then
        echo "FAILED: no mini-CelebA under $GC_WORK/celeba (see logs/mkdata.log)"
        return 1
    fi
    cp "$GC_REPO/config.yaml" "$wdir/config.yaml"  # the base the preset is merged over, as run
    # shellcheck disable=SC2086
    "$GC_PY" "$HELPER" wfconfig "$wdir/override.yaml" --root "$GC_WORK/celeba" --resolution "$res" --crop "$crop" \
        "$@" $GC_WF_ARGS || return 1
    export PRUNEBIAS_GPU_LOCK_DIR="$wdir/gpu-locks"  # a killed earlier step can never hold this run's lease
    cd "$GC_REPO" || exit 1
    echo "+ snakemake --profile profiles/gpu --resources gpu=1 --configfile config.yaml presets/celeba_quick.yaml override.yaml"
    "$GC_PY" -m snakemake -s "$GC_REPO/Snakefile" --directory "$wdir" \
        --configfile "$wdir/config.yaml" "$GC_REPO/presets/celeba_quick.yaml" "$wdir/override.yaml" \
        --profile profiles/gpu --resources gpu=1 --printshellcmds
    local rc=$?
    echo "--- training jobs (device per job):"
    local lines
    lines=$(grep -rh "^training {" "$wdir/results/logs/train_dense" "$wdir/results/logs/prune" 2>/dev/null)
    echo "$lines"
    if [[ $GC_DEVICE == cuda ]] && { [[ -z "$lines" ]] || grep -qv " on cuda" <<<"$lines"; }; then
        echo "FAILED: a training job did not run on the GPU (or none ran)"
        rc=1
    fi
    return $rc
}
step_wf_small() { workflow small "$GC_SMALL_RES" "$GC_SMALL_CROP"; }
step_wf_large() { workflow large "$GC_LARGE_RES" "$GC_LARGE_CROP" --allow-upscale; }

if [[ "${1:-}" == "--internal-step" ]]; then
    [[ -f "$GC_WORK/pythonpath" ]] && export PYTHONPATH="$(cat "$GC_WORK/pythonpath")${PYTHONPATH:+:$PYTHONPATH}"
    "step_$2"
    exit $?
fi

# ------------------------------------------------------------------------------ the driver
DEVICE=cuda BUDGET="" KEEP=0 OUTDIR="" ONLY=""
while (($#)); do
    case $1 in
        --device) DEVICE=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
        --device=*) DEVICE=${1#*=}; shift ;;
        --budget) BUDGET=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
        --budget=*) BUDGET=${1#*=}; shift ;;
        --keep-work) KEEP=1; shift ;;
        --only) ONLY=${2:-}; shift $(($# > 1 ? 2 : 1)) ;;
        --only=*) ONLY=${1#*=}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) OUTDIR=$1; shift ;;
    esac
done
[[ $DEVICE == cuda || $DEVICE == cpu ]] || { echo "--device must be cuda or cpu, got '$DEVICE'" >&2; exit 2; }
[[ -z $BUDGET || $BUDGET =~ ^[0-9]+$ ]] || { echo "--budget must be a number of seconds, got '$BUDGET'" >&2; exit 2; }
OUTDIR=${OUTDIR:-${OUT:-./gpu_check_out}}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd) || { echo "cannot create $OUTDIR" >&2; exit 2; }
rm -f "$OUTDIR"/{summary.json,logs.tar.gz,env.json,nvidia-smi.txt,bench_eager.json,bench_compile.json}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
mkdir -p "$WORK/logs"

# The interpreter: $PYTHON, else the project's venv, else the first python on PATH with torch.
PY=""
for cand in "${PYTHON:-}" "$REPO/.venv/bin/python" python python3; do
    [[ -n $cand ]] && command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c "import torch" >/dev/null 2>&1; then PY=$(command -v "$cand"); break; fi
    [[ -z $PY ]] && PY=$(command -v "$cand")
done
[[ -n $PY ]] || { echo "no python found" >&2; exit 2; }

if [[ $DEVICE == cuda ]]; then
    BUDGET=${BUDGET:-450}
    export GC_IMAGES=3000 GC_SMALL_RES=72 GC_SMALL_CROP=64 GC_LARGE_RES=256 GC_LARGE_CROP=224
    export GC_WF_ARGS="--epochs 3 --batch-size 256 --eval-batch-size 2048 --bootstrap 200 --ba-min-positives 10"
    export GC_BENCH_ARGS="--steps 100 --batch-size 256 --images 1024" GC_COMPILE_ARGS="--steps 50"
    L_ENV=60 L_INSTALL=150 L_MKDATA=150 L_PYTEST=150 L_BENCH=150 L_WF_SMALL=200 L_WF_LARGE=200 L_COMPILE=240
else
    BUDGET=${BUDGET:-1500}
    # tiny: 16 px crops (ResNet18's CIFAR stem) and 112 px crops of 200 px images (still upscaled
    # from CelebA's 178 px side, like 256 on cuda); the benchmark still at 224 px, 2 timed steps
    export GC_IMAGES=160 GC_SMALL_RES=18 GC_SMALL_CROP=16 GC_LARGE_RES=200 GC_LARGE_CROP=112
    export GC_WF_ARGS="--epochs 1 --batch-size 32 --eval-batch-size 128 --bootstrap 20 --ba-min-positives 1"
    export GC_BENCH_ARGS="--steps 2 --warmup 1 --batch-size 8 --images 32 --workers 2 --prepare-workers 2"
    export GC_COMPILE_ARGS=""
    export PRUNEBIAS_DEVICE=cpu
    L_ENV=120 L_INSTALL=300 L_MKDATA=300 L_PYTEST=300 L_BENCH=400 L_WF_SMALL=600 L_WF_LARGE=600 L_COMPILE=900
fi
export GC_REPO=$REPO GC_WORK=$WORK GC_OUT=$OUTDIR GC_PY=$PY GC_DEVICE=$DEVICE
START=$(now)
DEADLINE=$(awk -v s="$START" -v b="$BUDGET" 'BEGIN { printf "%d", s + b }')
say "device=$DEVICE out=$OUTDIR work=$WORK python=$PY budget=${BUDGET}s"

run_step() {  # run_step NAME LIMIT: the step's body under its own limit, cut to the time left
    local name=$1 limit=$2 left lim t0 rc status note=""
    [[ -z $ONLY || ",$ONLY," == *",$name,"* ]] || return 0
    left=$((DEADLINE - $(date +%s)))
    lim=$((limit < left ? limit : left))
    if ((lim < 15)); then
        say "$name: SKIPPED (${left}s left of the ${BUDGET}s budget)"
        printf '%s\tskipped\t\t0\t%s\t%s\n' "$name" "$limit" "no time left in the budget" >>"$WORK/steps.tsv"
        echo "skipped: no time left in the budget" >"$WORK/logs/$name.log"
        return 1
    fi
    say "$name: start (limit ${lim}s)"
    t0=$(now)
    timeout -k 10 "$lim" bash "$SELF" --internal-step "$name" >"$WORK/logs/$name.log" 2>&1 </dev/null
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status=timeout; note="killed after ${lim}s" ;;
        3) status=skipped; note=$(grep -m1 '^SKIPPED' "$WORK/logs/$name.log") ;;
        *) status=failed
           note=$(grep -m1 '^NOTE: ' "$WORK/logs/$name.log" || grep -m1 -iE 'failed|error' "$WORK/logs/$name.log") ;;
    esac
    [[ $status == ok ]] && note=$(grep '^NOTE: ' "$WORK/logs/$name.log" | tail -n1)
    note=$(tr '\t' ' ' <<<"${note#NOTE: }" | cut -c1-300)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(elapsed "$t0" "$(now)")" "$lim" "$note" >>"$WORK/steps.tsv"
    say "$name: $status (rc $rc, $(elapsed "$t0" "$(now)")s)${note:+: $note}"
    [[ $status == ok ]] || tail -n 15 "$WORK/logs/$name.log" | sed 's/^/    | /'
    [[ $status == ok ]]
}

finish() {
    trap - TERM INT
    "$PY" - "$WORK/meta.json" "$DEVICE" "$START" "$BUDGET" "$OUTDIR" "$WORK" "$PY" <<'EOF'
import json, sys, time
out, device, start, budget, outdir, work, py = sys.argv[1:]
json.dump({"mode": device, "started_unix": float(start), "finished_unix": time.time(),
           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(start))),
           "budget_s": int(budget), "outdir": outdir, "workdir": work, "python": py}, open(out, "w"), indent=2)
EOF
    "$PY" "$HELPER" summarize "$OUTDIR" "$WORK" || say "summary failed"
    # Bundle the logs and the small workflow outputs (no images, no checkpoints) into one file.
    local items=(logs steps.tsv meta.json) f
    for f in imports.json install_mode.txt pytest_gpu.xml; do [[ -e $WORK/$f ]] && items+=("$f"); done
    for f in "$WORK"/wf_*; do [[ -d $f ]] && items+=("${f#"$WORK"/}"); done
    # (workflow_report.html is ~10 MB and the figures are inside report.html: left out)
    local excl=(--exclude='*.pt' --exclude='*.npy' --exclude='.snakemake' --exclude='gpu-locks'
                --exclude='workflow_report.html' --exclude='figures')
    tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" "${excl[@]}" "${items[@]}" 2>/dev/null
    if (($(stat -c %s "$OUTDIR/logs.tar.gz") > 15 * 1024 * 1024)); then  # the device tool returns <= 16 MiB a file
        tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" "${excl[@]}" --exclude='*.html' --exclude='predictions' "${items[@]}"
    fi
    local failed
    failed=$(awk -F'\t' '$2 != "ok" { printf "%s ", $1 }' "$WORK/steps.tsv" 2>/dev/null)
    ((KEEP)) && say "work directory kept: $WORK" || rm -rf "$WORK"
    say "files in $OUTDIR:"
    (cd "$OUTDIR" && ls -l)
    say "done in $(elapsed "$START" "$(now)")s; ${failed:+steps not ok: $failed}"
    [[ -z $failed && -s $OUTDIR/summary.json ]] && exit 0
    exit 1
}
trap 'say "interrupted: writing the summary"; finish' TERM INT

run_step env "$L_ENV"
run_step install "$L_INSTALL"
[[ -f $WORK/pythonpath ]] && export PYTHONPATH="$(cat "$WORK/pythonpath")${PYTHONPATH:+:$PYTHONPATH}"
run_step mkdata "$L_MKDATA" &
MKDATA_PID=$!
run_step pytest_gpu "$L_PYTEST"
wait "$MKDATA_PID"
run_step bench_eager "$L_BENCH"
# The two workflows run at the same time (one's GPU jobs overlap the other's CPU analysis jobs;
# separate lock directories, so both may use the GPU at once).
run_step wf_small "$L_WF_SMALL" &
WF_SMALL_PID=$!
run_step wf_large "$L_WF_LARGE"
wait "$WF_SMALL_PID"
run_step bench_compile "$L_COMPILE"
finish
