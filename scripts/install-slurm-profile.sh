#!/bin/sh
# `make slurm-profile`: install profiles/slurm as the global Snakemake profile `slurm`, so
# that `snakemake --profile slurm` finds it (Snakemake looks for a bare profile name in
# the working directory, then $XDG_CONFIG_HOME/snakemake or ~/.config/snakemake, then
# the site's /etc/xdg/snakemake).
#
# An existing profile of that name that differs is never replaced silently: the script
# stops and says what to do (FORCE=1 replaces it and keeps the old one as
# config.yaml.bak). On a cluster whose sacct cannot answer (no accounting database), the
# installed copy polls job states with squeue instead, as the SLURM plugin's docs advise.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
source_file="$here/profiles/slurm/config.yaml"
config_home=${XDG_CONFIG_HOME:-${HOME:?HOME is not set}/.config}
target_dir="$config_home/snakemake/slurm"
target="$target_dir/config.yaml"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cp "$source_file" "$tmp"
# `sacct` that exists but reports accounting disabled would leave Snakemake waiting
# forever for its jobs to end.
if command -v sacct >/dev/null 2>&1 \
    && sacct --noheader -X --starttime now 2>&1 | grep -qi "accounting storage is disabled"; then
    min_age=$(scontrol show config 2>/dev/null | sed -n 's/^MinJobAge *= *\([0-9]*\).*/\1/p')
    {
        echo ""
        echo "# Added by make slurm-profile: this cluster keeps no accounting database"
        echo "# (sacct: accounting storage is disabled), so job states come from squeue,"
        echo "# which sees a finished job for MinJobAge seconds (${min_age:-unknown} here)."
        echo "slurm-status-command: squeue"
    } >> "$tmp"
    echo "make slurm-profile: this cluster has no accounting database; the profile polls squeue"
    if [ -n "$min_age" ] && [ "$min_age" -lt 600 ]; then
        echo "make slurm-profile: warning: MinJobAge is $min_age s; below ~600 s Snakemake can" \
             "miss finished jobs (ask your admins, or see docs/slurm.md)" >&2
    fi
fi

if [ -e "$target" ]; then
    if cmp -s "$tmp" "$target"; then
        echo "make slurm-profile: $target_dir is already this profile; nothing to do"
        exit 0
    fi
    if [ "${FORCE:-0}" != 1 ]; then
        echo "make slurm-profile: $target already exists and differs from profiles/slurm;" \
             "left as it is. Compare them (diff $source_file $target), or replace it with" \
             "make slurm-profile FORCE=1 (the old file is kept as config.yaml.bak)" >&2
        exit 1
    fi
    cp "$target" "$target.bak"
    echo "make slurm-profile: replacing $target (the old file is $target.bak)"
fi
mkdir -p "$target_dir"
cp "$tmp" "$target"
echo "make slurm-profile: installed $target; run the study with: snakemake --profile slurm"
