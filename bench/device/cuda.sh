#!/usr/bin/env bash
# bench/device/cuda.sh: the engine on a GPU machine in ONE prepared run (issue #6 item 3).
#
#   bash bench/device/cuda.sh                  on the GPU machine, from the repo root (device tool: see
#                                              bench/README.md "GPU machine"); writes $OUT/log.txt,
#                                              $OUT/results.jsonl, $OUT/build.txt, $OUT/summary.txt
#   bash bench/device/cuda.sh --cpu-dry-run    here: the same steps with --backend cpu on both sides, tiny
#                                              shapes and the existing build-core build (checks the script)
#   bash bench/device/cuda.sh --configure-only env, cuBLAS discovery, source and the CUDA configure only
#
# Steps (each guarded: a failing step is recorded and the next one runs; each is capped with `timeout` and
# by the time left of the whole run, BUDGET_S, default 570 s; the most important results come first):
#   env        nvidia-smi, nvcc, cmake, ninja, gcc, git, python packages; where cuBLAS is
#   source     llama.cpp's tree: build-device/llama-src.tar.gz (bench/device/prepare.sh; no git needed) or
#              node-llama-cpp's bundle (git clone by CMake)
#   configure  build-cuda: -DLLAVA_RAD_CUDA=ON -DLLAVA_RAD_LLAMA_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90
#   build      llava-rad-cli llava-rad-make-model llava-rad-tests llama-bench (in the background, -j16) while
#   models     a CPU-only build of llava-rad-make-model (build-devcpu) writes the random-weight models:
#              small decoders (512 x 4 layers; f32 f16 q8_0 q4_k), a ViT-B/14 518 vision GGUF (f16, projects
#              to 4096), 7B-shaped decoders (q4_k: uniform Q4_K with a Q6_K lm head; q4_0)
#   unit       llava-rad-tests (C++ unit tests)
#   correct    greedy tokens of generate --backend cpu vs cuda (small decoders, 3 prompts, 32 tokens);
#              vision --dump cpu vs cuda (the committed tiny fixture and the ViT-B), compared in float64;
#              bert --dump cpu vs cuda (the tiny CheXbert of prepare.sh on its 20 golden sequences, batched and not)
#   perf       llama-bench -ngl 99 -p 512 -n 128 -fa 0,1 -r 3 vs our generate --backend cuda (~512-token
#              prompt, 128 tokens, --warmup) at fa 0 and 1, for the 7B q4_k and q4_0
#   study      llava-rad-cli study (7B q4_k + ViT-B): P = 1, 8, 16, 32 (studies/hour), then P=32 with fa=1
#   official   bench/device/official_stack.py: transformers + timm fp16, batch 1 and 8
#   summary    the table at the end of stdout (and $OUT/summary.txt)
#
# Environment: OUT (the device tool sets it; default build-device-out/), BUDGET_S, JOBS (16),
# CUDA_ARCH (90), LLAMA_BENCH (dry run: a llama-bench binary to use), ONLY: a comma list of the steps
# build, unit, correct, perf, study, official to run (default all); on a machine still warm from an
# earlier call the build and models left there are reused (e.g. ONLY=study,official for a second call).
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
MODE=cuda
CONFIGURE_ONLY=0
case "${1:-}" in
    "") ;;
    --cpu-dry-run) MODE=dry ;;
    --configure-only) MODE=cuda; CONFIGURE_ONLY=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "cuda.sh: unknown argument '$1' (--cpu-dry-run, --configure-only or nothing)" >&2; exit 2 ;;
esac

