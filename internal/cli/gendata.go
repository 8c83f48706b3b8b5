package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// GenData runs `recur gendata`: synthetic data sets made on the fly for the
// example tasks (the repository ships no data).
//
//	reverse, sort: JSONL {"input": [...], "output": [...]} of digit strings
//	               (tokens 2..11 are the digits 0..9; 0 is BOS, 1 is EOS)
//	add:           JSONL, two numbers written as digits with a "+" (token
//	               12) to their sum
//	seasonal:      CSV, one column: a daily and a weekly season (hourly
//	               steps), their nonlinear interaction, and noise
func GenData(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gendata", stderr, "reverse|sort|add|seasonal [flags]",
		"Writes a synthetic data set for the example tasks (examples/*.yaml):\n"+
			"  reverse, sort  JSONL {\"input\": [...], \"output\": [...]} of digit strings for seq2seq\n"+
			"                 (tokens 2..11 are the digits 0..9; 0 is BOS, 1 is EOS)\n"+
			"  add            JSONL: two numbers with a \"+\" (token 12) to their sum, for seq2seq\n"+
			"  seasonal       CSV, one column: a daily and a weekly season with noise, for forecast")
	n := fs.Int("n", 20000, "examples (rows for seasonal)")
	minLen := fs.Int("min", 1, "shortest digit string")
	maxLen := fs.Int("max", 20, "longest digit string")
	seed := fs.Uint64("seed", 1, "random seed")
	out := fs.String("out", "", "output file (default: standard output)")
	kind, err := parseWithArg(fs, args)
	if err != nil {
		return err
	}
	if !slices.Contains(dataSets, kind) {
		return fmt.Errorf("%w: gendata: unknown data set %q (%s)", errUsage, kind, strings.Join(dataSets, ", "))
	}
	if *n <= 0 || *minLen < 1 || *maxLen < *minLen {
		return fmt.Errorf("%w: gendata: need n > 0 and 1 <= min <= max (n %d, min %d, max %d)", errUsage, *n, *minLen, *maxLen)
	}
	if *out == "" {
		bw := bufio.NewWriter(stdout)
		genData(bw, kind, *n, *minLen, *maxLen, *seed)
		return bw.Flush()
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	genData(bw, kind, *n, *minLen, *maxLen, *seed)
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dataSets are the kinds gendata makes.
var dataSets = []string{"reverse", "sort", "add", "seasonal"}

// genData writes n examples of data set kind (one of dataSets) to bw.
func genData(bw *bufio.Writer, kind string, n, minLen, maxLen int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	digits := func(L int) []int {
		d := make([]int, L)
		for i := range d {
			d[i] = rng.IntN(10)
		}
		return d
	}
	tokens := func(d []int) string {
		s := make([]string, len(d))
		for i, v := range d {
			s[i] = strconv.Itoa(v + 2)
		}
		return strings.Join(s, ",")
	}
	switch kind {
	case "reverse", "sort":
		for i := 0; i < n; i++ {
			in := digits(minLen + rng.IntN(maxLen-minLen+1))
			o := slices.Clone(in)
			if kind == "reverse" {
				slices.Reverse(o)
			} else {
				slices.Sort(o)
			}
			fmt.Fprintf(bw, "{\"input\": [%s], \"output\": [%s]}\n", tokens(in), tokens(o))
		}
	case "add":
		for i := 0; i < n; i++ {
			a, b := digits(minLen+rng.IntN(maxLen-minLen+1)), digits(minLen+rng.IntN(maxLen-minLen+1))
			sum := addDigits(a, b)
			fmt.Fprintf(bw, "{\"input\": [%s,12,%s], \"output\": [%s]}\n", tokens(a), tokens(b), tokens(sum))
		}
	case "seasonal":
		fmt.Fprintln(bw, "value")
		for i := 0; i < n; i++ {
			t := float64(i)
			v := 20 + 4*math.Sin(2*math.Pi*t/24) + 2*math.Sin(2*math.Pi*t/168) +
				1.5*math.Max(0, math.Sin(2*math.Pi*t/24))*math.Sin(2*math.Pi*t/168) + 0.5*rng.NormFloat64()
			fmt.Fprintf(bw, "%.4f\n", v)
		}
	}
}

// addDigits adds two most-significant-first digit strings.
func addDigits(a, b []int) []int {
	var out []int
	carry := 0
	for i, j := len(a)-1, len(b)-1; i >= 0 || j >= 0 || carry > 0; i, j = i-1, j-1 {
		s := carry
		if i >= 0 {
			s += a[i]
		}
		if j >= 0 {
			s += b[j]
		}
		out = append(out, s%10)
		carry = s / 10
	}
	slices.Reverse(out)
	for len(out) > 1 && out[0] == 0 {
		out = out[1:]
	}
	return out
}

// parseWithArg parses a command line of one positional argument, before
// or after the flags ("gendata add -n 5", "gendata -n 5 add"), and
// returns it.
func parseWithArg(fs *flag.FlagSet, args []string) (string, error) {
	var arg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		arg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", usageError(err)
	}
	if arg == "" && fs.NArg() > 0 {
		arg = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", usageError(err)
		}
	}
	switch {
	case arg == "":
		fs.Usage()
		return "", fmt.Errorf("%w: %s needs an argument", errUsage, fs.Name())
	case fs.NArg() > 0:
		return "", fmt.Errorf("%w: %s: unexpected %q after %q", errUsage, fs.Name(), fs.Arg(0), arg)
	}
	return arg, nil
}
