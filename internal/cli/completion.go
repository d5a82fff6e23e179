package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/apiclient"
)

// NewCompletionCommand returns `herald completion bash|zsh|fish|powershell`,
// which prints a shell completion script. Subscription ids complete from the
// server named by HERALD_SERVER and HERALD_TOKEN (or the flags on the line).
func NewCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Prints a completion script for the shell. To load it:

  bash:  source <(herald completion bash)
  zsh:   herald completion zsh > "${fpath[1]}/_herald"
  fish:  herald completion fish > ~/.config/fish/completions/herald.fish
  powershell: herald completion powershell | Out-String | Invoke-Expression`,
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return fmt.Errorf("unknown shell %q", args[0])
		},
	}
}

// completionTimeout keeps a slow or absent server from hanging the shell.
const completionTimeout = 2 * time.Second

// completeSubscriptionIDs completes subscription ids from the server, with
// their URL as the description. Without a token or a server it completes
// nothing.
func completeSubscriptionIDs(f *apiFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 && cmd.Args != nil && cmd.Args(cmd, append(args, "x")) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp // takes no more ids
		}
		c, _, err := f.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmdContext(cmd), completionTimeout)
		defer cancel()
		subs, err := c.AllSubscriptions(ctx, apiclient.ListOptions{Limit: 500})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, s := range subs {
			if strings.HasPrefix(s.ID, toComplete) {
				out = append(out, cobra.CompletionWithDesc(s.ID, s.URL))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
