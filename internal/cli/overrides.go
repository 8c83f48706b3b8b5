// Package cli implements Recur's commands: the coordinator and worker
// processes, the local mode of `recur train`, and the tools that work on a
// finished run (sample, eval, export).
package cli

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/recur-ml/recur/internal/job"
)

// setFlag collects repeated --set section.field=value overrides.
type setFlag []string

func (s *setFlag) String() string     { return strings.Join(*s, ",") }
func (s *setFlag) Set(v string) error { *s = append(*s, v); return nil }

// applyOverrides sets job fields from the environment (RECUR_SECTION_FIELD,
// e.g. RECUR_MODEL_HIDDEN=128) and then from --set section.field=value,
// which wins. Keys are the config file's YAML keys.
func applyOverrides(jc *job.Config, sets []string) error {
	fields := map[string]reflect.Value{}
	collect(reflect.ValueOf(jc).Elem(), "", fields)
	for key, v := range fields {
		env := "RECUR_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if s, ok := os.LookupEnv(env); ok {
			if err := setValue(v, s); err != nil {
				return fmt.Errorf("environment %s: %w", env, err)
			}
		}
	}
	for _, kv := range sets {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: want section.field=value", kv)
		}
		v, ok := fields[k]
		if !ok {
			return fmt.Errorf("--set %q: unknown config key %q", kv, k)
		}
		if err := setValue(v, val); err != nil {
			return fmt.Errorf("--set %s: %w", k, err)
		}
	}
	return nil
}

// collect maps dotted YAML keys to settable leaf fields.
func collect(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
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

func setValue(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("cannot set a %s from text", v.Kind())
	}
	return nil
}

// clusterKey reads the cluster key from RECUR_CLUSTER_KEY or a file.
func clusterKey(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		k := []byte(strings.TrimSpace(string(b)))
		if len(k) < 16 {
			return nil, fmt.Errorf("cluster key in %s is %d bytes; use at least 16 (recur keygen)", file, len(k))
		}
		return k, nil
	}
	if k := os.Getenv("RECUR_CLUSTER_KEY"); k != "" {
		if len(k) < 16 {
			return nil, fmt.Errorf("RECUR_CLUSTER_KEY is %d bytes; use at least 16 (recur keygen)", len(k))
		}
		return []byte(k), nil
	}
	return nil, errors.New("no cluster key: set RECUR_CLUSTER_KEY (make one with `recur keygen`) or pass --key-file")
}
