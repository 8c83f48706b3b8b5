package job

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Keys returns every config key, dotted as in the YAML file
// ("model.hidden", "optimizer.adam.beta1"), sorted.
func Keys() []string {
	c := Default()
	fields := map[string]reflect.Value{}
	collect(reflect.ValueOf(&c).Elem(), "", fields)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Set sets one key from text, as --set key=value and RECUR_* variables do.
// Numbers must be finite; an unknown key is an error that suggests the
// closest one.
func (c *Config) Set(key, value string) error {
	fields := map[string]reflect.Value{}
	collect(reflect.ValueOf(c).Elem(), "", fields)
	v, ok := fields[key]
	if !ok {
		return fmt.Errorf("unknown config key %q%s", key, suggest(key, Keys()))
	}
	if err := setValue(v, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// EnvName is the environment variable that overrides key:
// RECUR_ and the key upper-cased with dots as underscores
// (model.hidden: RECUR_MODEL_HIDDEN).
func EnvName(key string) string {
	return "RECUR_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// collect maps dotted YAML keys to settable leaf fields.
func collect(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := yamlName(t.Field(i))
		if tag == "" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			collect(f, key, out)
			continue
		}
		out[key] = f
	}
}

// yamlName is a struct field's YAML key, "" for fields the file cannot set.
func yamlName(f reflect.StructField) string {
	tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return tag
}

// kindName says what a leaf of kind k holds, for messages.
func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		return "a non-negative integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return k.String()
}

func setValue(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want an integer, got %q", s)
		}
		v.SetInt(n)
		return nil
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("want a non-negative integer, got %q", s)
		}
		v.SetUint(n)
		return nil
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", s)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("want a finite number, got %q (NaN and Inf are not allowed)", s)
		}
		v.SetFloat(f)
		return nil
	}
	return fmt.Errorf("cannot set a %s from text", v.Kind())
}

// checkFinite reports the first float key holding NaN or ±Inf (a YAML
// .nan, or a value set in code): no bound check would catch it, and JSON
// cannot carry it to the workers.
func (c *Config) checkFinite() error {
	fields := map[string]reflect.Value{}
	collect(reflect.ValueOf(c).Elem(), "", fields)
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		if v.Kind() == reflect.Float64 || v.Kind() == reflect.Float32 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if f := fields[k].Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("config %s is %v: NaN and Inf are not allowed", k, f)
		}
	}
	return nil
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to s,
// or "" when none is close.
func suggest(s string, candidates []string) string {
	if c, ok := Closest(s, candidates); ok {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

// Closest returns the candidate with the smallest edit distance to s
// (case-insensitive), if it is close: at most a third of s's length.
func Closest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return "", false
	}
	return best, true
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
