package shard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SeqKind says how the numbers of a JSONL sequence are read.
type SeqKind int

const (
	// AutoKind (default) decides from the first example: an array of arrays
	// is feature vectors, an array of integers is tokens, any other array of
	// numbers is one feature per step. Later examples must match.
	AutoKind SeqKind = iota
	// TokenKind reads integers as token ids.
	TokenKind
	// FeatureKind reads numbers (or arrays of numbers) as features.
	FeatureKind
)

// OverLong says what happens to a sequence longer than MaxLen.
type OverLong int

const (
	// SkipLong skips it and counts it in JSONLStats.Skipped (the default).
	SkipLong OverLong = iota
	// ErrorLong fails with ErrTooLong and the line.
	ErrorLong
)

// JSONLConfig configures ReadJSONL. Each line is an object with "input" (an
// array) and optionally "target" (an integer class) and/or "output" (an
// array, e.g. decoder tokens). Other keys are ignored; blank lines skipped.
type JSONLConfig struct {
	Input  SeqKind // how "input" is read; default AutoKind
	Output SeqKind // how "output" is read; default AutoKind
	// MaxLen bounds input and output lengths; 0 means no bound.
	MaxLen int
	// OverLong is the rule for sequences over MaxLen; default SkipLong.
	OverLong OverLong
	// Classes, when positive, requires every target in [0, Classes).
	Classes int
	// Vocab, when positive, requires every token id in [0, Vocab).
	Vocab int
	// AppendEOS appends EOS to every token "output" sequence, so a decoder
	// learns to stop.
	AppendEOS bool
	// EOS is the end-of-sequence token id used by AppendEOS.
	EOS int32
}

// Validate reports whether the configuration is usable.
func (c JSONLConfig) Validate() error {
	if c.Input < AutoKind || c.Input > FeatureKind || c.Output < AutoKind || c.Output > FeatureKind {
		return configErr("JSONL kinds %d, %d unknown", c.Input, c.Output)
	}
	if c.OverLong != SkipLong && c.OverLong != ErrorLong {
		return configErr("OverLong %d unknown", c.OverLong)
	}
	if c.MaxLen < 0 || c.Classes < 0 || c.Vocab < 0 {
		return configErr("MaxLen %d, Classes %d, Vocab %d must not be negative", c.MaxLen, c.Classes, c.Vocab)
	}
	if c.AppendEOS && (c.EOS < 0 || (c.Vocab > 0 && int(c.EOS) >= c.Vocab)) {
		return configErr("EOS %d outside the vocabulary", c.EOS)
	}
	return nil
}

// JSONLStats counts what ReadJSONL saw.
type JSONLStats struct {
	Lines    int // lines read, blank ones included
	Examples int // examples kept
	Skipped  int // examples skipped for exceeding MaxLen
}

// LoadJSONL reads the JSONL file at path.
func LoadJSONL(path string, cfg JSONLConfig) (Examples, JSONLStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, JSONLStats{}, fmt.Errorf("shard: open JSONL: %w", err)
	}
	defer f.Close()
	return ReadJSONL(f, filepath.Base(path), cfg)
}

// ReadJSONL parses one example per line; name labels errors as name:line.
func ReadJSONL(r io.Reader, name string, cfg JSONLConfig) (Examples, JSONLStats, error) {
	var st JSONLStats
	if err := cfg.Validate(); err != nil {
		return nil, st, err
	}
	p := jsonlParser{cfg: cfg, in: seqSpec{kind: cfg.Input, dim: -1}, out: seqSpec{kind: cfg.Output, dim: -1}}
	br := bufio.NewReaderSize(r, 1<<16)
	var exs Examples
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			st.Lines++
			e, keep, err := p.parseLine(line)
			if err != nil {
				return nil, st, &InputError{File: name, Line: st.Lines, Msg: err.Error(), Err: errSentinel(err)}
			}
			if keep {
				exs = append(exs, e)
			} else if e.Input.Len() > 0 {
				st.Skipped++
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, st, fmt.Errorf("shard: read %s: %w", name, rerr)
		}
	}
	st.Examples = len(exs)
	if len(exs) == 0 {
		return nil, st, inputErr(name, 0, ErrEmpty, "no examples (%d lines, %d skipped)", st.Lines, st.Skipped)
	}
	return exs, st, nil
}

