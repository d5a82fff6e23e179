package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/subscription"
)

const defaultServer = "http://127.0.0.1:8080"

// apiFlags are the subs command's persistent flags: where the server is
// and how to print.
type apiFlags struct {
	server, token, output string
}

// client resolves flags against HERALD_SERVER and HERALD_TOKEN at run time,
// so the environment of the run counts, not that of the command's
// construction.
func (f *apiFlags) client() (*apiclient.Client, string, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, "", err
	}
	server := firstNonEmpty(f.server, os.Getenv("HERALD_SERVER"), defaultServer)
	token := firstNonEmpty(f.token, os.Getenv("HERALD_TOKEN"))
	if token == "" {
		return nil, "", errors.New("no API token: pass --token or set HERALD_TOKEN")
	}
	return apiclient.New(server, token, apiclient.WithUserAgent("herald-cli")), server, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// explain turns an API or transport error into a message that says what to
// do about it.
func explain(op, server string, err error) error {
	var apiErr *apiclient.Error
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &apiErr):
		msg := apiErr.Message
		if apiErr.Field != "" {
			msg = fmt.Sprintf("field %q: %s", apiErr.Field, msg)
		}
		msg = fmt.Sprintf("%s: %s (HTTP %d", op, msg, apiErr.Status)
		if apiErr.Code != "" {
			msg += " " + apiErr.Code
		}
		msg += ")"
		if apiErr.Status == 401 {
			msg += "; check --token or HERALD_TOKEN"
		}
		return errors.New(msg)
	case errors.As(err, &opErr) || errors.As(err, &netErr):
		return fmt.Errorf("%s: cannot reach herald at %s (set --server or HERALD_SERVER): %w", op, server, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// NewSubsCommand returns `herald subs`, which manages subscriptions on a
// running server through its admin API.
func NewSubsCommand() *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "subs",
		Short: "Manage webhook subscriptions on a running herald server",
	}
	f.register(cmd)
	cmd.AddCommand(
		newSubsCreate(f),
		newSubsList(f),
		newSubsGet(f),
		newSubsUpdate(f),
		newSubsDelete(f),
		newSubsRotate(f),
		newSubsStatus(f, "pause", subscription.StatusPaused),
		newSubsStatus(f, "resume", subscription.StatusActive),
		newSubsTest(f),
		newSubsAttempts(f),
	)
	for _, c := range cmd.Commands() {
		if c.Args != nil && c.Name() != "create" && c.Name() != "list" {
			c.ValidArgsFunction = completeSubscriptionIDs(f)
		}
	}
	return cmd
}

// register adds the persistent flags every client command has.
func (f *apiFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "admin API address (env HERALD_SERVER; default "+defaultServer+")")
	pf.StringVar(&f.token, "token", "", "admin API bearer token (env HERALD_TOKEN)")
	pf.StringVarP(&f.output, "output", "o", outputTable, "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))
}

// fieldFlags are the subscription fields create and update set from flags.
type fieldFlags struct {
	url, description, tenant, payload, thinURL, scheme, status string
	topics, types, headers                                     []string
	rateLimit, maxInFlight, maxAttempts                        int
	timeout                                                    time.Duration
	file                                                       string
}

func (ff *fieldFlags) register(cmd *cobra.Command, withStatus bool) {
	fl := cmd.Flags()
	fl.StringVar(&ff.url, "url", "", "endpoint URL the webhooks are POSTed to")
	fl.StringSliceVar(&ff.topics, "topic", nil, "source topic (repeatable or comma-separated)")
	fl.StringSliceVar(&ff.types, "type", nil, `event type or pattern such as "order.*" (repeatable or comma-separated)`)
	fl.StringVar(&ff.payload, "payload", "", "request body: envelope, raw or thin")
	fl.StringVar(&ff.thinURL, "thin-url-template", "", "resource URL template of thin payloads, e.g. https://api.example.com/orders/{id}")
	fl.StringVar(&ff.scheme, "signature-scheme", "", "standard or hex")
	fl.StringArrayVar(&ff.headers, "header", nil, "extra request header k=v (repeatable)")
	fl.IntVar(&ff.rateLimit, "rate-limit", 0, "requests per second to the endpoint")
	fl.IntVar(&ff.maxInFlight, "max-in-flight", 0, "concurrent requests to the endpoint")
	fl.DurationVar(&ff.timeout, "timeout", 0, "request timeout, e.g. 10s")
	fl.IntVar(&ff.maxAttempts, "max-attempts", 0, "attempts before dead-lettering")
	fl.StringVar(&ff.description, "description", "", "free text")
	fl.StringVar(&ff.tenant, "tenant", "", "tenant the subscription belongs to")
	if withStatus {
		fl.StringVar(&ff.status, "status", "", "active, paused or disabled")
	}
	fl.StringVarP(&ff.file, "file", "f", "", `read the JSON body from this file ("-" for stdin) instead of flags`)
}

