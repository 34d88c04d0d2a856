# Shared by the data_prep scripts: fail fast, read the arguments, find the kfgrpo CLI and the Hub CLI.
#   KEY=VALUE    sets that variable (the form the usage lines show; the environment works too)
#   --yes        confirms a large download (or YES=1)
#   --help       prints the script's usage and exits, touching nothing
set -euo pipefail
_script=$(basename "$0")
YES=${YES:-0}
for _arg in "$@"; do
    if [[ $_arg == -h || $_arg == --help ]]; then
        sed -n '2,/^source/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        echo "Arguments: KEY=VALUE sets a variable above; --yes confirms a large download; --help prints this."
        exit 0
    elif [[ $_arg == --yes || $_arg == -y ]]; then
        YES=1
    elif [[ $_arg =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
        export "${_arg?}"
    else
        echo "$_script: unknown argument '$_arg' (KEY=VALUE, --yes or --help)" >&2
        exit 2
    fi
done
KFGRPO=${KFGRPO:-$(command -v kfgrpo || echo .venv/bin/kfgrpo)}
HF=${HF:-$(command -v hf || echo .venv/bin/hf)}

# hub_download REPO DEST WHAT [large]: says what it downloads and where; a large one starts only with --yes.
hub_download() {
    local repo=$1 dest=$2 what=$3 large=${4:-}
    echo "$_script: downloading $repo ($what) to $dest"
    if [[ -n $large && $YES != 1 ]]; then
        echo "$_script: a large download ($what); rerun with --yes (or YES=1) to start it" >&2
        exit 2
    fi
    "$HF" download "$repo" --repo-type dataset --local-dir "$dest"
}