// fieldErr is a problem in one field of a line, with its sentinel.
type fieldErr struct {
	msg string
	err error
}

// Error returns the message without file or line; ReadJSONL adds those.
func (e *fieldErr) Error() string { return e.msg }

func ferr(sentinel error, format string, args ...any) error {
	return &fieldErr{msg: fmt.Sprintf(format, args...), err: sentinel}
}

func errSentinel(err error) error {
	if fe, ok := err.(*fieldErr); ok {
		return fe.err
	}
	return ErrSyntax
}

// seqSpec is the kind and feature width a file's sequences settle on.
type seqSpec struct {
	kind SeqKind
	dim  int // -1 until the first example sets it
}

type jsonlParser struct {
	cfg     JSONLConfig
	in, out seqSpec
	first   *Example // the first example, whose fields all others must have
}

// parseLine returns the example of one line; keep is false for blank lines
// and skipped over-long examples.
func (p *jsonlParser) parseLine(line []byte) (e Example, keep bool, err error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return e, false, nil
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return e, false, ferr(ErrSyntax, "invalid JSON: %v", err)
	}
	if d.More() {
		return e, false, ferr(ErrSyntax, "invalid JSON: more than one value on the line")
	}
	if obj == nil {
		return e, false, ferr(ErrSyntax, "expected an object, got null")
	}
	raw, ok := obj["input"]
	if !ok {
		return e, false, ferr(ErrSyntax, `missing "input"`)
	}
	if e.Input, err = p.parseSeq("input", raw, &p.in, false); err != nil {
		return e, false, err
	}
	e.Label = NoLabel
	if t, ok := obj["target"]; ok {
		if e.Label, err = p.parseLabel(t); err != nil {
			return e, false, err
		}
	}
	if o, ok := obj["output"]; ok {
		if e.Output, err = p.parseSeq("output", o, &p.out, p.cfg.AppendEOS); err != nil {
			return e, false, err
		}
	}
	if p.first == nil {
		p.first = &e
	} else if err := sameFields(p.first, &e); err != nil {
		return e, false, err
	}
	if m := p.cfg.MaxLen; m > 0 && (e.Input.Len() > m || e.Output.Len() > m) {
		if p.cfg.OverLong == ErrorLong {
			return e, false, ferr(ErrTooLong, "example of %d input and %d output steps exceeds the maximum length %d", e.Input.Len(), e.Output.Len(), m)
		}
		return e, false, nil
	}
	return e, true, nil
}

// sameFields reports an error unless e has "target" and "output" exactly
// when the first example had them, so that any batch collates.
func sameFields(first, e *Example) error {
	for _, f := range []struct {
		name     string
		had, has bool
	}{
		{"target", first.Label != NoLabel, e.Label != NoLabel},
		{"output", first.Output.Len() > 0, e.Output.Len() > 0},
	} {
		if f.had && !f.has {
			return ferr(ErrSyntax, "missing %q, which the first example has", f.name)
		}
		if !f.had && f.has {
			return ferr(ErrSyntax, "unexpected %q: the first example has none", f.name)
		}
	}
	return nil
}

func (p *jsonlParser) parseLabel(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok || !isInteger(n) {
		return 0, ferr(ErrSyntax, `"target": expected integer, got %s`, jsonType(v))
	}
	l, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil || l < 0 {
		return 0, ferr(ErrLabelRange, `"target": label %s negative or too large`, n)
	}
	if p.cfg.Classes > 0 && l >= int64(p.cfg.Classes) {
		return 0, ferr(ErrLabelRange, `"target": label %s outside [0, %d)`, n, p.cfg.Classes)
	}
	return int(l), nil
}

