#!/usr/bin/env bash
# Video-R1-260k (RL data of Video-R1) → canonical manifest → TAD cache for training.
#   bash data_prep/video_r1.sh --yes [OUT=data/video-r1] [NUM_FRAMES=16]
# Needs Hub access and ~1 TB of disk for the videos. REPO is the public copy at the time of writing; override it if
# it moved. Image rows are skipped (add --keep_images to `kfgrpo prepare` to keep them).
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-data/video-r1}; REPO=${REPO:-Video-R1/Video-R1-data}; NUM_FRAMES=${NUM_FRAMES:-16}
hub_download "$REPO" "$OUT/raw" "the questions and about 1 TB of videos" large
for z in "$OUT"/raw/*.zip; do [[ -e "$z" ]] && unzip -qn "$z" -d "$OUT/raw"; done
"$KFGRPO" prepare --format video-r1 --input "$OUT/raw/Video-R1-260k.json" --video-root "$OUT/raw" \
    --output "$OUT/manifest.jsonl"
"$KFGRPO" tad --manifest "$OUT/manifest.jsonl" --output "$OUT-tad" --num-frames "$NUM_FRAMES" \
    --max-pixels 100352 --num-proc "$(nproc)"
