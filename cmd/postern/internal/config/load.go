package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// value is one setting's value as written somewhere, with where, so a
// message about a bad value names the flag, variable or file line.
type value struct {
	v   string
	src string
}

// layer holds the values one source gives, by flag name. A present key with
// no values means the source explicitly gave an empty list.
type layer map[string][]value

// Load reads the settings: flags from args (without the program name), then
// environment variables through getenv, then the YAML file named by --config
// or POSTERN_CONFIG, then the defaults; the first source that sets a value
// wins (a list given by a source replaces the lists of the sources below).
//
// It returns every problem it found at once. Unless the flags themselves could
// not be parsed (then the Config is nil; flag.ErrHelp for -h), the Config is
// returned even with an error, holding defaults where values were bad, so that
// Validate can report the remaining problems too.
func Load(args []string, getenv func(string) string) (*Config, error) {
	table := settings()
	flags := layer{}
	fs := newFlagSet("postern", table, flags)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags, e.g. --listen=127.0.0.1:8080)", fs.Arg(0))
	}

	c := &Config{}
	var errs []error
	c.File = getenv("POSTERN_CONFIG")
	if f := flags["config"]; len(f) > 0 {
		c.File = f[len(f)-1].v
	}
	file := layer{}
	if c.File != "" {
		var err error
		file, c.Routes, err = readFile(c.File, table)
		if err != nil {
			errs = append(errs, err)
		}
	}
	env := envLayer(table, getenv)

	for _, s := range table {
		vals, ok := flags[s.name]
		if !ok {
			vals, ok = env[s.name]
		}
		if !ok {
			vals, ok = file[s.name]
		}
		if !ok && s.def != "" {
			vals = []value{{v: s.def, src: "default of --" + s.name}}
		}
		if !s.list && len(vals) > 1 {
			vals = vals[len(vals)-1:] // a repeated single-valued flag: the last one wins
		}
		failed := false
		for _, v := range vals {
			if err := s.set(c, v.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v.src, err))
				failed = true
			}
		}
		if failed && s.def != "" && !s.list {
			// Keep the default, so Validate does not report the same
			// setting a second time.
			_ = s.set(c, s.def)
		}
	}
	return c, errors.Join(errs...)
}

// FlagSet returns the flags postern's run command accepts, for help output
// and documentation checks. Values set on it are not kept.
func FlagSet(name string) *flag.FlagSet {
	return newFlagSet(name, settings(), layer{})
}

func newFlagSet(name string, table []setting, l layer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Var(&flagValue{name: "config", l: l}, "config", "YAML file with settings (env POSTERN_CONFIG)")
	for _, s := range table {
		fs.Var(&flagValue{name: s.name, def: s.def, boolean: s.boolean, l: l}, s.name, s.usage)
	}
	return fs
}

// flagValue records a flag's values into a layer; parsing happens later, so
// that every bad value is reported, not only the first.
type flagValue struct {
	name, def string
	boolean   bool
	l         layer
}

func (f *flagValue) String() string   { return f.def }
func (f *flagValue) IsBoolFlag() bool { return f.boolean }
func (f *flagValue) Set(v string) error {
	f.l[f.name] = append(f.l[f.name], value{v: v, src: "--" + f.name})
	return nil
}

// envLayer reads POSTERN_* variables; an empty variable counts as unset.
// Lists are comma-separated.
func envLayer(table []setting, getenv func(string) string) layer {
	l := layer{}
	for _, s := range table {
		name := EnvName(s.name)
		raw := getenv(name)
		if raw == "" {
			continue
		}
		if !s.list {
			l[s.name] = []value{{v: raw, src: name}}
			continue
		}
		vals := []value{}
		for _, item := range strings.Split(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				vals = append(vals, value{v: item, src: name})
			}
		}
		l[s.name] = vals
	}
	return l
}

