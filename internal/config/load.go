package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load returns Default() overridden by the YAML file at path, if path is not
// empty, then by the HERALD_* variables that lookupEnv finds (pass
// os.LookupEnv; nil reads no environment). Unknown keys in the file are
// errors. Load does not validate: flags come later, then call Validate.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := c.decodeYAML(path, data); err != nil {
			return Config{}, err
		}
	}
	if lookupEnv != nil {
		if err := c.applyEnv(lookupEnv); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// decodeYAML overlays the document in data onto c.
func (c *Config) decodeYAML(name string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty or only comments
	}
	var errs []error
	checkKeys(doc.Content[0], reflect.TypeFor[Config](), "", name, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// KnownFields is a backstop for anything checkKeys does not walk, such
	// as merge keys.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return nil
}

// checkKeys reports every mapping key in n that t has no field for, by its
// full path, so a typo deep in the file names itself.
func checkKeys(n *yaml.Node, t reflect.Type, path, file string, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		known := make(map[string]reflect.StructField, t.NumField())
		for i := range t.NumField() {
			if name := yamlName(t.Field(i)); name != "" {
				known[name] = t.Field(i)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue
			}
			sf, ok := known[k.Value]
			if !ok {
				*errs = append(*errs, &FieldError{
					Key:    path + k.Value,
					Origin: file + ":" + strconv.Itoa(k.Line),
					Err:    unknownKeyError(k.Value, known),
				})
				continue
			}
			checkKeys(v, sf.Type, path+k.Value+".", file, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		base := strings.TrimSuffix(path, ".")
		for i, item := range n.Content {
			checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d].", base, i), file, errs)
		}
	}
}

func unknownKeyError(key string, known map[string]reflect.StructField) error {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	for name := range known {
		if norm(name) == norm(key) {
			return fmt.Errorf("unknown key (did you mean %s?)", name)
		}
	}
	return errors.New("unknown key")
}
