#!/usr/bin/env bash
# LVBench: the question JSONL (key, qa[uid, question, answer, question_type, time_reference]) and its videos as
# <key>.mp4 under videos/, ready for `kfgrpo eval --benchmark lvbench --data $OUT/video_info.meta.jsonl`.
#   bash data_prep/lvbench.sh [OUT=data/lvbench]
# LVBench distributes YouTube ids, not videos: fetch the videos with your own downloader into $OUT/videos.
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-data/lvbench}; REPO=${REPO:-lmms-lab/LVBench}
hub_download "$REPO" "$OUT" "the questions; no videos"
mkdir -p "$OUT/videos"
echo "questions: $(ls "$OUT"/*.jsonl); videos expected as $OUT/videos/<key>.mp4"