ONLY=${ONLY:-}
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
START=$(date +%s)
export DEVICE_START=$START
if [ "$MODE" = dry ]; then BUDGET_S=${BUDGET_S:-1800}; else BUDGET_S=${BUDGET_S:-570}; fi
DEADLINE=$(( START + BUDGET_S ))
RESERVE=8
JOBS=${JOBS:-16}
CUDA_ARCH=${CUDA_ARCH:-90}
OUT=${OUT:-$ROOT/build-device-out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
RES=$OUT/results.jsonl
BUILDLOG=$OUT/build.txt
SUMMARY=$OUT/summary.txt
: > "$LOG"; : > "$RES"; : > "$BUILDLOG"
TOOLS=$ROOT/bench/device/devtools.py
PY=${PYTHON:-python3}

if [ "$MODE" = dry ]; then
    WORK=$ROOT/build-devdry
    BUILD=$ROOT/build-core          # the existing CPU build
    DEVCPU=$ROOT/build-core
    GPU=cpu                         # the "GPU" side of every comparison runs on the CPU too
    SMALL=(--n-embd 256 --n-ff 512 --n-layer 2 --n-head 4 --n-ctx 2048)
    VIT=(--width 64 --depth 2 --heads 2 --mlp 128 --proj 256)
    BIG=(--n-embd 256 --n-ff 512 --n-layer 2 --n-head 4 --n-ctx 4096)
    STUDY_RUNS=("1 2 2 0" "2 4 0 0" "4 8 0 0" "4 8 0 1")   # P N latency-runs flash-attn
    OFFICIAL_ARGS=(--tiny --device cpu --allow-fallback --batches 1,2 --rounds 1 --max-new-tokens 4)
    LB_REPS=1
else
    WORK=$ROOT/build-cuda-work
    BUILD=$ROOT/build-cuda
    DEVCPU=$ROOT/build-devcpu
    GPU=cuda
    SMALL=(--n-embd 512 --n-ff 1536 --n-layer 4 --n-head 8 --n-ctx 2048)
    VIT=()                          # make-model's defaults: ViT-B/14 at 518, projection 4096
    BIG=()                          # make-model's defaults: 4096 x 32 layers, 32 heads, FFN 11008
    STUDY_RUNS=("1 4 3 0" "8 16 0 0" "16 32 0 0" "32 64 0 0" "32 64 0 1")
    OFFICIAL_ARGS=(--batches 1,8 --rounds 2 --max-new-tokens 100)
    LB_REPS=3
fi
mkdir -p "$WORK"
CLI=$BUILD/llava-rad-cli
MAKE_MODEL=$DEVCPU/llava-rad-make-model

# ---- helpers -------------------------------------------------------------------------------------------
ts() { date -u +%H:%M:%S; }
el() { echo $(( $(date +%s) - START )); }
left() { echo $(( DEADLINE - $(date +%s) )); }
say() { echo "[$(ts) +$(el)s] $*" | tee -a "$LOG"; }
rec() { "$PY" "$TOOLS" record "$RES" "$@" >> "$LOG" 2>&1 || echo "   (could not record $1)" >> "$LOG"; }
# limit CAP: the seconds a command may take now (CAP, or what is left of the budget)
limit() { local cap=$1 l; l=$(( $(left) - RESERVE )); (( cap < l )) && l=$cap; echo "$l"; }
# run CAP CMD...: stdout and stderr to the log; 124 = timed out, 125 = no time left
run() {
    local cap=$1; shift
    local lim; lim=$(limit "$cap")
    if (( lim < 3 )); then echo "   (no time left for: $*)" >> "$LOG"; return 125; fi
    echo "   \$ [${lim}s] $*" >> "$LOG"
    timeout -k 5 "$lim" "$@" >> "$LOG" 2>&1
}
# runo FILE CAP CMD...: the same with stdout to FILE
runo() {
    local file=$1 cap=$2; shift 2
    local lim; lim=$(limit "$cap")
    if (( lim < 3 )); then echo "   (no time left for: $*)" >> "$LOG"; return 125; fi
    echo "   \$ [${lim}s] $* > $file" >> "$LOG"
    timeout -k 5 "$lim" "$@" > "$file" 2>> "$LOG"
}
status_of() { case $1 in 0) echo ok ;; 124|137) echo timeout ;; 125) echo skipped ;; *) echo fail ;; esac; }
secs() { echo $(( $(date +%s) - $1 )); }
have() { command -v "$1" >/dev/null 2>&1; }

say "cuda.sh mode=$MODE budget=${BUDGET_S}s out=$OUT work=$WORK"

