package job

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads a YAML or JSON job file over the defaults. Errors name the
// line and the key: an unknown key (with the closest known one), a value
// of the wrong type (with the type the key wants), a key given twice.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Default(), fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse reads a YAML or JSON job document over the defaults (see Load).
// It does not validate the values; call Validate.
func Parse(b []byte) (Config, error) {
	cfg := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return cfg, err
	}
	if len(doc.Content) == 0 { // an empty file: all defaults
		return cfg, nil
	}
	var d decoder
	if err := d.node(doc.Content[0], reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// decoder walks a YAML node tree beside the Config struct, so that every
// error can name the dotted key it is about.
type decoder struct {
	depth  int // alias and merge nesting
	visits int // nodes walked, aliases expanded
}

// maxDepth bounds the nesting of aliases and merges, and maxVisits the
// nodes walked with aliases expanded (against "billion laughs" files).
const (
	maxDepth  = 32
	maxVisits = 100000
)

func (d *decoder) node(n *yaml.Node, v reflect.Value, key string) error {
	if d.visits++; d.visits > maxVisits {
		return fmt.Errorf("line %d: %s: the document expands to more than %d values (aliases?)", n.Line, orTop(key), maxVisits)
	}
	if n.Kind == yaml.AliasNode {
		if d.depth++; d.depth > maxDepth || n.Alias == nil {
			return fmt.Errorf("line %d: %s: aliases nested too deeply", n.Line, orTop(key))
		}
		defer func() { d.depth-- }()
		return d.node(n.Alias, v, key)
	}
	if isNull(n) { // "key:" with no value keeps the default
		return nil
	}
	if v.Kind() == reflect.Struct {
		return d.mapping(n, v, key)
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %s: want %s, got %s", n.Line, key, kindName(v.Kind()), nodeKind(n))
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		return fmt.Errorf("line %d: %s: want %s, got %q", n.Line, key, kindName(v.Kind()), n.Value)
	}
	v.Set(tmp.Elem())
	return nil
}

// mapping decodes a mapping node into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping of keys (%s), got %s", n.Line, orTop(key), keysOf(v), nodeKind(n))
	}
	fields := map[string]int{}
	names := []string{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
			names = append(names, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			if err := d.merge(val, v, key); err != nil {
				return err
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: %s: a key must be a plain name, got %s", k.Line, orTop(key), nodeKind(k))
		}
		full := join(key, k.Value)
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: %s is given twice (first on line %d)", k.Line, full, line)
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			alt := ""
			if c, ok := Closest(k.Value, names); ok {
				alt = fmt.Sprintf(" (did you mean %s?)", join(key, c))
			}
			return fmt.Errorf("line %d: unknown key %q%s", k.Line, full, alt)
		}
		if err := d.node(val, v.Field(idx), full); err != nil {
			return err
		}
	}
	return nil
}

// merge applies a "<<: *anchor" merge of one mapping or a list of them.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, key string) error {
	if d.depth++; d.depth > maxDepth {
		return fmt.Errorf("line %d: %s: merges nested too deeply", n.Line, orTop(key))
	}
	defer func() { d.depth-- }()
	if n.Kind == yaml.SequenceNode {
		for _, m := range n.Content {
			if err := d.node(m, v, key); err != nil {
				return err
			}
		}
		return nil
	}
	return d.node(n, v, key)
}

// keysOf lists the keys of a section, for "want a mapping" messages.
func keysOf(v reflect.Value) string {
	var names []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	if len(names) > 4 {
		names = append(names[:4], "...")
	}
	return strings.Join(names, ", ")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "a document"
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func orTop(key string) string {
	if key == "" {
		return "the job"
	}
	return key
}