// parseSeq reads an array as tokens or features, settling spec on first use.
func (p *jsonlParser) parseSeq(field string, v any, spec *seqSpec, eos bool) (Seq, error) {
	arr, ok := v.([]any)
	if !ok {
		return Seq{}, ferr(ErrSyntax, "%q: expected array, got %s", field, jsonType(v))
	}
	if len(arr) == 0 {
		return Seq{}, ferr(ErrSyntax, "%q: empty sequence", field)
	}
	if spec.dim < 0 {
		if err := spec.settle(field, arr); err != nil {
			return Seq{}, err
		}
	}
	if spec.kind == TokenKind {
		return p.parseTokens(field, arr, eos)
	}
	return parseFeatures(field, arr, spec.dim)
}

// settle fixes the kind and width from the first example's array.
func (s *seqSpec) settle(field string, arr []any) error {
	inner, vec := arr[0].([]any)
	if s.kind == AutoKind {
		s.kind = FeatureKind
		if !vec && allIntegers(arr) {
			s.kind = TokenKind
		}
	}
	s.dim = 1
	if s.kind == TokenKind {
		s.dim = 0
	} else if vec {
		s.dim = len(inner)
	}
	if s.dim == 0 && s.kind == FeatureKind {
		return ferr(ErrSyntax, "%q[0]: empty feature vector", field)
	}
	return nil
}

func allIntegers(arr []any) bool {
	for _, x := range arr {
		n, ok := x.(json.Number)
		if !ok || !isInteger(n) {
			return false
		}
	}
	return true
}

func (p *jsonlParser) parseTokens(field string, arr []any, eos bool) (Seq, error) {
	toks := make([]int32, 0, len(arr)+1)
	for i, x := range arr {
		n, ok := x.(json.Number)
		if !ok || !isInteger(n) {
			got := jsonType(x)
			if ok {
				got = "number " + string(n)
			}
			return Seq{}, ferr(ErrSyntax, "%q[%d]: expected integer token, got %s (the file's first example set integer tokens; configure FeatureKind to read numbers as features)", field, i, got)
		}
		t, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil || t < 0 {
			return Seq{}, ferr(ErrLabelRange, "%q[%d]: token %s negative or too large", field, i, n)
		}
		if p.cfg.Vocab > 0 && t >= int64(p.cfg.Vocab) {
			return Seq{}, ferr(ErrLabelRange, "%q[%d]: token %s outside [0, %d)", field, i, n, p.cfg.Vocab)
		}
		toks = append(toks, int32(t))
	}
	if eos {
		toks = append(toks, p.cfg.EOS)
	}
	return Seq{Tokens: toks}, nil
}

// parseFeatures reads numbers (dim 1, scalars allowed) or arrays of dim
// numbers.
func parseFeatures(field string, arr []any, dim int) (Seq, error) {
	vals := make([]float32, 0, len(arr)*dim)
	for i, x := range arr {
		if n, ok := x.(json.Number); ok && dim == 1 {
			f, err := finite32(n)
			if err != nil {
				return Seq{}, ferr(ErrSyntax, "%q[%d]: %v", field, i, err)
			}
			vals = append(vals, f)
			continue
		}
		vec, ok := x.([]any)
		if !ok {
			return Seq{}, ferr(ErrSyntax, "%q[%d]: expected array of %d numbers, got %s", field, i, dim, jsonType(x))
		}
		if len(vec) != dim {
			return Seq{}, ferr(ErrSyntax, "%q[%d]: expected %d features, got %d", field, i, dim, len(vec))
		}
		for j, y := range vec {
			n, ok := y.(json.Number)
			if !ok {
				return Seq{}, ferr(ErrSyntax, "%q[%d][%d]: expected number, got %s", field, i, j, jsonType(y))
			}
			f, err := finite32(n)
			if err != nil {
				return Seq{}, ferr(ErrSyntax, "%q[%d][%d]: %v", field, i, j, err)
			}
			vals = append(vals, f)
		}
	}
	return Seq{Values: vals, Dim: dim}, nil
}

func finite32(n json.Number) (float32, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(float64(float32(f)), 0) {
		return 0, fmt.Errorf("number %s out of float32 range", n)
	}
	return float32(f), nil
}

func isInteger(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }

// jsonType names the JSON type of a decoded value, for messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
