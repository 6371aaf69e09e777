package alert

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"
)

// Templates are Prometheus alert templates (Go text/template with $labels, $value,
// humanize, ...). The seed's short forms are accepted: {{value}} is {{ $value }} and
// {{name}} for any other bare label name is {{ $labels.name }}.

var seedRE = regexp.MustCompile(`\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}`)

// Go template keywords that stand alone in an action: never label names.
var tmplKeywords = map[string]bool{"end": true, "else": true, "break": true, "continue": true, "nil": true, "true": true, "false": true}

// seedTemplate rewrites the seed's short forms into Prometheus template syntax.
func seedTemplate(s string) string {
	return seedRE.ReplaceAllStringFunc(s, func(m string) string {
		id := seedRE.FindStringSubmatch(m)[1]
		switch {
		case tmplKeywords[id]:
			return m
		case id == "value":
			return "{{ $value }}"
		default:
			return "{{ $labels." + id + " }}"
		}
	})
}

const tmplDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// checkTemplate refuses a template that does not parse (at rule creation, not at evaluation).
func checkTemplate(what, text string) error {
	if len(text) > maxTemplateLen {
		return invalidf("%s: template of %d bytes exceeds %d", what, len(text), maxTemplateLen)
	}
	if !strings.Contains(text, "{{") {
		return nil
	}
	e := template.NewTemplateExpander(context.Background(), tmplDefs+seedTemplate(text), "check", nil, 0, nil, nil, nil)
	if err := e.ParseTest(); err != nil {
		return invalidf("%s: %v", what, err)
	}
	return nil
}

// QueryFunc runs an instant query for the templates' query function.
type QueryFunc func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)

// expandTemplate expands text for one alert; an execution error is returned in the text
// (as Prometheus does) so a notification still leaves.
func expandTemplate(ctx context.Context, text string, lbls map[string]string, value float64, ts time.Time, q QueryFunc) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	var qf template.QueryFunc = func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		if q == nil {
			return nil, fmt.Errorf("no querier")
		}
		return q(ctx, expr, ts)
	}
	data := template.AlertTemplateData(lbls, nil, "", promql.Sample{F: value})
	e := template.NewTemplateExpander(ctx, tmplDefs+seedTemplate(text), "alert", data,
		model.TimeFromUnixNano(ts.UnixNano()), qf, nil, nil)
	out, err := e.Expand()
	if err != nil {
		return fmt.Sprintf("<error expanding template: %v>", err)
	}
	return out
}
