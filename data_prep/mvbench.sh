#!/usr/bin/env bash
# MVBench: json/<task>.json + video/..., ready for `kfgrpo eval --benchmark mvbench --data $OUT`.
#   bash data_prep/mvbench.sh --yes [OUT=data/mvbench]
# MVBench's video/ holds each source dataset's own layout; the reader looks for video/<task>/<file>, then
# video/<file>; pass --video_root to `kfgrpo eval` when yours differs. Frame-folder tasks count as unreadable.
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-data/mvbench}; REPO=${REPO:-OpenGVLab/MVBench}
hub_download "$REPO" "$OUT" "the questions and every task's videos" large
for z in "$OUT"/video/*.zip; do [[ -e "$z" ]] && unzip -qn "$z" -d "$OUT/video"; done
ls "$OUT"/json/*.json | head -n 3
