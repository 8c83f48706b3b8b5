package job

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"
)

// MemoryLimit is the memory one worker may use and where the figure came
// from (for the message that refuses a job too large for it).
type MemoryLimit struct {
	Bytes  float64 // 0: unknown, no check
	Source string  // "cluster.memory_limit", "cgroup memory.max", "/proc/meminfo MemTotal", ...
}

// MaxMemoryLimit is the largest cluster.memory_limit: 1 PiB. A job whose
// estimate fits under it has no buffer whose size overflows an int.
const MaxMemoryLimit = 1 << 50

// unlimited is where cgroup v1 "no limit" values start (the kernel writes
// 2^63 rounded down to a page).
const unlimited = 1 << 60

// Limit returns cluster.memory_limit when it is set, else the limit of
// this machine (DetectMemoryLimit on the root file system).
func (c ClusterConfig) Limit() (MemoryLimit, error) {
	if strings.TrimSpace(c.MemoryLimit) != "" {
		n, err := ParseBytes(c.MemoryLimit)
		if err != nil {
			return MemoryLimit{}, fmt.Errorf("config cluster.memory_limit: %w", err)
		}
		return MemoryLimit{Bytes: n, Source: "cluster.memory_limit"}, nil
	}
	return DetectMemoryLimit(os.DirFS("/")), nil
}

// DetectMemoryLimit returns the memory this process may use, read from
// fsys (the root file system, as os.DirFS("/")): the smallest of its
// cgroup v2 memory.max (its own cgroup and every parent), its cgroup v1
// memory.limit_in_bytes, and MemTotal of /proc/meminfo. Where none can be
// read (not Linux) the limit is unknown: Bytes 0.
func DetectMemoryLimit(fsys fs.FS) MemoryLimit {
	var best MemoryLimit
	take := func(n float64, src string) {
		if n > 0 && n < unlimited && (best.Bytes == 0 || n < best.Bytes) {
			best = MemoryLimit{Bytes: n, Source: src}
		}
	}
	v2, v1 := cgroupPaths(fsys)
	for _, p := range ancestors(v2) {
		f := path.Join("sys/fs/cgroup", p, "memory.max")
		take(readNumber(fsys, f), "cgroup memory.max (/"+f+")")
	}
	for _, p := range ancestors(v1) {
		f := path.Join("sys/fs/cgroup/memory", p, "memory.limit_in_bytes")
		take(readNumber(fsys, f), "cgroup memory.limit_in_bytes (/"+f+")")
	}
	take(memTotal(fsys), "/proc/meminfo MemTotal")
	return best
}

// cgroupPaths returns this process's cgroup v2 path and cgroup v1 memory
// path from /proc/self/cgroup ("" when absent, "/" for the root).
func cgroupPaths(fsys fs.FS) (v2, v1 string) {
	b, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return "/", "/"
	}
	v2, v1 = "/", "/"
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case containsWord(parts[1], "memory"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

func containsWord(list, w string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == w {
			return true
		}
	}
	return false
}

// ancestors returns p and its parents up to the root, cleaned and
// relative ("a/b", "a", ".").
func ancestors(p string) []string {
	p = path.Clean("/" + p)
	var out []string
	for {
		out = append(out, strings.TrimPrefix(p, "/"))
		if p == "/" {
			break
		}
		p = path.Dir(p)
	}
	for i, s := range out {
		if s == "" {
			out[i] = "."
		}
	}
	return out
}

// readNumber reads a file holding one integer ("max" or anything else: 0).
func readNumber(fsys fs.FS, name string) float64 {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0
	}
	return float64(n)
}

// memTotal reads MemTotal (kB) of /proc/meminfo, in bytes.
func memTotal(fsys fs.FS) float64 {
	f, err := fsys.Open("proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(fields) > 1 && strings.EqualFold(fields[1], "kB") {
			return float64(n) * 1024
		}
		return float64(n)
	}
	return 0
}

// byteUnits are the suffixes ParseBytes accepts: SI (powers of 1000) and
// IEC (powers of 1024).
var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12, "p": 1e15, "pb": 1e15,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
	"ti": 1 << 40, "tib": 1 << 40, "pi": 1 << 50, "pib": 1 << 50,
}

// ParseBytes reads a size such as "24GB", "1.5 GiB", "512Mi" or "1000000"
// (bytes). K, M, G, T, P (with or without B) are powers of 1000; Ki, Mi,
// Gi, Ti, Pi (with or without B) powers of 1024; case does not matter.
// The size must be positive and at most MaxMemoryLimit.
func ParseBytes(s string) (float64, error) {
	t := strings.TrimSpace(s)
	i := strings.LastIndexFunc(t, func(r rune) bool { return !unicode.IsLetter(r) }) + 1
	num, unit := strings.TrimSpace(t[:i]), t[i:]
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KB, MB, GB, TB, or KiB, MiB, GiB, TiB)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q: want a number and a unit, as 24GB or 16GiB", s)
	}
	n := f * mult
	if n < 1 || n > MaxMemoryLimit {
		return 0, fmt.Errorf("size %q: want from 1 byte to 1 PiB", s)
	}
	return math.Floor(n), nil
}

// FormatBytes writes n bytes for people: "120 GB", "512 MB", "900 B".
func FormatBytes(n float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if n >= u.size {
			v := n / u.size
			if v < 10 {
				return strconv.FormatFloat(v, 'f', 1, 64) + " " + u.name
			}
			return strconv.FormatFloat(v, 'f', 0, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + " B"
}
