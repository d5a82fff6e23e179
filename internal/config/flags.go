package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/pflag"
)

// flagKeys are the keys with a command-line flag: the ones people change
// per run. Secrets have none, since command lines are visible to every user
// of the machine.
var flagKeys = []struct{ name, key, usage string }{
	{"kafka-brokers", "kafka.brokers", "comma-separated Kafka bootstrap addresses"},
	{"group", "kafka.group", "consumer group of the dispatcher"},
	{"redis-url", "redis.url", "Redis URL, redis://host:port/db"},
	{"source-topics", sourceTopicsKey, "comma-separated source topics"},
	{"api-listen", "api.listen", "address of the admin API, dashboard and metrics"},
	{"allow-private-networks", "delivery.allow_private_networks", "let deliveries reach loopback and private addresses"},
	{"topic-prefix", "topics.prefix", "prefix of herald's own topics"},
	{"retry-tiers", "retry.tiers", "comma-separated retry delays"},
	{"max-attempts", "retry.max_attempts", "default attempts per delivery"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "json or console"},
}

// BindFlags registers a flag on fs for each of the most common keys, showing
// c's values as defaults; call it on Default(). The flags hold only what was
// typed: ApplyFlags copies the ones that were set onto a loaded Config, so a
// flag overrides the environment and the file only when given.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	for _, fk := range flagKeys {
		f := fieldByKey[fk.key]
		usage := fmt.Sprintf("%s (%s, env %s)", fk.usage, fk.key, f.envs[0])
		v := &flagValue{f: f, typ: flagType(fk.key)}
		flag := fs.VarPF(v, fk.name, "", usage)
		flag.DefValue = c.format(fk.key)
		if v.typ == "bool" {
			flag.NoOptDefVal = "true"
		}
	}
}

// ApplyFlags sets on c the keys whose flags were given on the command line.
func (c *Config) ApplyFlags(fs *pflag.FlagSet) error {
	var errs []error
	for _, fk := range flagKeys {
		if !fs.Changed(fk.name) {
			continue
		}
		v, ok := fs.Lookup(fk.name).Value.(*flagValue)
		if !ok {
			continue // someone else's flag of the same name
		}
		if err := v.f.set(c, v.raw); err != nil {
			errs = append(errs, &FieldError{Key: v.f.key, Origin: "--" + fk.name, Err: err})
		}
	}
	return errors.Join(errs...)
}

// format renders the value of key the way setValue reads it.
func (c *Config) format(key string) string {
	if key == sourceTopicsKey {
		return strings.Join(c.SourceTopics(), ",")
	}
	v := c.valueOf(key)
	switch x := v.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func (c *Config) valueOf(key string) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for name := range strings.SplitSeq(key, ".") {
		t := v.Type()
		for i := range t.NumField() {
			if yamlName(t.Field(i)) == name {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

func flagType(key string) string {
	if key == sourceTopicsKey {
		return "strings"
	}
	var c Config
	v := c.valueOf(key)
	switch {
	case v.Type() == durationsType:
		return "durations"
	case v.Kind() == reflect.Slice:
		return "strings"
	default:
		return v.Kind().String()
	}
}

// flagValue keeps a flag's text; Set checks it parses so that mistakes
// are reported by flag parsing, next to the flag.
type flagValue struct {
	f   *field
	typ string
	raw string
}

func (v *flagValue) String() string { return v.raw }
func (v *flagValue) Type() string   { return v.typ }

func (v *flagValue) Set(s string) error {
	scratch := Default()
	if err := v.f.set(&scratch, s); err != nil {
		return err
	}
	v.raw = s
	return nil
}