// body builds the request body: the file's JSON as is, or the fields whose
// flags were set.
func (ff *fieldFlags) body(cmd *cobra.Command) (any, error) {
	fields := map[string]any{}
	fl := cmd.Flags()
	set := func(flag, key string, v any) {
		if fl.Changed(flag) {
			fields[key] = v
		}
	}
	set("url", "url", ff.url)
	set("topic", "topics", ff.topics)
	set("type", "event_types", ff.types)
	set("payload", "payload", ff.payload)
	set("thin-url-template", "thin_url_template", ff.thinURL)
	set("signature-scheme", "signature_scheme", ff.scheme)
	set("rate-limit", "rate_limit_per_second", ff.rateLimit)
	set("max-in-flight", "max_in_flight", ff.maxInFlight)
	set("max-attempts", "max_attempts", ff.maxAttempts)
	set("description", "description", ff.description)
	set("tenant", "tenant", ff.tenant)
	set("status", "status", ff.status)
	if fl.Changed("timeout") {
		if ff.timeout <= 0 || ff.timeout%time.Millisecond != 0 {
			return nil, fmt.Errorf("--timeout %s: must be a positive whole number of milliseconds", ff.timeout)
		}
		fields["timeout_ms"] = ff.timeout.Milliseconds()
	}
	if fl.Changed("header") {
		h := make(map[string]string, len(ff.headers))
		for _, kv := range ff.headers {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("--header %q: want name=value", kv)
			}
			h[strings.TrimSpace(k)] = v
		}
		fields["headers"] = h
	}
	if ff.file == "" {
		return fields, nil
	}
	if len(fields) > 0 {
		return nil, errors.New("--file cannot be combined with field flags")
	}
	raw, err := readFile(cmd.InOrStdin(), ff.file)
	if err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s: not valid JSON", ff.file)
	}
	return json.RawMessage(raw), nil
}

