#!/bin/sh
# The quick start from a fresh clone: sets up (see setup.sh), then fine-tunes the embedded
# all-MiniLM-L6-v2 on the bundled sample data into runs/quickstart, which each call
# overwrites. Extra arguments are more flags (--num_train_epochs=1, --precision=fp32).
set -eu
. "$(dirname "$0")/setup.sh"
exec "$ENV_DIR/bin/run_classifier" --task_name=sentence_similarity \
    --data_dir="$ROOT/data/sentence_similarity" --output_dir="$ROOT/runs/quickstart" \
    --overwrite_output_dir --do_train --do_eval --do_predict --learning_rate=1e-4 "$@"
