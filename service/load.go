package service

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that overrides a key: the key
// path in upper case with "_" for ".", e.g. WORKER_MQ_URL for mq.url and
// WORKER_PROVISIONING_DB_DSN for provisioning_db.dsn.
const EnvPrefix = "WORKER_"

// EnvConfig is the variable the service binaries read the config file's
// path from when no -config flag is given; Load ignores it.
const EnvConfig = "WORKER_CONFIG"

// IgnoredEnv are WORKER_* variables that name no key and are not refused:
// EnvConfig, and the variables of examples/migrate, which may share the
// service's environment file.
var IgnoredEnv = []string{EnvConfig, "WORKER_DB_DSN", "WORKER_ANALYTICS_DSN"}

// MaxFileSize bounds the configuration file.
const MaxFileSize = 4 << 20

// meta records where each key of a loaded Config came from.
type meta struct {
	file  string
	lines map[string]int    // key path → line
	env   map[string]string // key path → WORKER_* variable
	vars  map[string]string // the environment given to Load
}

func (m *meta) lineOf(key string) int {
	for k := key; k != ""; {
		if l, ok := m.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// Load reads the configuration file at path, applies the WORKER_*
// overrides of env (in the form of os.Environ: "NAME=value"), resolves the
// secrets' references and validates the result. Every error is a
// [*ConfigError] naming the file, the key, the value and what is expected.
func Load(path string, env []string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("service: config file: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limitReader{f: f, n: MaxFileSize + 1}); err != nil {
		return nil, fmt.Errorf("service: config file %s: %w", path, err)
	}
	if buf.Len() > MaxFileSize {
		return nil, fmt.Errorf("service: config file %s is larger than %d bytes", path, MaxFileSize)
	}
	return Parse(filepath.Base(path), buf.Bytes(), env)
}

type limitReader struct {
	f interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// Parse is [Load] of a file's contents; name is the file's name in errors.
func Parse(name string, data []byte, env []string) (*Config, error) {
	m := &meta{file: name, lines: map[string]int{}, env: map[string]string{}, vars: map[string]string{}}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m.vars[k] = v
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{File: name, Line: yamlLine(err), Key: "(file)", Value: "", Problem: "is not valid YAML: " + yamlMessage(err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		} else {
			root = root.Content[0]
		}
	} else if root.Kind == 0 { // empty file
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	cfgType := reflect.TypeFor[Config]()
	c := &Config{meta: m}
	if root.Kind != yaml.MappingNode {
		return nil, c.failAt("(file)", root, "is not a mapping of sections (mq:, provisioning_db:, …)")
	}
	if err := c.applyEnv(root, cfgType); err != nil {
		return nil, err
	}
	if err := c.check(root, cfgType, ""); err != nil {
		return nil, err
	}
	// The checked tree is decoded by yaml itself, strictly.
	out, err := yaml.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("service: %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: name, Key: "(file)", Problem: "cannot be decoded: " + yamlMessage(err)}
	}
	c.meta = m
	if err := c.resolveSecrets(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) failAt(key string, n *yaml.Node, problem string, args ...any) *ConfigError {
	e := c.fail(key, nodeValue(n), problem, args...)
	if n != nil && n.Line > 0 && e.Env == "" {
		e.Line = n.Line
	}
	return e
}

func nodeValue(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value
	case yaml.MappingNode:
		return "(a mapping)"
	case yaml.SequenceNode:
		return "(a list)"
	case yaml.AliasNode:
		return "*" + n.Value
	}
	return ""
}

// yamlLine and yamlMessage take the line out of yaml's "yaml: line 3: …".
func yamlLine(err error) int {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				return n
			}
		}
	}
	return 0
}

// yamlMessage is yaml's message without its line and without the values
// it quotes (`…`), which may be secrets.
func yamlMessage(err error) string {
	msg := quoted.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "`…`")
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return rest[i+2:]
			}
		}
	}
	return msg
}

// fieldByKey is the field of struct type t that key names, by yaml tag.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

var quoted = regexp.MustCompile("`[^`]*`")

var durationType = reflect.TypeFor[Duration]()

