package p2p

import "github.com/libp2p/go-libp2p/core/protocol"

// ProtocolID returns the cluster-scoped ID of a protocol named name, on the scheme of the
// host's own protocols: ProtocolID("instances/1.0.0") is
// "/constellation/<cluster-hash>/instances/1.0.0". Nodes of other clusters do not speak
// it. Register a handler for it on Libp2p(), whose SetStreamHandler admits members only.
func (h *Host) ProtocolID(name string) protocol.ID {
	return protocol.ID("/constellation/" + h.hash + "/" + name)
}
