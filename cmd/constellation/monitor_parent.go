package main

import "github.com/spf13/cobra"

// newMonitorCmd is the monitor parent command. The telemetry branches each add their
// subcommands (addAlertCommands here); the lead reconciles this file with the metrics
// branch's monitor command at merge.
func newMonitorCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Monitoring: alert rules, active alerts, silences and notification channels",
	}
	addAlertCommands(g, c)
	return c
}
