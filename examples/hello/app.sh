#!/bin/sh
# A tiny instance program: greets, asks its node's API about the cluster (with the
# instance's own token), then counts until stopped.
echo "hello from $CONSTELLATION_INSTANCE on node $CONSTELLATION_NODE (GREETING=$GREETING)"
if command -v wget >/dev/null 2>&1; then
	wget -qO- --header "Authorization: Bearer $CONSTELLATION_API_TOKEN" "$CONSTELLATION_API/v1/resources" |
		grep -E '"(cpu_total|ram_available_gb)"' | head -2
fi
i=0
trap 'echo "stopping after $i ticks"; exit 0' TERM
while :; do
	i=$((i + 1))
	echo "tick $i"
	sleep 1
done
