package cli

import (
	"bytes"
	"flag"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCompletionFlagsMatchFlagSets: the flags completed for a command are
// exactly those its flag set defines.
func TestCompletionFlagsMatchFlagSets(t *testing.T) {
	c, _ := lookup("train")
	got, err := flagNames(c)
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var jf jobFlags
	jf.register(fs)
	var want []string
	fs.VisitAll(func(f *flag.Flag) { want = append(want, "--"+f.Name) })
	want = append(want, "--workers", "--dir", "--text", "--steps", "--minutes", "--fresh", "--pin", "--sample", "--insecure", "--log-level", "--init")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("train flags %q, want %q", got, want)
	}
}

func TestCompletionBash(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Recur([]string{"completion", "bash"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	script := out.String()
	for _, want := range []string{"complete -o filenames -F _recur recur", `gendata) flags="--max --min --n --out --seed"; words="reverse sort add seasonal"`,
		"--checkpoint --n --prime --run --seed --temperature", "--key-file"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	for _, c := range commands() {
		if !strings.Contains(script, "    "+c.name+") ") {
			t.Errorf("script lacks command %s", c.name)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(script)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v\n%s", err, msg)
		}
		for words, want := range map[string]string{"recur tr": "train", "recur gendata --o": "--out", "recur gendata s": "sort seasonal",
			"recur help ke": "keygen", "recur train --work": "--workers", "recur train --set model.hi": "model.hidden="} {
			w := strings.Fields(words)
			cmd := exec.Command(bash, "-c", script+`COMP_WORDS=(`+words+`); COMP_CWORD=`+strconv.Itoa(len(w)-1)+`; _recur; echo "${COMPREPLY[*]}"`)
			got, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(got)) != want {
				t.Errorf("completing %q: %q (%v), want %q", words, got, err, want)
			}
		}
	}
	if code := Recur([]string{"completion", "fish"}, &out, &errOut); code != ExitUsage {
		t.Fatalf("completion fish: exit %d", code)
	}
}
