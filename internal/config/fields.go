package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is a configuration problem with one key. Key is the file key
// path (kafka.brokers, sources[1].topic); Origin, when known, is where the
// value came from: an environment variable, a flag or a file position.
type FieldError struct {
	Key    string
	Origin string
	Err    error
}

func (e *FieldError) Error() string {
	if e.Origin != "" {
		return fmt.Sprintf("config: %s (%s): %v", e.Key, e.Origin, e.Err)
	}
	return fmt.Sprintf("config: %s: %v", e.Key, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// field is one settable key. Every leaf of Config is one, found by walking
// the yaml tags, so no key can lack an environment variable.
type field struct {
	key    string
	envs   []string // the first is the documented name
	secret string   // the secret struct tag
	set    func(c *Config, s string) error
}

const envPrefix = "HERALD_"

// envAliases are the names DESIGN.md fixes where they differ from the
// derived ones. Both names work; the alias is the documented one.
var envAliases = map[string]string{
	"kafka.group":                     "HERALD_GROUP",
	"secrets.master_key":              "HERALD_MASTER_KEY",
	"delivery.allow_private_networks": "HERALD_ALLOW_PRIVATE_NETWORKS",
	"topics.prefix":                   "HERALD_TOPIC_PREFIX",
	"retry.max_attempts":              "HERALD_MAX_ATTEMPTS",
}

const sourceTopicsKey = "sources[].topic"

var (
	fields     = collectFields()
	fieldByKey = func() map[string]*field {
		m := make(map[string]*field, len(fields))
		for _, f := range fields {
			m[f.key] = f
		}
		return m
	}()
)

func collectFields() []*field {
	var out []*field
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name := yamlName(sf)
			if name == "" {
				continue
			}
			key := prefix + name
			idx := append(append([]int(nil), index...), i)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, key+".", idx)
				continue
			}
			f := &field{key: key, secret: sf.Tag.Get("secret")}
			f.envs = []string{envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))}
			if alias, ok := envAliases[key]; ok {
				f.envs = append([]string{alias}, f.envs...)
			}
			f.set = func(c *Config, s string) error {
				return setValue(reflect.ValueOf(c).Elem().FieldByIndex(idx), s)
			}
			out = append(out, f)
			if key == "sources" {
				out = append(out, &field{
					key:  sourceTopicsKey,
					envs: []string{"HERALD_SOURCE_TOPICS"},
					set:  setSourceTopics,
				})
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

func yamlName(sf reflect.StructField) string {
	if !sf.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(sf.Name)
	}
	return name
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	durationsType = reflect.TypeFor[Durations]()
)

// setValue parses s into v the way environment variables and flags are
// written: lists comma-separated, lists of structs as YAML flow text.
func setValue(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationsType:
		ds, err := ParseDurations(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(ds))
		return nil
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration (want e.g. 30s, 168h)", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean (want true or false)", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			v.Set(reflect.ValueOf(splitList(s)).Convert(v.Type()))
			return nil
		}
		dec := yaml.NewDecoder(strings.NewReader(s))
		dec.KnownFields(true)
		p := reflect.New(v.Type())
		if err := dec.Decode(p.Interface()); err != nil {
			return fmt.Errorf("want YAML flow text such as [{topic: orders}]: %w", err)
		}
		v.Set(p.Elem())
	default:
		return fmt.Errorf("cannot set a %s from text", v.Type())
	}
	return nil
}

// setSourceTopics makes the sources exactly the listed topics, keeping the
// settings already given for topics that stay.
func setSourceTopics(c *Config, s string) error {
	known := make(map[string]Source, len(c.Sources))
	for _, src := range c.Sources {
		known[src.Topic] = src
	}
	var sources []Source
	for _, topic := range splitList(s) {
		src, ok := known[topic]
		if !ok {
			src = Source{Topic: topic}
		}
		sources = append(sources, src)
	}
	c.Sources = sources
	return nil
}

// applyEnv sets every key whose variable lookup finds non-empty.
func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	var errs []error
	for _, f := range fields {
		var name, value string
		conflict := false
		for _, env := range f.envs {
			v, ok := lookup(env)
			switch {
			case !ok || v == "":
			case name == "":
				name, value = env, v
			case v != value:
				errs = append(errs, &FieldError{Key: f.key, Origin: name + ", " + env,
					Err: errors.New("both variables are set, to different values")})
				conflict = true
			}
		}
		if name == "" || conflict {
			continue
		}
		if err := f.set(c, value); err != nil {
			errs = append(errs, &FieldError{Key: f.key, Origin: name, Err: err})
		}
	}
	return errors.Join(errs...)
}
