#!/usr/bin/env bash
# Prepares a run of benches/device/h200.sh on a lent GPU machine that has no Rust toolchain:
# stripped release builds of culturelens and of the golden and kernel test binaries go to
# .device/bin, the Vulkan loader packages to .gl (both git-ignored). Then call the device tool
# with carry [".device", ".gl"] and the command `bash benches/device/h200.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests=(kernels attention golden_text golden_qwen2_5_vl golden_llava_next)
cargo build --release
rm -rf .device && mkdir -p .device/bin
strip -o .device/bin/culturelens target/release/culturelens
for t in "${tests[@]}"; do
    exe=$(cargo test --release --no-run --test "$t" --message-format=json 2>/dev/null |
        python3 -c 'import json,sys; t=sys.argv[1]; print([j["executable"] for j in map(json.loads, sys.stdin)
                    if j.get("executable") and j["target"]["name"] == t and j["target"]["kind"] == ["test"]][-1])' "$t")
    strip -o ".device/bin/$t" "$exe"
done
# Test binaries find their fixtures under the source path they were built from.
pwd > .device/built_at
if [ ! -d .gl ]; then
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p .gl /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update >/dev/null
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 >/dev/null)
fi
# The device tool carries at most 64 MiB with the working tree.
du -sh .device .gl
git ls-files -z | xargs -0 du -cb | tail -1