# ---- env -----------------------------------------------------------------------------------------------
step_env() {
    local t0; t0=$(date +%s)
    {
        echo "===== env"; date -u; uname -a; nproc; free -g 2>/dev/null; df -h "$ROOT" 2>/dev/null
        have nvidia-smi && nvidia-smi
        have nvidia-smi && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
        echo "nvcc: $(command -v nvcc)"; have nvcc && nvcc --version
        cmake --version | head -1; echo "ninja $(ninja --version 2>/dev/null)"; gcc --version | head -1
        echo "git: $(command -v git || echo none)"
        "$PY" -c 'import sys; print("python", sys.version.split()[0])'
        "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1
        "$PY" -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 | tail -1
        "$PY" -c 'import timm; print("timm", timm.__version__)' 2>&1 | tail -1
        "$PY" -c 'import numpy; print("numpy", numpy.__version__)' 2>&1 | tail -1
    } >> "$LOG" 2>&1
    local gpu="none" driver="-" nv="-"
    have nvidia-smi && gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
    have nvidia-smi && driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
    have nvcc && nv=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
    rec env ok mode="$MODE" gpu="$gpu" driver="$driver" nvcc="$nv" cmake="$(cmake --version | head -1 | awk '{print $3}')" \
        ninja="$(ninja --version 2>/dev/null)" git="$(have git && echo yes || echo no)" nproc="$(nproc)" seconds="$(secs "$t0")"
    say "env: gpu '$gpu', driver $driver, nvcc $nv"
}

