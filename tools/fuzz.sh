#!/usr/bin/env bash
# Run the fuzz targets in tests/fuzz for a while, with fresh random seeds each round.
#   bash tools/fuzz.sh --minutes 10        (default 5 minutes; extra arguments go to pytest,
#   bash tools/fuzz.sh --minutes 2 -k acs   e.g. -k to pick targets)
# Each round runs every target with the "long" hypothesis profile (2000 inputs per target).
# A failing round stops the run; hypothesis prints the smallest input that failed and keeps it in
# .hypothesis/ so the next run tries it first. Prints rounds, inputs and duration at the end.
set -eu
cd "$(dirname "$0")/.."
minutes=5
if [ "${1:-}" = "--minutes" ]; then
    minutes="$2"
    shift 2
fi
end=$(( $(date +%s) + minutes * 60 ))
start=$(date +%s)
rounds=0
export KB_FUZZ_PROFILE=long
while [ "$(date +%s)" -lt "$end" ]; do
    seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    echo "== round $((rounds + 1)), seed $seed"
    .venv/bin/python -m pytest -q tests/fuzz -p no:randomly --hypothesis-seed="$seed" "$@"
    rounds=$((rounds + 1))
done
echo "fuzzing clean: $rounds round(s) of every target, $(( ($(date +%s) - start) / 60 )) minute(s)"
