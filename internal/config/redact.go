package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

const redacted = "REDACTED"

// Redacted returns a copy of c safe to print or log: the master key, the SASL
// password, the API tokens and any password in the Redis URL are replaced by
// REDACTED. Fields tagged `secret` are the ones hidden.
func (c Config) Redacted() Config {
	out := c
	for _, f := range fields {
		if f.secret == "" {
			continue
		}
		v := out.valueOf(f.key)
		switch {
		case f.secret == "userinfo" && v.Kind() == reflect.String:
			v.SetString(redactURL(v.String()))
		case v.Kind() == reflect.String && v.String() != "":
			v.SetString(redacted)
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
			masked := make([]string, v.Len())
			for i := range masked {
				masked[i] = redacted
			}
			if v.Len() > 0 {
				v.Set(reflect.ValueOf(masked))
			}
		}
	}
	return out
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return redacted
		}
		return s
	}
	return u.Redacted()
}

// String renders c as YAML, secrets redacted.
func (c Config) String() string {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return fmt.Sprintf("config: %v", err)
	}
	return string(out)
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return c.String() }

// String keeps fmt from printing the password.
func (s SASL) String() string {
	if s.Mechanism == "" {
		return "{}"
	}
	return fmt.Sprintf("{%s %s %s}", s.Mechanism, s.Username, redacted)
}

// String keeps fmt from printing the master key.
func (s Secrets) String() string { return "{" + redacted + "}" }

// String keeps fmt from printing the tokens.
func (a API) String() string {
	return fmt.Sprintf("{%s %d tokens %d}", a.Listen, len(a.Tokens), a.MaxBodyBytes)
}

// String keeps fmt from printing a password in the URL.
func (r Redis) String() string { return "{" + redactURL(r.URL) + "}" }
