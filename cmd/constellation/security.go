package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rads-lang/constellation/api"
)

// securityCommands are token, role, whoami and audit (docs/security.md).
func securityCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newTokenCmd(g), newRoleCmd(g), newWhoAmICmd(g), newAuditCmd(g), newSecretsCmd(g), newNamespaceCmd(g)}
}

func newTokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (roles: admin, operator, viewer or custom)",
		Long: `An API token lets a caller use the node's TCP API (--api HOST:PORT --token SECRET) with a
role's permissions, optionally bound to one namespace. The secret is printed once at create;
nodes keep only its SHA-256. Tokens are replicated: every node accepts them, and a revoked
token is refused everywhere (its open streams end) as soon as the change reaches the node.`,
	}
	c.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return c
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var (
		req    api.TokenCreateRequest
		ttl    time.Duration
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--namespace NS] [--ttl 24h]",
		Short: "Create a token and print its secret (shown only this once)",
		Example: `  constellation token create --name ci --role operator --namespace team-a --ttl 24h
  constellation token create --name dashboards --role viewer`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if req.Name == "" || req.Role == "" {
				return fmt.Errorf("--name and --role are required, e.g. --name ci --role operator")
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: give a positive duration such as 24h", ttl)
			}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			t, err := g.client().CreateToken(c.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), t)
			}
			fmt.Fprintf(c.OutOrStdout(), "token %s (%s), role %s%s%s\n", t.Name, t.ID, t.Role, nsSuffix(t.Namespace), expiresSuffix(t.Expires))
			fmt.Fprintf(c.OutOrStdout(), "secret (shown once; store it now): %s\n", t.Secret)
			return nil
		},
	}
	c.Flags().StringVar(&req.Name, "name", "", "the token's name (shown in the audit log)")
	c.Flags().StringVar(&req.Role, "role", "", "admin, operator, viewer or a custom role")
	c.Flags().StringVar(&req.Namespace, "namespace", "", "bind the token to this namespace")
	c.Flags().DurationVar(&ttl, "ttl", 0, "expire the token after this long (e.g. 24h; default never)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the secret)")
	return c
}

func nsSuffix(ns string) string {
	if ns == "" {
		return ""
	}
	return ", namespace " + ns
}

func expiresSuffix(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ", expires " + t.Format(time.RFC3339)
}

func newTokenListCmd(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ts, err := g.client().Tokens(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ts)
			}
			t := newTable(c.OutOrStdout(), "ID", "NAME", "ROLE", "NAMESPACE", "STATUS", "CREATED", "EXPIRES", "CREATED_BY")
			for _, x := range ts {
				ns, exp := x.Namespace, "never"
				if ns == "" {
					ns = "*"
				}
				if x.Expires != nil {
					exp = x.Expires.Format(time.RFC3339)
				}
				t.row(x.ID, x.Name, x.Role, ns, x.Status, ago(x.Created), exp, x.CreatedBy)
			}
			return t.flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return c
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke a token cluster-wide (its open streams end)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t, err := g.client().RevokeToken(c.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "token %s (%s) revoked\n", t.Name, t.ID)
			return nil
		},
	}
}

func newRoleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "role",
		Short: "Create, list and remove custom roles (lists of resource:verb rules)",
	}
	var rules []string
	create := &cobra.Command{
		Use:     "create NAME --rule RESOURCE:VERB ...",
		Short:   "Create or replace a custom role",
		Example: `  constellation role create deployer --rule deployments:write --rule instances:read`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(rules) == 0 {
				return fmt.Errorf("at least one --rule is required, e.g. --rule instances:read")
			}
			r, err := g.client().CreateRole(c.Context(), api.RoleRequest{Name: args[0], Rules: rules})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "role %s: %s\n", r.Name, strings.Join(r.Rules, " "))
			return nil
		},
	}
	create.Flags().StringArrayVar(&rules, "rule", nil, "a resource:verb rule (verbs read, write; * for any)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List built-in and custom roles",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			rs, err := g.client().Roles(c.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), rs)
			}
			t := newTable(c.OutOrStdout(), "NAME", "BUILTIN", "RULES")
			for _, r := range rs {
				t.row(r.Name, strconv.FormatBool(r.Builtin), strings.Join(r.Rules, " "))
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a custom role (its tokens are refused from then on)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveRole(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "role %s removed\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, list, rm)
	return c
}

func newWhoAmICmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the node takes this caller for (kind, name, role, namespace)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			w, err := g.client().WhoAmI(c.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s %s, role %s%s\n", w.Kind, w.Name, w.Role, nsSuffix(w.Namespace))
			return nil
		},
	}
}