func readFile(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

func newSubsCreate(f *apiFlags) *cobra.Command {
	ff := &fieldFlags{}
	var signing string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a subscription and print its signing secret",
		Example: `  herald subs create --url https://example.com/hooks --topic orders --type 'order.*'
  herald subs create --file sub.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			body, err := ff.body(cmd)
			if err != nil {
				return err
			}
			if m, ok := body.(map[string]any); ok && m["url"] == nil {
				return errors.New("--url is required (or --file)")
			}
			if m, ok := body.(map[string]any); ok && signing != "" {
				m["signing"] = signing
			}
			created, err := c.CreateSubscription(cmdContext(cmd), body)
			if err != nil {
				return explain("create subscription", server, err)
			}
			out := cmd.OutOrStdout()
			if f.output == outputJSON {
				if err := printJSON(out, created); err != nil {
					return err
				}
			} else {
				if err := printSubscriptionDetail(out, &created.Subscription); err != nil {
					return err
				}
				fmt.Fprintf(out, "\nSecret: %s\n", created.Secret)
				if created.PublicKey != "" {
					fmt.Fprintf(out, "Public key: %s\n", created.PublicKey)
				}
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it will not be shown again.")
			return nil
		},
	}
	ff.register(cmd, false)
	cmd.Flags().StringVar(&signing, "signing", "", `"ed25519" to sign with a key pair too (v1a); receivers verify with the printed public key`)
	_ = cmd.RegisterFlagCompletionFunc("signing", cobra.FixedCompletions([]string{"hmac", "ed25519"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newSubsList(f *apiFlags) *cobra.Command {
	var opts apiclient.ListOptions
	var all, health bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List subscriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			if health {
				return listWithHealth(cmd, f, c, server, opts, all)
			}
			var p *apiclient.Page
			if all {
				subs, err := c.AllSubscriptions(cmdContext(cmd), opts)
				if err != nil {
					return explain("list subscriptions", server, err)
				}
				p = &apiclient.Page{Data: subs}
			} else if p, err = c.ListSubscriptions(cmdContext(cmd), opts); err != nil {
				return explain("list subscriptions", server, err)
			}
			if p.Data == nil {
				p.Data = []*subscription.Subscription{}
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			if err := printSubscriptionTable(cmd.OutOrStdout(), p.Data); err != nil {
				return err
			}
			if p.NextCursor != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "More subscriptions: --cursor %s (or --all)\n", p.NextCursor)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Topic, "topic", "", "only subscriptions to this topic")
	fl.StringVar(&opts.EventType, "type", "", "only subscriptions with this event type or pattern")
	fl.StringVar(&opts.Status, "status", "", "only subscriptions in this status")
	fl.StringVar(&opts.Tenant, "tenant", "", "only subscriptions of this tenant")
	fl.IntVar(&opts.Limit, "limit", 0, "page size (server default 50, max 500)")
	fl.StringVar(&opts.Cursor, "cursor", "", "continue after a previous page")
	fl.BoolVar(&all, "all", false, "follow the cursor to the last page")
	fl.BoolVar(&health, "health", false, "show each subscription's recent success rate, last error, circuit and dead letters")
	return cmd
}

// listWithHealth is list --health: the pages with include=health.
func listWithHealth(cmd *cobra.Command, f *apiFlags, c *apiclient.Client, server string, opts apiclient.ListOptions, all bool) error {
	out := &apiclient.DetailPage{Data: []*apiclient.Detail{}}
	for {
		p, err := c.ListDetails(cmdContext(cmd), opts)
		if err != nil {
			return explain("list subscriptions", server, err)
		}
		out.Data = append(out.Data, p.Data...)
		out.NextCursor = p.NextCursor
		if !all || p.NextCursor == "" {
			break
		}
		opts.Cursor = p.NextCursor
	}
	if f.output == outputJSON {
		return printJSON(cmd.OutOrStdout(), out)
	}
	if err := printHealthTable(cmd.OutOrStdout(), out.Data); err != nil {
		return err
	}
	if out.NextCursor != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "More subscriptions: --cursor %s (or --all)\n", out.NextCursor)
	}
	return nil
}

func newSubsGet(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			d, err := c.GetDetail(cmdContext(cmd), args[0])
			if err != nil {
				return explain("get "+args[0], server, err)
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), d)
			}
			if err := printSubscriptionDetail(cmd.OutOrStdout(), &d.Subscription); err != nil {
				return err
			}
			return printHealth(cmd.OutOrStdout(), d.Health)
		},
	}
}

func newSubsUpdate(f *apiFlags) *cobra.Command {
	ff := &fieldFlags{}
	var ifVersion int64
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change fields of a subscription",
		Example: `  herald subs update sub_123 --status paused
  herald subs update sub_123 --url https://example.com/v2/hooks --if-version 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			body, err := ff.body(cmd)
			if err != nil {
				return err
			}
			if m, ok := body.(map[string]any); ok && len(m) == 0 {
				return errors.New("nothing to change: set at least one field flag or --file")
			}
			sub, err := c.UpdateSubscription(cmdContext(cmd), args[0], body, ifVersion)
			if err != nil {
				return explain("update "+args[0], server, err)
			}
			if f.output == outputJSON {
				return printJSON(cmd.OutOrStdout(), sub)
			}
			return printSubscriptionDetail(cmd.OutOrStdout(), sub)
		},
	}
	ff.register(cmd, true)
	cmd.Flags().Int64Var(&ifVersion, "if-version", 0, "apply only if the subscription is still at this version")
	return cmd
}

func newSubsDelete(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete subscriptions",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.DeleteSubscription(cmdContext(cmd), id); err != nil {
					return explain("delete "+id, server, err)
				}
				if f.output == outputJSON {
					err = printJSON(cmd.OutOrStdout(), map[string]any{"id": id, "deleted": true})
				} else {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s\n", id)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newSubsRotate(f *apiFlags) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-secret ID",
		Short: "Replace a subscription's signing secret",
		Long: "Makes a new signing secret and prints it once. The old secret keeps " +
			"signing alongside it for --grace (0s retires it at once, e.g. after a leak).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, server, err := f.client()
			if err != nil {
				return err
			}
			secret, err := c.RotateSecret(cmdContext(cmd), args[0], grace)
			if err != nil {
				return explain("rotate secret of "+args[0], server, err)
			}
			if f.output == outputJSON {
				err = printJSON(cmd.OutOrStdout(), map[string]string{"secret": secret})
			} else {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Secret: %s\n", secret)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Store the secret now: it will not be shown again. The old one keeps signing for %s.\n", grace)
			return err
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long the old secret keeps signing")
	return cmd
}

func cmdContext(cmd *cobra.Command) context.Context {
	if c := cmd.Context(); c != nil {
		return c
	}
	return context.Background()
}
