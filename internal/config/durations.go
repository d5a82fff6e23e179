package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Durations is a list of durations written either as a YAML list
// ([10s, 1m]) or as one comma-separated string ("10s,1m"), the form
// environment variables and flags use.
type Durations []time.Duration

// ParseDurations parses a comma-separated list of Go durations. Blank items
// are skipped.
func ParseDurations(s string) (Durations, error) {
	var ds Durations
	for _, item := range splitList(s) {
		d, err := time.ParseDuration(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (want e.g. 10s, 1m, 6h)", item)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// String formats ds the way ParseDurations reads it.
func (ds Durations) String() string {
	items := make([]string, len(ds))
	for i, d := range ds {
		items[i] = formatDuration(d)
	}
	return strings.Join(items, ",")
}

// UnmarshalYAML accepts a sequence of durations or a comma-separated scalar.
func (ds *Durations) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		parsed, err := ParseDurations(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*ds = parsed
		return nil
	case yaml.SequenceNode:
		out := make(Durations, 0, len(n.Content))
		for _, item := range n.Content {
			d, err := time.ParseDuration(item.Value)
			if item.Kind != yaml.ScalarNode || err != nil {
				return fmt.Errorf("line %d: %q is not a duration (want e.g. 10s, 1m, 6h)", item.Line, item.Value)
			}
			out = append(out, d)
		}
		*ds = out
		return nil
	default:
		return fmt.Errorf("line %d: want a list of durations", n.Line)
	}
}

// MarshalYAML writes ds as a list of duration strings.
func (ds Durations) MarshalYAML() (any, error) {
	items := make([]string, len(ds))
	for i, d := range ds {
		items[i] = formatDuration(d)
	}
	return items, nil
}

// formatDuration drops the zero units of time.Duration.String: 1m, not 1m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
