#!/bin/sh
# One worker of the data pipeline (the seed's "process.rads"): reads INPUT_FILE, a file of
# /data/raw (the DFS tree /cluster/data, mounted with --mount-fs /cluster/data:/data), and
# writes its result to /data/processed/NAME.out. The result is written under a temporary
# name and renamed: the DFS gets it as one new version at close, and readers never see
# half a result.
set -eu
name=$(basename "$INPUT_FILE")
mkdir -p /data/processed
out=/data/processed/$name.out
{
	echo "file: $name"
	echo "lines: $(($(wc -l <"$INPUT_FILE")))"
	echo "words: $(($(wc -w <"$INPUT_FILE")))"
	echo "bytes: $(($(wc -c <"$INPUT_FILE")))"
	echo "first: $(head -n 1 "$INPUT_FILE" | tr '[:lower:]' '[:upper:]')"
} >"$out.part"
mv "$out.part" "$out"
echo "processed $name on node $CONSTELLATION_NODE"
