#!/usr/bin/env bash
# Video-MME in its public Hub layout (videomme/test-*.parquet + data/<videoID>.mp4), ready for `kfgrpo eval`.
#   bash data_prep/videomme.sh --yes [OUT=data/videomme]
source "$(dirname "$0")/_common.sh"
OUT=${OUT:-data/videomme}; REPO=${REPO:-lmms-lab/Video-MME}
hub_download "$REPO" "$OUT" "the questions and every video, zipped" large
for z in "$OUT"/videos_chunked_*.zip; do [[ -e "$z" ]] && unzip -qn "$z" -d "$OUT"; done
ls "$OUT"/videomme/test-*.parquet >/dev/null && ls "$OUT"/data/*.mp4 | head -n 1
