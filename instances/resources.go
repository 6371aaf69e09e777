package instances

import "github.com/rads-lang/constellation/api"

// Resources is GET /v1/resources: every node's capacity, allocation and use.
func (m *Service) Resources() api.ResourcesInfo { return m.resources() }
