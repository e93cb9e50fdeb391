#!/usr/bin/env bash
# The kill -9 soak (issue 14): the real `roster run` is killed with SIGKILL at random moments
# over many runs while a fake HRIS changes between syncs and a webhook receiver fails 20% of
# deliveries; then a checker proves lost = none, unexpected = none, duplicates only with the
# same webhook-id, and the published directory equal to the HRIS. Prints its figures.
#
# Usage: bench/soak.sh                       50 runs, a fresh seed (printed)
#        ROSTER_SOAK_SEED=1234 bench/soak.sh replay a failure: same HRIS changes, kill delays
#                                            and receiver failures
# Settings (environment): ROSTER_SOAK_RUNS (default 50), ROSTER_SOAK_SEED,
#   ROSTER_SOAK_MAX_KILL_MS (kill delay after each start, uniform in 0..=this; default 10000),
#   ROSTER_SOAK_PEOPLE (initial head count; default 150).
# On failure the config, state databases and per-run daemon logs stay in the directory the
# test names (under $TMPDIR); on success they are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --test it soak::soak_kill_9 -- --ignored --nocapture "$@"
