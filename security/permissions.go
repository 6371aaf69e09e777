package security

// Permissions lists the "resource:verb" permissions the identity holds, in the order of
// Resources and Verbs (the web dashboard shows only the actions they allow). The node's
// socket and bootstrap token hold every one; an instance caller none of the table's (the
// instance service rules it).
func (id Identity) Permissions() []string {
	out := []string{}
	for _, res := range Resources {
		for _, v := range Verbs {
			p := Perm(res + ":" + v)
			if id.allows(p) {
				out = append(out, string(p))
			}
		}
	}
	return out
}

func (id Identity) allows(p Perm) bool {
	switch id.Kind {
	case "socket", "bootstrap":
		return true
	case "token":
		return id.policy != nil && id.policy.Allows(p)
	}
	return false
}