// routeFile is one entry of the YAML routes: list.
type routeFile struct {
	Host        string     `yaml:"host"`
	PathPrefix  string     `yaml:"path_prefix"`
	Upstream    string     `yaml:"upstream"`
	UpstreamCA  string     `yaml:"upstream_ca_file"`
	AllowEmail  stringList `yaml:"allow_email"`
	AllowDomain stringList `yaml:"allow_domain"`
	AllowGroup  stringList `yaml:"allow_group"`
	Public      bool       `yaml:"public"`
	Idempotent  bool       `yaml:"idempotent_resend"`
}

// stringList accepts a single string or a list of strings.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = stringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type .*$`)

// readFile reads the YAML file strictly: an unknown key anywhere is an error
// naming the key and its line.
func readFile(path string, table []setting) (layer, []Route, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return layer{}, nil, nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return layer{}, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s:%d: want a mapping of settings (key: value)", path, root.Line)
	}

	byKey := map[string]setting{}
	for _, s := range table {
		byKey[KeyName(s.name)] = s
	}
	var errs []error
	l := layer{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		where := fmt.Sprintf("%s:%d: %s", path, k.Line, k.Value)
		if k.Value == "routes" {
			continue
		}
		if k.Value == "config" {
			errs = append(errs, fmt.Errorf("%s: cannot be set inside the config file", where))
			continue
		}
		s, ok := byKey[k.Value]
		if !ok {
			hint := ""
			if _, ok := byKey[strings.ReplaceAll(k.Value, "-", "_")]; ok {
				hint = fmt.Sprintf(" (did you mean %s? keys use underscores)", strings.ReplaceAll(k.Value, "-", "_"))
			}
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q%s", path, k.Line, k.Value, hint))
			continue
		}
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			// "key:" with no value leaves the setting to the lower layers.
		case v.Kind == yaml.ScalarNode:
			l[s.name] = []value{{v: v.Value, src: where}}
		case v.Kind == yaml.SequenceNode && s.list:
			vals := []value{}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s:%d: %s: want a list of strings", path, item.Line, k.Value))
					continue
				}
				vals = append(vals, value{v: item.Value, src: where})
			}
			l[s.name] = vals
		case s.list:
			errs = append(errs, fmt.Errorf("%s: want a string or a list of strings", where))
		default:
			errs = append(errs, fmt.Errorf("%s: want a single value, not a %s", where, kindName(v.Kind)))
		}
	}

	routes, err := readRoutes(path, data, root)
	if err != nil {
		errs = append(errs, err)
	}
	return l, routes, errors.Join(errs...)
}

// readRoutes decodes the routes: list with unknown keys refused.
func readRoutes(path string, data []byte, root *yaml.Node) ([]Route, error) {
	var lines []int
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "routes" {
			for _, r := range root.Content[i+1].Content {
				lines = append(lines, r.Line)
			}
		}
	}
	var f struct {
		Routes []routeFile `yaml:"routes"`
		// Every other key is checked by readFile against the table.
		Rest map[string]yaml.Node `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var errs []error
		for _, msg := range te.Errors {
			if m := unknownField.FindStringSubmatch(msg); m != nil {
				errs = append(errs, fmt.Errorf("%s:%s: routes: unknown key %q (want host, path_prefix, upstream, upstream_ca_file, allow_email, allow_domain, allow_group, public)", path, m[1], m[2]))
				continue
			}
			errs = append(errs, fmt.Errorf("%s: routes: %s", path, msg))
		}
		return nil, errors.Join(errs...)
	}
	routes := make([]Route, 0, len(f.Routes))
	for i, r := range f.Routes {
		rt := Route{
			Host:             r.Host,
			PathPrefix:       r.PathPrefix,
			Upstream:         r.Upstream,
			UpstreamCAFile:   r.UpstreamCA,
			Allow:            Allow{Emails: r.AllowEmail, Domains: r.AllowDomain, Groups: r.AllowGroup},
			Public:           r.Public,
			IdempotentResend: r.Idempotent,
		}
		if i < len(lines) {
			rt.Line = lines[i]
		}
		routes = append(routes, rt)
	}
	if len(routes) == 0 {
		return nil, nil
	}
	return routes, nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}