# ---- cuBLAS and friends: scripts/find-cuda.sh (also used by scripts/package.mjs --cuda) -------------------
CUDA_CMAKE_ARGS=()
CUDA_LIBDIRS=""
find_cuda() {
    local out kind value rc
    out=$(PYTHON="$PY" bash "$ROOT/scripts/find-cuda.sh" "$WORK/cuda-shim" 2>> "$LOG"); rc=$?
    while read -r kind value; do
        case $kind in
            cmake) CUDA_CMAKE_ARGS+=("$value") ;;
            libdir) CUDA_LIBDIRS="$CUDA_LIBDIRS:$value" ;;
        esac
    done <<< "$out"
    [ -n "$CUDA_LIBDIRS" ] && export LD_LIBRARY_PATH="${CUDA_LIBDIRS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "find_cuda: cmake args: ${CUDA_CMAKE_ARGS[*]}" >> "$LOG"
    # no nvcc: nothing to build with; no cuBLAS: the configure step says so
    [ ${#CUDA_CMAKE_ARGS[@]} -gt 0 ] || return 1
    return 0
}

# ---- source --------------------------------------------------------------------------------------------
SRC_ARGS=()
# prepare_source BUILD_DIR: the llama.cpp tree for our CMakeLists (tarball, else the bundle via git)
prepare_source() {
    local dir=$1 tarball=$ROOT/build-device/llama-src.tar.gz bundle=$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle
    mkdir -p "$dir"
    if [ -f "$tarball" ]; then
        local hash; hash=$(sha256sum "$tarball" | cut -d' ' -f1)
        if [ ! -f "$dir/llama.cpp/ggml/CMakeLists.txt" ] || [ "$(cat "$dir/llama.cpp.stamp" 2>/dev/null)" != "$hash" ]; then
            rm -rf "$dir/llama.cpp" && mkdir -p "$dir/llama.cpp" && tar -xzf "$tarball" -C "$dir/llama.cpp" || return 1
            printf %s "$hash" > "$dir/llama.cpp.stamp"   # our CMakeLists then skips its git clone
        fi
        SRC_ARGS=("-DLLAVA_RAD_LLAMA_BUNDLE=$tarball")
        echo "source: $tarball -> $dir/llama.cpp" >> "$LOG"
    elif [ -f "$bundle" ] && have git; then
        SRC_ARGS=("-DLLAVA_RAD_LLAMA_BUNDLE=$bundle")
        echo "source: $bundle (CMake clones it)" >> "$LOG"
    else
        echo "source: neither build-device/llama-src.tar.gz nor the bundle with git" >> "$LOG"
        return 1
    fi
}

VOCAB=""
for f in "$ROOT/build-device/vocab.gguf" "$ROOT"/test/.fixtures/tiny-llama-base-q4_0-*.gguf "$ROOT"/test/.fixtures/tiny-llama-*.gguf; do
    [ -z "$VOCAB" ] && [ -f "$f" ] && VOCAB=$f
done

# compare_dumps STEP KEY=VALUE CMD...: runs CMD --backend cpu and CMD --backend $GPU, each with --dump, and
# records the float64 comparison of the two dumps (devtools.py dumps) as STEP, KEY=VALUE naming the case
compare_dumps() {
    local step=$1 label=$2 rc1 rc2
    shift 2
    run 120 "$@" --backend cpu --dump "$WORK/cmp-cpu.f32"; rc1=$?
    run 60 "$@" --backend "$GPU" --dump "$WORK/cmp-gpu.f32"; rc2=$?
    if [ $rc1 = 0 ] && [ $rc2 = 0 ] && "$PY" "$TOOLS" dumps "$WORK/cmp-cpu.f32" "$WORK/cmp-gpu.f32" > "$WORK/cmp.json" 2>> "$LOG"; then
        rec "$step" ok "$label" --json "$WORK/cmp.json"
        say "$step $label: $(cat "$WORK/cmp.json")"
    else
        rec "$step" fail "$label" rc_cpu=$rc1 rc_gpu=$rc2
        say "$step $label: FAILED"
    fi
    rm -f "$WORK/cmp-cpu.f32" "$WORK/cmp-gpu.f32"
}

# ---- models (run in the background while the CUDA build compiles) ----------------------------------------
make_models() {
    local t0 rc
    if [ "$MODE" = cuda ] && [ ! -x "$MAKE_MODEL" ]; then
        t0=$(date +%s)
        if prepare_source "$DEVCPU" && run 240 cmake -S "$ROOT" -B "$DEVCPU" -G Ninja -DCMAKE_BUILD_TYPE=Release \
                -DLLAVA_RAD_TESTS=OFF "${SRC_ARGS[@]}" && run 300 cmake --build "$DEVCPU" --target llava-rad-make-model -j 4; then
            rec devcpu-build ok seconds="$(secs "$t0")"
        else
            rec devcpu-build fail seconds="$(secs "$t0")"
            say "models: the CPU build of llava-rad-make-model failed: no models"
            return 1
        fi
    fi
    if [ -z "$VOCAB" ]; then say "models: no vocabulary template (build-device/vocab.gguf or a test fixture)"; rec models fail note=no-vocab; return 1; fi
    local spec name
    for spec in "small-f32 decoder --type f32" "small-f16 decoder --type f16" "small-q8_0 decoder --type q8_0" \
                "small-q4_k decoder --type q4_k" "vit-b-f16 vision --type f16" "big-q4_k decoder --type q4_k" \
                "big-q4_0 decoder --type q4_0"; do
        set -- $spec
        name=$1; shift
        local extra=()
        case $name in
            small-*) extra=("${SMALL[@]}") ;;
            vit-*) extra=("${VIT[@]}") ;;
            big-*) extra=("${BIG[@]}") ;;
        esac
        local vocab_args=()
        [ "$1" = decoder ] && vocab_args=(--vocab-from "$VOCAB")
        t0=$(date +%s)
        if [ -s "$WORK/$name.gguf" ] && [ "$WORK/$name.gguf" -nt "$MAKE_MODEL" ]; then
            rec "model-$name" ok seconds=0 note=cached bytes="$(stat -c %s "$WORK/$name.gguf")"
            continue
        fi
        run 300 nice -n 10 "$MAKE_MODEL" "$@" "${vocab_args[@]}" "${extra[@]}" --out "$WORK/$name.tmp.gguf"
        rc=$?
        if [ $rc = 0 ]; then
            mv "$WORK/$name.tmp.gguf" "$WORK/$name.gguf"
            rec "model-$name" ok seconds="$(secs "$t0")" bytes="$(stat -c %s "$WORK/$name.gguf")"
        else
            rm -f "$WORK/$name.tmp.gguf"
            rec "model-$name" "$(status_of $rc)" seconds="$(secs "$t0")" rc=$rc
        fi
        say "model $name: $(status_of $rc) ($(secs "$t0")s)"
    done
}

