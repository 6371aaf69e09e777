package api

import "regexp"

// DefaultNamespace is the namespace of deployments and instances created without one.
const DefaultNamespace = "default"

// NamespaceRule describes a valid namespace name (for error messages).
const NamespaceRule = "1-63 lowercase letters, digits or '-', starting and ending with a letter or digit, e.g. team-backend"

var namespaceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidNamespace reports whether ns is a valid namespace name (NamespaceRule).
func ValidNamespace(ns string) bool { return namespaceRE.MatchString(ns) }