func newAuditCmd(g *globals) *cobra.Command {
	var (
		since, who, route string
		limit             int
		asJSON            bool
	)
	c := &cobra.Command{
		Use:   "audit [--since 1h] [--who NAME] [--route SUBSTR] [--json]",
		Short: "Show the audit log of every node (mutating calls: who, what, result), merged by time",
		Example: `  constellation audit --since 1h --who ci
  constellation audit verify`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"since": since, "who": who, "route": route} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			res, err := g.client().Audit(c.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), res)
			}
			t := newTable(c.OutOrStdout(), "TIME", "NODE", "CALLER", "ROUTE", "TARGET", "STATUS", "REQUEST_ID")
			for _, e := range res.Entries {
				caller := e.Caller
				if e.CallerID != "" {
					caller += " (" + e.CallerID + ")"
				}
				t.row(e.Time.Format(time.RFC3339), e.Node, caller, e.Route, e.Target, strconv.Itoa(e.Status), e.RequestID)
			}
			if err := t.flush(); err != nil {
				return err
			}
			for node, e := range res.Errors {
				fmt.Fprintf(c.ErrOrStderr(), "constellation: node %s did not answer: %s\n", node, e)
			}
			return nil
		},
	}
	c.Flags().StringVar(&since, "since", "", "only entries since this long ago (1h) or this time (RFC 3339)")
	c.Flags().StringVar(&who, "who", "", "only this caller (token name or ID, instance name, socket, bootstrap)")
	c.Flags().StringVar(&route, "route", "", "only routes containing this text (e.g. /v1/instances)")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many entries, the newest (default 2000 per node)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(&cobra.Command{
		Use:   "verify",
		Short: "Check every node's audit hash chain (exit 1 when a line was changed or removed)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			vs, err := g.client().AuditVerify(c.Context())
			if err != nil {
				return err
			}
			bad := false
			for _, v := range vs {
				if v.OK {
					fmt.Fprintf(c.OutOrStdout(), "%s: ok (%d entries)\n", v.Node, v.Entries)
				} else {
					bad = true
					fmt.Fprintf(c.OutOrStdout(), "%s: FAILED: %s\n", v.Node, v.Error)
				}
			}
			if bad {
				return exitError{1}
			}
			return nil
		},
	})
	return c
}

func newSecretsCmd(g *globals) *cobra.Command {
	var ns string
	c := &cobra.Command{
		Use:   "secrets",
		Short: "Store secrets encrypted in the cluster and give them to instances (create --secret NAME)",
		Long: `Secrets are encrypted (XChaCha20-Poly1305, a data key derived from the cluster key) before
they enter the replicated state; only the node that runs an instance decrypts the instance's
secrets, at each start, into its environment. list shows names, versions, who and when, never
values; get (admin only) prints a value. The cluster needs a cluster key (--cluster-key).`,
	}
	c.PersistentFlags().StringVar(&ns, "namespace", "", "the secret's namespace (default \"default\")")
	var fromFile string
	set := &cobra.Command{
		Use:   "set NAME [VALUE | --from-file FILE | -]",
		Short: "Store a new version of a secret (VALUE, a file, or - for standard input)",
		Example: `  constellation secrets set db_password --from-file ./pw.txt
  printf %s "$PW" | constellation secrets set db_password -`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			var value []byte
			switch {
			case fromFile != "" && len(args) == 2:
				return fmt.Errorf("give the value either as an argument or with --from-file, not both")
			case fromFile != "":
				b, err := os.ReadFile(fromFile)
				if err != nil {
					return fmt.Errorf("--from-file: %w", err)
				}
				value = b
			case len(args) == 2 && args[1] == "-":
				b, err := io.ReadAll(io.LimitReader(c.InOrStdin(), 1<<20))
				if err != nil {
					return fmt.Errorf("reading the value from standard input: %w", err)
				}
				value = b
			case len(args) == 2:
				value = []byte(args[1])
			default:
				return fmt.Errorf("give the value: secrets set %s VALUE, --from-file FILE, or - to read standard input", args[0])
			}
			in, err := g.client().SetSecret(c.Context(), ns, args[0], string(value))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "secret %s/%s version %d stored\n", in.Namespace, in.Name, in.Version)
			return nil
		},
	}
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List secrets: names, versions, who and when (never values)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ss, err := g.client().Secrets(c.Context(), ns)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.OutOrStdout(), ss)
			}
			t := newTable(c.OutOrStdout(), "NAMESPACE", "NAME", "VERSION", "VERSIONS_KEPT", "UPDATED", "BY")
			for _, s := range ss {
				t.row(s.Namespace, s.Name, strconv.Itoa(s.Version), strconv.Itoa(len(s.Versions)), ago(s.Updated), s.UpdatedBy)
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a secret and its versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.client().RemoveSecret(c.Context(), ns, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "secret %s removed\n", args[0])
			return nil
		},
	}
	var version int
	get := &cobra.Command{
		Use:   "get NAME [--version N]",
		Short: "Print a secret's value (admin only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			v, err := g.client().RevealSecret(c.Context(), ns, args[0], version)
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), v.Value)
			if !strings.HasSuffix(v.Value, "\n") && isTerminal(os.Stdout) {
				fmt.Fprintln(c.OutOrStdout())
			}
			return nil
		},
	}
	get.Flags().IntVar(&version, "version", 0, "this version (default the latest)")
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-encrypt every secret with a new key generation",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := g.client().RotateSecretKey(c.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "key generation %s (%d in all): %d versions of %d secrets re-encrypted\n", r.KeyGeneration, r.Generations, r.Versions, r.Secrets)
			return nil
		},
	}
	c.AddCommand(set, list, rm, get, rotate)
	return c
}
