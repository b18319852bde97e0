#!/usr/bin/env bash
# frames_doc.sh BUILD — docs/FRAMES.md is what tools/schema_doc prints from
# schemas/tally_frames_v1.h. Fails (TAP "not ok") when someone changed the
# schema without `make docs`, or edited the generated file by hand.
set -uo pipefail
build=${1:?build dir}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
echo "1..1"
tool="$build/tools/schema_doc"
if [ ! -x "$tool" ]; then echo "not ok 1 - $tool not built"; exit 1; fi
if diff -u docs/FRAMES.md <("$tool" schemas/tally_frames_v1.h); then
  echo "ok 1 - docs/FRAMES.md matches tools/schema_doc output"
else
  echo "not ok 1 - docs/FRAMES.md is stale: run make docs"
  exit 1
fi
