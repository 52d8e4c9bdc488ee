#!/usr/bin/env bash
# The bundled demo side by side with its PyTorch peer on this machine: `culturelens pipeline`
# (collect + CAS/LAP/LAPE/MAD at k = 3 % + every culture's set ablated on every culture +
# report) and benches/peer/culture_neurons_reference.py --k-percents 3 (statistics + CAS/MAD/
# LAP/random at 3 % + the same ablations, float32 on 2 threads, HF transformers' Qwen2.5-VL).
# Prints both wall times and their ratio.
#
# The PyTorch side needs torch, transformers 5, pyarrow and pillow: from $PEER_PYTHON if set,
# else the python3 on PATH if it has them, else a virtual environment made under target/ with
# pip. Where none of that works the script says so and reports culturelens alone.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${PEER_THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/release/culturelens

have_peer() { "$1" -c 'import torch, transformers, pyarrow, PIL' 2>/dev/null; }
python=${PEER_PYTHON:-python3}
if ! have_peer "$python"; then
    venv=target/peer-venv
    if [ ! -x "$venv/bin/python" ] || ! have_peer "$venv/bin/python"; then
        echo "installing the PyTorch peer into $venv (torch, transformers 5, pyarrow, pillow)..." >&2
        python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q torch 'transformers>=5,<6' pyarrow pillow numpy >&2 || true
    fi
    python=$venv/bin/python
fi

# seconds LOG CMD...: runs CMD with its output in LOG (shown if it fails); prints the wall time.
seconds() {
    local log=$1 t0 t1
    shift
    t0=$(date +%s.%N)
    "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "failed: $*" >&2; return 1; }
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# The peer's work: the four methods' ablation matrices; the random control, layer bands and
# resampling that culturelens adds by default are left out of the comparison.
peer_work=(--methods cas,lape,lap,mad --bands 0 --bootstrap 0)
echo "culturelens: $bin pipeline ${peer_work[*]} --out $work/culturelens" >&2
cl=$(seconds "$work/culturelens.log" "$bin" pipeline "${peer_work[@]}" --out "$work/culturelens")
printf 'culturelens pipeline (bundled demo):        %6.1f s\n' "$cl"

if ! have_peer "$python"; then
    echo "PyTorch peer skipped: torch, transformers, pyarrow and pillow could not be imported or installed" \
         "(set PEER_PYTHON to a python that has them)."
    exit 0
fi
# The reference writes its JSON beside the model: give it a copy.
cp -r assets/models/culture-tiny-qwen2_5_vl "$work/model"
echo "PyTorch: $python benches/peer/culture_neurons_reference.py --k-percents 3 --threads $threads" >&2
pt=$(seconds "$work/pytorch.log" "$python" benches/peer/culture_neurons_reference.py --model "$work/model" \
    --data assets/data/mini-cvqa --k-percents 3 --threads "$threads")
printf 'PyTorch reference (%s, %s threads): %6.1f s\n' "$("$python" -c 'import torch; print("torch", torch.__version__)')" "$threads" "$pt"
printf 'ratio culturelens / PyTorch:                %6.2f\n' "$(awk -v a="$cl" -v b="$pt" 'BEGIN { print a / b }')"
