package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

func newNamespaceCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:     "namespace",
		Aliases: []string{"ns"},
		Short:   "Create, list, show and delete namespaces (quota, auto-delete; docs/security.md)",
	}
	var (
		q       api.QuotaSpec
		autoDel time.Duration
		asJSON  bool
	)
	create := &cobra.Command{
		Use:     "create NAME [--max-cpu-cores N --max-ram-gb N --max-instances N] [--auto-delete-after 24h]",
		Short:   "Create a namespace with a quota; with --auto-delete-after it deletes itself and everything in it",
		Example: `  constellation namespace create alice --max-cpu-cores 8 --max-ram-gb 16 --max-instances 10 --auto-delete-after 24h`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req := api.NamespaceRequest{Name: args[0], Quota: q}
			if autoDel < 0 {
				return fmt.Errorf("--auto-delete-after %s: give a positive duration such as 24h", autoDel)
			}
			if autoDel > 0 {
				req.AutoDeleteAfter = autoDel.String()
			}
			in, err := g.client().CreateNamespace(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), in)
			}
			fmt.Fprintf(c.OutOrStdout(), "namespace %s created%s\n", in.Name, expiresSuffix(in.Expires))
			return nil
		},
	}
	create.Flags().Float64Var(&q.MaxCPUCores, "max-cpu-cores", 0, "quota: CPU cores of the namespace's deployments")
	create.Flags().Float64Var(&q.MaxRAMGB, "max-ram-gb", 0, "quota: RAM in GiB")
	create.Flags().IntVar(&q.MaxInstances, "max-instances", 0, "quota: instances")
	create.Flags().DurationVar(&autoDel, "auto-delete-after", 0, "delete the namespace and everything in it this long after now (e.g. 24h)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list := &cobra.Command{
		Use:   "list",
		Short: "List namespaces (deleted ones too, until forever: their tombstones)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ns, err := g.client().Namespaces(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ns)
			}
			t := newTable(c.OutOrStdout(), "NAME", "STATUS", "CREATED", "EXPIRES", "MAX_CPU_CORES", "MAX_RAM_GB", "MAX_INSTANCES")
			for _, n := range ns {
				exp := "never"
				if n.Expires != nil {
					exp = n.Expires.Format(time.RFC3339)
				}
				cpu, ram, inst := "-", "-", "-"
				if n.Quota != nil {
					cpu, ram, inst = strconv.FormatFloat(n.Quota.MaxCPUCores, 'f', -1, 64), strconv.FormatFloat(n.Quota.MaxRAMGB, 'f', -1, 64), strconv.Itoa(n.Quota.MaxInstances)
				}
				t.row(n.Name, n.Status, ago(n.Created), exp, cpu, ram, inst)
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a namespace (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			n, err := g.client().Namespace(c.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(c.OutOrStdout(), n)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a namespace and everything in it, on every node (nodes down clean up when they return)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := g.client().DeleteNamespace(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "namespace %s deleted: its instances, deployments, secrets, tokens and quota are being removed\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, list, show, del)
	return c
}
