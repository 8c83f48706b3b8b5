package shard

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestReadJSONLKinds(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		cfg        JSONLConfig
		check      func(Examples) bool
	}{
		{"tokens and label", `{"input":[3,1,2],"target":1}` + "\n\n" + `{"input":[5],"target":0}`, JSONLConfig{Classes: 2},
			func(e Examples) bool {
				return len(e) == 2 && slices.Equal(e[0].Input.Tokens, []int32{3, 1, 2}) && e[1].Label == 0
			}},
		{"scalar floats", `{"input":[0.5,2]}`, JSONLConfig{},
			func(e Examples) bool {
				return e[0].Input.Dim == 1 && e[0].Input.Values[1] == 2 && e[0].Label == NoLabel
			}},
		{"vectors", `{"input":[[1,2],[3,4.5]]}`, JSONLConfig{},
			func(e Examples) bool {
				return e[0].Input.Dim == 2 && e[0].Input.Len() == 2 && e[0].Input.Values[3] == 4.5
			}},
		{"forced features", `{"input":[1,2]}`, JSONLConfig{Input: FeatureKind},
			func(e Examples) bool { return e[0].Input.Dim == 1 }},
		{"seq2seq with EOS", `{"input":[1,2],"output":[4,5]}`, JSONLConfig{AppendEOS: true, EOS: 9},
			func(e Examples) bool { return slices.Equal(e[0].Output.Tokens, []int32{4, 5, 9}) }},
		{"features after tokens settle as features", `{"input":[0.5]}` + "\n" + `{"input":[1,2]}`, JSONLConfig{},
			func(e Examples) bool { return e[1].Input.Dim == 1 && e[1].Input.Values[1] == 2 }},
	} {
		exs, _, err := ReadJSONL(strings.NewReader(tc.text), "d.jsonl", tc.cfg)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(exs) {
			t.Errorf("%s: got %+v", tc.name, exs)
		}
	}
}

func TestReadJSONLErrors(t *testing.T) {
	ok := `{"input":[1,2],"target":0}` + "\n"
	for _, tc := range []struct {
		name, line string
		cfg        JSONLConfig
		want       error
		msg        string
	}{
		{"string target", `{"input":[1],"target":"3"}`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: "target": expected integer, got string`},
		{"float target", `{"input":[1],"target":1.5}`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: "target": expected integer, got number`},
		{"label range", `{"input":[1],"target":4}`, JSONLConfig{Classes: 4}, ErrLabelRange, `d.jsonl:2: "target": label 4 outside [0, 4)`},
		{"negative label", `{"input":[1],"target":-1}`, JSONLConfig{}, ErrLabelRange, ""},
		{"token range", `{"input":[1,70]}`, JSONLConfig{Vocab: 50}, ErrLabelRange, `d.jsonl:2: "input"[1]: token 70 outside [0, 50)`},
		{"float among tokens", `{"input":[1,0.5]}`, JSONLConfig{}, ErrSyntax, ""},
		{"missing input", `{"target":1}`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: missing "input"`},
		{"input not array", `{"input":"abc"}`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: "input": expected array, got string`},
		{"empty input", `{"input":[]}`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: "input": empty sequence`},
		{"bad JSON", `{"input":[1,}`, JSONLConfig{}, ErrSyntax, ""},
		{"two values", `{"input":[1]} {}`, JSONLConfig{}, ErrSyntax, ""},
		{"not object", `[1,2]`, JSONLConfig{}, ErrSyntax, ""},
		{"null", `null`, JSONLConfig{}, ErrSyntax, `d.jsonl:2: expected an object, got null`},
		{"too long", `{"input":[1,2,3],"target":1}`, JSONLConfig{MaxLen: 2, OverLong: ErrorLong}, ErrTooLong, `d.jsonl:2: example of 3 input and 0 output steps exceeds the maximum length 2`},
		{"huge token", `{"input":[99999999999]}`, JSONLConfig{}, ErrLabelRange, ""},
	} {
		_, _, err := ReadJSONL(strings.NewReader(ok+tc.line+"\n"+ok), "d.jsonl", tc.cfg)
		if !errors.Is(err, tc.want) || (tc.msg != "" && err.Error() != tc.msg) {
			t.Errorf("%s: err %v, want %v %q", tc.name, err, tc.want, tc.msg)
		}
	}
	for _, tc := range []struct {
		name, text string
		msg        string
	}{
		{"vector width", `{"input":[[1,2]]}` + "\n" + `{"input":[[1,2],[3]]}`, `d.jsonl:2: "input"[1]: expected 2 features, got 1`},
		{"empty vector", `{"input":[[]]}`, `d.jsonl:1: "input"[0]: empty feature vector`},
		{"empty file", "", "d.jsonl: no examples (0 lines, 0 skipped)"},
		{"label then none", `{"input":[1],"target":0}` + "\n" + `{"input":[2]}`, `d.jsonl:2: missing "target", which the first example has`},
		{"output appears", `{"input":[1]}` + "\n" + `{"input":[2],"output":[3]}`, `d.jsonl:2: unexpected "output": the first example has none`},
		{"nan-like", `{"input":[[1e39]]}`, `d.jsonl:1: "input"[0][0]: number 1e39 out of float32 range`},
	} {
		_, _, err := ReadJSONL(strings.NewReader(tc.text), "d.jsonl", JSONLConfig{})
		if err == nil || err.Error() != tc.msg {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.msg)
		}
	}
}

func TestReadJSONLSkipLong(t *testing.T) {
	text := `{"input":[1,2,3]}` + "\n" + `{"input":[1]}` + "\n" + `{"input":[1,2,3,4]}`
	exs, st, err := ReadJSONL(strings.NewReader(text), "d.jsonl", JSONLConfig{MaxLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 1 || st != (JSONLStats{Lines: 3, Examples: 1, Skipped: 2}) {
		t.Fatalf("%d examples, stats %+v", len(exs), st)
	}
}

func FuzzReadJSONL(f *testing.F) {
	f.Add(`{"input":[1,2],"target":0}`+"\n"+`{"input":[3],"target":1}`, uint8(0))
	f.Add(`{"input":[[0.5,1]],"output":[[2,3]]}`, uint8(1))
	f.Add(`{"input":[1],"output":[2]}`, uint8(2))
	f.Add(`{"input":[1,2,3,4,5,6,7,8,9],"output":[2]}`, uint8(8))
	f.Fuzz(func(t *testing.T, text string, mode uint8) {
		cfg := JSONLConfig{Input: SeqKind(mode % 3), MaxLen: 8, Classes: 5, AppendEOS: mode&4 != 0}
		if mode&8 != 0 {
			cfg.OverLong = ErrorLong
		}
		exs, st, err := ReadJSONL(strings.NewReader(text), "f.jsonl", cfg)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			return
		}
		if st.Examples != len(exs) || cfg.OverLong == ErrorLong && st.Skipped > 0 {
			t.Fatalf("stats %+v for %d examples", st, len(exs))
		}
		for i := range exs {
			if exs[i].Input.Len() == 0 || exs[i].Input.Len() > 8 || exs[i].Output.Len() > 8 {
				t.Fatalf("example %d of lengths %d, %d", i, exs[i].Input.Len(), exs[i].Output.Len())
			}
		}
		// Every accepted set must collate into one batch without error.
		if _, err := Collate(exs); err != nil {
			t.Fatal(err)
		}
	})
}
