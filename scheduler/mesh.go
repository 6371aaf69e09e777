package scheduler

import (
	"regexp"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

var meshServiceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// normalizeService checks a deployment's mesh registration (deploy --service NAME --port P).
func normalizeService(s *api.DeploymentSpec) error {
	if s.Service == "" {
		if s.ServicePort != 0 || s.ServiceProtocol != "" || s.HealthCheck != "" {
			return httpapi.BadRequest(`field "service" is required with "port", "protocol" or "health_check" (deploy --service NAME --port P)`)
		}
		return nil
	}
	if !meshServiceRE.MatchString(s.Service) {
		return httpapi.BadRequest(`invalid field "service" %q: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit`, s.Service)
	}
	if s.ServicePort < 1 || s.ServicePort > 65535 {
		return httpapi.BadRequest(`invalid field "port" %d: the port the instances serve, 1-65535 (deploy --service %s --port 8080)`, s.ServicePort, s.Service)
	}
	switch s.ServiceProtocol {
	case "", "http", "tcp", "grpc":
	default:
		return httpapi.BadRequest(`invalid field "protocol" %q: http, tcp or grpc`, s.ServiceProtocol)
	}
	if s.HealthCheck != "" && (!strings.HasPrefix(s.HealthCheck, "/") || len(s.HealthCheck) > 256 || strings.ContainsAny(s.HealthCheck, " \t\r\n")) {
		return httpapi.BadRequest(`invalid field "health_check" %q: an HTTP path like /health`, s.HealthCheck)
	}
	return nil
}

// MeshService is the mesh registration a deployment instance asks for (ok false: the
// instance is not a deployment's, or its deployment registers no service).
func (s *Scheduler) MeshService(instance string) (deployment, service, namespace, protocol, healthCheck string, port int, ok bool) {
	s.st.View(func(v *state.View) {
		b, _, has := v.GetLWW(CollClaims, instance)
		var c ClaimRecord
		if !has || state.Decode(b, &c) != nil {
			return
		}
		b, _, has = v.GetLWW(CollDeployments, c.Deployment)
		var d DeploymentRecord
		if !has || state.Decode(b, &d) != nil || d.Deleted || d.Service == "" {
			return
		}
		deployment, service, namespace, protocol, healthCheck, port, ok = c.Deployment, d.Service, d.Namespace, d.ServiceProtocol, d.HealthCheck, d.ServicePort, true
	})
	return
}
