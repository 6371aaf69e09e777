// Package alert is constellation's alerting (docs/alerts.md): alert rules in PromQL
// (threshold rules with for/severity/labels/templated messages, and anomaly rules that
// fire when a series leaves a learned seasonal band), silences, and notification channels
// (webhook, Slack, PagerDuty Events v2, email over SMTP with STARTTLS, Alertmanager
// webhook) with retries and a replicated delivery history.
//
// Rules, silences and channels are replicated records (state.Encode) in their own
// collections. Each rule is evaluated by exactly one alive node, the rendezvous-hash owner
// of its name among the nodes not dead; when the owner dies the next one in rank takes
// over. The owner keeps the rule's firing state (its alerts, since when, when each was
// notified) in a replicated StateRecord and writes the notification marks in the same
// record as the transition, before delivery; the node then pushes that record to the
// alive members (Config.Replicate) before the message leaves, so a new owner reads the
// marks and sends nothing twice even when the old one dies right after sending. Step is the pure state machine (time and silences injected); Service is the thin
// runner (query, Step, write, deliver). The metrics it queries come through the Querier
// interface (the cluster-wide querier in a node; EngineQuerier over any Queryable).
package alert