# ---- phase A: env; then the models (background, CPU) while build-cuda is configured and built -------------
step_env
BUILD_OK=0
t0=$(date +%s)
if [ "$MODE" = cuda ]; then
    find_cuda
    MODELS_PID=""
    if [ $CONFIGURE_ONLY = 0 ] && { want correct || want perf || want study; }; then make_models & MODELS_PID=$!; fi
    if ! want build && [ $CONFIGURE_ONLY = 0 ]; then
        [ -x "$CLI" ] && BUILD_OK=1
        rec build info note="not asked for (ONLY=$ONLY); $( [ $BUILD_OK = 1 ] && echo "reusing $CLI" || echo "no $CLI")"
    elif prepare_source "$BUILD"; then
        rec source ok seconds="$(secs "$t0")" args="${SRC_ARGS[*]}"
        t0=$(date +%s)
        say "configure build-cuda"
        run 240 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAVA_RAD_CUDA=ON -DLLAVA_RAD_LLAMA_BENCH=ON \
            -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" "${SRC_ARGS[@]}" "${CUDA_CMAKE_ARGS[@]}"
        rc=$?
        rec configure "$(status_of $rc)" seconds="$(secs "$t0")" rc=$rc
        say "configure: $(status_of $rc) ($(secs "$t0")s)"
        if [ $rc = 0 ] && [ $CONFIGURE_ONLY = 0 ]; then
            say "build -j$JOBS (llava-rad-cli llava-rad-make-model llava-rad-tests llama-bench; output in build.txt)"
            t0=$(date +%s)
            runo "$BUILDLOG" 420 cmake --build "$BUILD" --target llava-rad-cli llava-rad-make-model llava-rad-tests llama-bench -j "$JOBS"
            rc=$?
            rec build "$(status_of $rc)" seconds="$(secs "$t0")" rc=$rc
            say "build: $(status_of $rc) ($(secs "$t0")s)"
            if [ $rc = 0 ]; then
                BUILD_OK=1
            else
                echo "----- build: last 40 lines" | tee -a "$LOG"; tail -40 "$BUILDLOG" | tee -a "$LOG"
            fi
        elif [ $rc != 0 ]; then
            echo "----- configure: last 30 lines of the log"; tail -30 "$LOG"
        fi
    else
        rec source fail seconds="$(secs "$t0")"
        say "source: FAILED (see log)"
    fi
    [ -n "$MODELS_PID" ] && wait $MODELS_PID
    if [ $CONFIGURE_ONLY = 1 ]; then
        "$PY" "$TOOLS" summary "$RES" > "$SUMMARY" 2>> "$LOG"; cat "$SUMMARY"
        exit 0
    fi
else
    rec source info note="dry run: the existing build-core"
    say "build (dry run: build-core)"
    runo "$BUILDLOG" 900 cmake --build "$BUILD" --target llava-rad-cli llava-rad-make-model llava-rad-tests
    rc=$?
    rec build "$(status_of $rc)" seconds="$(secs "$t0")" rc=$rc
    [ $rc = 0 ] && BUILD_OK=1
    make_models
fi

LLAMA_BENCH_BIN=""
if [ "$MODE" = cuda ]; then
    for f in "$BUILD/Release/llama-bench" "$BUILD/bin/llama-bench" "$BUILD"/llama.cpp-build/bin/llama-bench; do [ -z "$LLAMA_BENCH_BIN" ] && [ -x "$f" ] && LLAMA_BENCH_BIN=$f; done
