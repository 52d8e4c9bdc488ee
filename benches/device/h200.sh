#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, with .device and .gl carried in
# (benches/device/prepare.sh makes them): the golden tests in exact and fast mode, the
# tensor-core kernel test, then `culturelens bench` in fast mode (28 layers)
# and exact mode (4 layers: the f32 path is far slower). Logs go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/culturelens-device}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
built_at=$(cat .device/built_at)
if [ "$built_at" != "$PWD" ]; then
    mkdir -p "$(dirname "$built_at")"
    ln -sfn "$PWD" "$built_at"
fi
bin=.device/bin
"$bin/culturelens" devices 2>&1 | tee "$out/devices.txt"
for t in kernels attention golden_text golden_qwen2_5_vl golden_llava_next; do
    echo "== $t"
    timeout 300 "$bin/$t" --test-threads 1 --nocapture 2>&1 | grep -E "NMSE|fast|test |result|panicked" | tee -a "$out/tests.txt"
done
echo "== bench fast"
timeout 240 "$bin/culturelens" --precision fast bench --tokens 4096 --layers 28 --iters 3 2>&1 | tee "$out/bench-fast.txt"
echo "== bench exact"
timeout 200 "$bin/culturelens" --precision exact bench --tokens 4096 --layers 4 --iters 1 2>&1 | tee "$out/bench-exact.txt"
