#!/usr/bin/env bash
# NExT-QA multiple choice (CSV with a0..a4) → canonical manifest → TAD cache.
#   VIDEOS=/path/to/NExTVideo bash data_prep/nextqa.sh [SPLIT=val]
# The CSVs come from the NExT-QA repository (github.com/doc-doc/NExT-QA, dataset/nextqa/{train,val,test}.csv); the
# videos (VidOR) are distributed separately: point VIDEOS at the folder that holds <video>.mp4 files.
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-data/nextqa}; SPLIT=${SPLIT:-val}; NUM_FRAMES=${NUM_FRAMES:-16}
: "${VIDEOS:?set VIDEOS to the folder with the NExT-QA videos}"
mkdir -p "$OUT"
curl -fsSL -o "$OUT/$SPLIT.csv" "https://raw.githubusercontent.com/doc-doc/NExT-QA/main/dataset/nextqa/$SPLIT.csv"
"$KFGRPO" prepare --format nextqa --input "$OUT/$SPLIT.csv" --video-root "$VIDEOS" --output "$OUT/$SPLIT.jsonl"
"$KFGRPO" tad --manifest "$OUT/$SPLIT.jsonl" --video_root "$VIDEOS" --output "$OUT/$SPLIT-tad" --num-frames "$NUM_FRAMES"