// check walks node against type t: unknown keys, wrong kinds and values
// that do not decode are refused, naming the key path and the line.
func (c *Config) check(n *yaml.Node, t reflect.Type, path string) error {
	if path != "" {
		if _, ok := c.meta.lines[path]; !ok {
			c.meta.lines[path] = n.Line
		}
	}
	if n.Kind == yaml.AliasNode {
		return c.failAt(path, n, "is a YAML alias: write the value out")
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // an empty key: the default
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			return c.failAt(path, n, "is not a duration (want a string such as \"30s\", \"5m\" or \"1h\")")
		}
		d, err := time.ParseDuration(n.Value)
		switch {
		case err != nil && n.ShortTag() == "!!int":
			return c.failAt(path, n, "is a number without a unit (want a duration such as \"%ss\")", n.Value)
		case err != nil:
			return c.failAt(path, n, "is not a duration (want a string such as \"30s\", \"5m\" or \"1h\")")
		case d < 0:
			return c.failAt(path, n, "is negative (want a duration >= 0; 0 means the default)")
		}
		return nil
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return c.failAt(path, n, "is not a mapping (want the keys %s)", strings.Join(keysOf(t), ", "))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := joinKey(path, k.Value)
			f, ok := fieldByKey(t, k.Value)
			if !ok {
				c.meta.lines[sub] = k.Line
				where := "the file"
				if path != "" {
					where = path
				}
				return c.failAt(sub, k, "is not a key of %s (want one of %s)", where, strings.Join(keysOf(t), ", "))
			}
			c.meta.lines[sub] = k.Line
			if err := c.check(v, f.Type, sub); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return c.failAt(path, n, "is not a list")
		}
		for i, e := range n.Content {
			if err := c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return c.failAt(path, n, "is not a mapping")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return c.failAt(path, k, "has a key that is not a string")
			}
			if err := c.check(v, t.Elem(), joinKey(path, k.Value)); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Interface:
		return nil // free-form (account settings), checked by its user
	}
	if n.Kind != yaml.ScalarNode {
		return c.failAt(path, n, "is not a single value (want %s)", kindName(t))
	}
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err != nil {
		return c.failAt(path, n, "is not %s", kindName(t))
	}
	if t.Kind() == reflect.String && n.ShortTag() != "!!str" && n.Style == 0 {
		// 0755 or yes decoded into a string: say what it became.
		if what, ok := map[string]string{"!!bool": "a boolean", "!!int": "an integer", "!!float": "a number"}[n.ShortTag()]; ok {
			return c.failAt(path, n, "is %s, not a string (quote it)", what)
		}
	}
	return nil
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// envKeys lists every key that a WORKER_* variable may set: the scalar
// leaves of the sections, by variable name.
func envKeys() map[string]string {
	keys := map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" {
				continue
			}
			p := joinKey(path, name)
			switch {
			case f.Type == durationType:
				keys[envName(p)] = p
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, p)
			case f.Type.Kind() == reflect.Slice, f.Type.Kind() == reflect.Map:
			default:
				keys[envName(p)] = p
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets the keys named by WORKER_* variables in the tree. A
// WORKER_* variable that names no key is refused unless it is EnvConfig or
// a secret's *_env or "${NAME}" reference (see IgnoredEnv).
func (c *Config) applyEnv(root *yaml.Node, t reflect.Type) error {
	keys := envKeys()
	refs := envRefs(root)
	var names []string
	for k := range c.meta.vars {
		if strings.HasPrefix(k, EnvPrefix) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		value := c.meta.vars[name]
		path, ok := keys[name]
		if !ok {
			if slices.Contains(IgnoredEnv, name) || refs[name] {
				continue
			}
			return &ConfigError{File: c.meta.file, Key: name, Value: Redacted,
				Problem: "is a WORKER_* environment variable that names no key (want WORKER_<SECTION>_<KEY>, e.g. WORKER_MQ_URL)"}
		}
		c.meta.env[path] = name
		setPath(root, strings.Split(path, "."), value, fieldType(t, path))
	}
	return nil
}

func fieldType(t reflect.Type, path string) reflect.Type {
	for _, k := range strings.Split(path, ".") {
		f, _ := fieldByKey(t, k)
		t = f.Type
	}
	return t
}

// envRefs are the variables that *_env keys and "${NAME}" values name.
func envRefs(n *yaml.Node) map[string]bool {
	refs := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if strings.HasSuffix(k.Value, "_env") && v.Kind == yaml.ScalarNode {
					refs[v.Value] = true
				}
			}
		}
		if n.Kind == yaml.ScalarNode {
			if name, ok := envRef(n.Value); ok {
				refs[name] = true
			}
		}
		for _, e := range n.Content {
			walk(e)
		}
	}
	walk(n)
	return refs
}

func setPath(n *yaml.Node, keys []string, value string, t reflect.Type) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == keys[0] {
			if len(keys) == 1 {
				n.Content[i+1] = scalar(value, t, 0)
				return
			}
			if n.Content[i+1].Kind != yaml.MappingNode {
				n.Content[i+1] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Content[i+1].Line}
			}
			setPath(n.Content[i+1], keys[1:], value, t)
			return
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: keys[0]}
	if len(keys) == 1 {
		n.Content = append(n.Content, k, scalar(value, t, 0))
		return
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	n.Content = append(n.Content, k, m)
	setPath(m, keys[1:], value, t)
}

// scalar is an environment value as a node: a string for string keys
// (WORKER_MQ_PREFIX=0755 stays "0755"), resolved by YAML's rules otherwise.
func scalar(value string, t reflect.Type, line int) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: value, Line: line}
	if t != nil && t.Kind() == reflect.String {
		n.Tag = "!!str"
	}
	return n
}