else
    for f in "${LLAMA_BENCH:-}" "$ROOT"/build-bench/llama.cpp/build/bin/llama-bench "$ROOT"/build-bench/*/bin/llama-bench; do
        [ -z "$LLAMA_BENCH_BIN" ] && [ -n "$f" ] && [ -x "$f" ] && LLAMA_BENCH_BIN=$f
    done
fi

# ---- phase B: checks and timings (sequential; nothing else running) -------------------------------------
if [ $BUILD_OK = 1 ] && [ -x "$CLI" ]; then
    say "version: $("$CLI" --version 2>&1 | head -1)"
    echo "$("$CLI" --version 2>&1)" >> "$LOG"
    rec version info build="$("$CLI" --version 2>&1 | head -1)"

    # unit tests
    t0=$(date +%s)
    if want unit && [ -x "$BUILD/llava-rad-tests" ]; then
        run 90 "$BUILD/llava-rad-tests" "" "$VOCAB"; rc=$?   # "" = every test; the GGUF for the fuzz test
        rec unit "$(status_of $rc)" seconds="$(secs "$t0")" rc=$rc
        say "unit tests: $(status_of $rc)"
    fi

    # does the GPU backend load?
    if [ -f "$WORK/small-f32.gguf" ]; then
        runo "$WORK/info.json" 60 "$CLI" info --model "$WORK/small-f32.gguf" --backend "$GPU"; rc=$?
        rec gpu-backend "$(status_of $rc)" --json "$WORK/info.json"
        say "info --backend $GPU: $(status_of $rc) $(grep -o '"backend":"[^"]*"' "$WORK/info.json" 2>/dev/null)"
    fi

    # correctness: decoders, greedy tokens cpu vs gpu
    PROMPTS=("The lungs are clear." \
             "Findings: There is a small left pleural effusion with adjacent atelectasis. The heart size is" \
             "Heart size is normal. No pneumothorax. Degenerative changes of the thoracic spine.")
    for t in f32 f16 q8_0 q4_k; do
        want correct || break
        m=$WORK/small-$t.gguf
        [ -f "$m" ] || { rec correct-decoder skipped type=$t note=no-model; continue; }
        i=0
        for p in "${PROMPTS[@]}"; do
            i=$((i + 1))
            runo "$WORK/gen-cpu.json" 60 "$CLI" generate --model "$m" --prompt "$p" --max-tokens 32 --ignore-eos --ctx 512 --backend cpu --json
            rc1=$?
            runo "$WORK/gen-gpu.json" 60 "$CLI" generate --model "$m" --prompt "$p" --max-tokens 32 --ignore-eos --ctx 512 --backend "$GPU" --json
            rc2=$?
            if [ $rc1 = 0 ] && [ $rc2 = 0 ] && "$PY" "$TOOLS" tokens "$WORK/gen-cpu.json" "$WORK/gen-gpu.json" > "$WORK/cmp.json" 2>> "$LOG"; then
                rec correct-decoder ok type=$t prompt=$i --json "$WORK/cmp.json"
            else
                rec correct-decoder fail type=$t prompt=$i rc_cpu=$rc1 rc_gpu=$rc2
            fi
        done
        say "correct decoder $t: $(grep -c "\"type\": \"$t\".*\"identical\": true" "$RES") of ${#PROMPTS[@]} identical"
    done

    # correctness: vision, cpu vs gpu dumps
    want correct && for v in "tiny-vision-f32:$ROOT/test/fixtures/vision/tiny-vision-f32.gguf" "vit-b-f16:$WORK/vit-b-f16.gguf"; do
        name=${v%%:*}; m=${v#*:}
        [ -f "$m" ] || { rec correct-vision skipped model=$name note=no-model; continue; }
        compare_dumps correct-vision model=$name "$CLI" vision --model "$m" --images 2 --batch 2
    done

    # correctness: the BERT encoder (CheXbert; CLIP's text tower runs the same graph), cpu vs gpu dumps of the
    # tiny CheXbert on its 20 golden sequences (prepare.sh writes both), batched and one at a time
    BERT_GGUF=$ROOT/build-device/chexbert-tiny-f32.gguf BERT_IDS=$ROOT/build-device/bert-ids.txt
    want correct && for b in 1 0; do
        [ -f "$BERT_GGUF" ] && [ -f "$BERT_IDS" ] || { rec correct-bert skipped note="no build-device/chexbert-tiny-f32.gguf (prepare.sh)"; break; }
        compare_dumps correct-bert batch=$b "$CLI" bert --model "$BERT_GGUF" --ids-file "$BERT_IDS" --batch $b
    done

    # perf: llama-bench vs ours on the 7B-shaped decoders
    PROMPT512=$("$PY" "$TOOLS" prompt 512)
    for t in q4_k q4_0; do
        want perf || break
        m=$WORK/big-$t.gguf
        [ -f "$m" ] || { rec perf-ours skipped model=big-$t note=no-model; continue; }
        if [ -n "$LLAMA_BENCH_BIN" ]; then
            t0=$(date +%s)
            ngl=99; [ "$MODE" = dry ] && ngl=0
            runo "$WORK/lb.json" 180 "$LLAMA_BENCH_BIN" -m "$m" -ngl $ngl -p 512 -n 128 -fa 0,1 -r $LB_REPS -o json; rc=$?
            if [ $rc = 0 ] && "$PY" "$TOOLS" llama-bench "$WORK/lb.json" > "$WORK/lbp.json" 2>> "$LOG"; then
                rec perf-llama-bench ok model=big-$t seconds="$(secs "$t0")" --json "$WORK/lbp.json"
            else
                rec perf-llama-bench "$(status_of $rc)" model=big-$t rc=$rc seconds="$(secs "$t0")"
            fi
            say "llama-bench big-$t: $(status_of $rc) ($(secs "$t0")s)"
        else
            rec perf-llama-bench skipped model=big-$t note=no-llama-bench
        fi
        for fa in 0 1; do
            t0=$(date +%s)
            runo "$WORK/ours.json" 120 "$CLI" generate --model "$m" --backend "$GPU" --prompt "$PROMPT512" --max-tokens 128 \
                --ignore-eos --ctx 768 --flash-attn $fa --warmup --json; rc=$?
            if [ $rc = 0 ] && "$PY" "$TOOLS" decode "$WORK/ours.json" > "$WORK/oursd.json" 2>> "$LOG"; then
                rec perf-ours ok model=big-$t fa=$fa seconds="$(secs "$t0")" --json "$WORK/oursd.json"
                say "ours big-$t fa=$fa: $(cat "$WORK/oursd.json")"
            else
                rec perf-ours "$(status_of $rc)" model=big-$t fa=$fa rc=$rc seconds="$(secs "$t0")"
                say "ours big-$t fa=$fa: $(status_of $rc)"
            fi
        done
    done

    # study: P studies in flight
    if ! want study; then
        :
    elif [ -f "$WORK/big-q4_k.gguf" ] && [ -f "$WORK/vit-b-f16.gguf" ]; then
        for r in "${STUDY_RUNS[@]}"; do
            set -- $r
            P=$1; N=$2; L=$3; FA=$4
            t0=$(date +%s)
            ok=0
            for ov in 1 0; do
                runo "$WORK/study.json" 150 "$CLI" study --model "$WORK/big-q4_k.gguf" --mmproj "$WORK/vit-b-f16.gguf" --backend "$GPU" \
                    --studies "$N" --parallel "$P" --latency-runs "$L" --flash-attn "$FA" --overlap $ov --max-tokens 100 \
                    --prompt-tokens 60 --ctx-per-study 1536 --json; rc=$?
                if [ $rc = 0 ]; then ok=1; break; fi
                rec study "$(status_of $rc)" parallel="$P" fa="$FA" overlap=$ov rc=$rc seconds="$(secs "$t0")"
                [ $rc = 125 ] && break
            done
            if [ $ok = 1 ]; then
                rec study ok parallel="$P" fa="$FA" seconds="$(secs "$t0")" --json "$WORK/study.json"
                say "study P=$P N=$N fa=$FA: $("$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print("%.0f studies/h, %.0f ms/study, ttft %s ms, %d/%d tokens" % (d["studies_per_hour"], d["ms_per_study"], d["ttft_ms"], d["generated_tokens"], d["expected_tokens"]))' "$WORK/study.json" 2>&1)"
            else
                say "study P=$P N=$N fa=$FA: FAILED"
            fi
        done
    else
        rec study skipped note=no-models
    fi
elif want unit || want correct || want perf || want study; then
    say "no engine build: the engine steps are skipped"
    rec engine skipped note=no-build
fi

# ---- official stack (independent of our build) ------------------------------------------------------------
if want official; then
    t0=$(date +%s)
    runo "$WORK/official.out" 200 env PYTHONUNBUFFERED=1 "$PY" "$ROOT/bench/device/official_stack.py" "${OFFICIAL_ARGS[@]}" --json-out "$WORK/official.json"
    rc=$?
    if [ $rc = 0 ]; then
        rec official ok seconds="$(secs "$t0")" --json "$WORK/official.json"
    else
        rec official "$(status_of $rc)" rc=$rc seconds="$(secs "$t0")"
        tail -5 "$LOG"
    fi
    say "official stack: $(status_of $rc) ($(secs "$t0")s)"
fi

# ---- summary ----------------------------------------------------------------------------------------------
rec total info seconds="$(el)"
"$PY" "$TOOLS" summary "$RES" > "$SUMMARY" 2>> "$LOG"
{ echo; echo "================ SUMMARY (mode $MODE, $(el)s) ================"; cat "$SUMMARY"; } | tee -a "$LOG"
exit 0
