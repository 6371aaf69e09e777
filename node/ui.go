package node

import (
	"context"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/ui"
)

// newUI serves the web dashboard on the node's API listeners (package ui): its files under
// /ui/, sessions whose cookie stands for the token it logged in with, and the session
// routes; after the security service, which names the callers.
func (n *Node) newUI() {
	sessions := ui.NewSessions(ui.SessionsConfig{})
	front := &ui.Front{Sessions: sessions, Assets: ui.NewAssetServer(ui.Assets()), Metrics: ui.NewMetrics(n.registry, sessions)}
	n.api.SetFront(front.Wrap)
	ui.Register(n.api, sessions, n.uiWho)
	n.registerOverview()
}

// uiWho is the dashboard's view of a request's caller.
func (n *Node) uiWho(ctx context.Context) api.UISession {
	id := n.security.Caller(ctx)
	return api.UISession{Kind: id.Kind, Name: id.Name, ID: id.ID, Role: id.Role, Namespace: id.Namespace,
		Permissions: id.Permissions()}
}
