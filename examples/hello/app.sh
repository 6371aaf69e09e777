#!/bin/sh
# A tiny instance program: greets, asks its node's API about the cluster (through the
# instance's socket with its own token; created with --grant nodes:read), then counts until
# stopped.
echo "hello from $CONSTELLATION_INSTANCE on node $CONSTELLATION_NODE (GREETING=$GREETING)"
if command -v curl >/dev/null 2>&1; then
	curl -s --unix-socket "${CONSTELLATION_API#unix:}" \
		-H "Authorization: Bearer $(cat "$CONSTELLATION_API_TOKEN_FILE")" http://node/v1/resources |
		grep -E '"(cpu_total|ram_available_gb)"' | head -2
fi
i=0
trap 'echo "stopping after $i ticks"; exit 0' TERM
while :; do
	i=$((i + 1))
	echo "tick $i"
	sleep 1
done
