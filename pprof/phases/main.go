// Command phases splits a CPU profile of orderflow into the phases of an
// order's life, for the per-phase table in RESULTS.md:
//
//	go run ./pprof/phases [-orders N] [-by-frame] pprof/out/<prefix>.cpu.pprof ...
//
// It reads `go tool pprof -traces` (no dependency beyond the go command)
// and gives each sample to the phase of the leaf-most orderflow frame on
// its stack, so the CPU of pgx, franz-go, encoding and allocation counts
// where orderflow called it from (pgx under store.SweepEvents is the relay,
// under store.WriteOrders the group commit). A stack with no orderflow
// frame goes by the library that runs it (fasthttp's connection loop: HTTP
// read/write; franz-go's own goroutines: publish; pgx's pool: commit) or
// by the runtime (GC workers, the scheduler). With -orders, the orders
// acknowledged while the profile ran, it prints µs of CPU per order too.
//
// Why not pprof labels: labels need a pprof.Do on the hot path per request
// and per batch (an allocation each), and the stacks already say which
// phase a sample is in.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// phase names, in the order the table lists them.
const (
	phHTTP     = "HTTP read/write (fasthttp, net)"
	phHandler  = "handler (routing, admission, answers)"
	phDecode   = "decode + price + seal"
	phPipeline = "pipeline (queues, batching, hand-offs)"
	phCommit   = "group commit (store, pgx)"
	phPublish  = "publish (franz-go, fast path)"
	phRelay    = "outbox relay (sweep, acks, truncation, gauges)"
	phMetrics  = "metrics, logging, admin"
	phGC       = "GC (background workers)"
	phSched    = "scheduler, idle, timers"
	phOther    = "other"
)

var order = []string{phHTTP, phHandler, phDecode, phPipeline, phCommit, phPublish, phRelay, phMetrics, phGC, phSched, phOther}

const mod = "github.com/orderflow/orderflow/"

// ours maps an orderflow frame to its phase; "" means keep looking further
// up (helpers that serve every phase).
func ours(fn string) string {
	rest := strings.TrimPrefix(fn, mod)
	switch {
	case strings.HasPrefix(rest, "engine/internal/"):
		return ""
	case strings.HasPrefix(rest, "engine/store."):
		if relayStore.MatchString(rest) {
			return phRelay
		}
		return phCommit
	case strings.HasPrefix(rest, "engine/publish."):
		if relayPublish.MatchString(rest) {
			return phRelay
		}
		return phPublish
	case strings.HasPrefix(rest, "engine/ingest."):
		if decodeIngest.MatchString(rest) {
			return phDecode
		}
		return phHandler
	case strings.HasPrefix(rest, "engine/order."), strings.HasPrefix(rest, "engine/catalog."):
		return phDecode
	case strings.HasPrefix(rest, "engine/pipeline."):
		return phPipeline
	case strings.HasPrefix(rest, "engine/metrics."), strings.HasPrefix(rest, "cmd/"):
		return phMetrics
	case strings.HasPrefix(rest, "engine."):
		return phPipeline // the engine's sinks hand batches between stages
	}
	return phOther
}

var (
	relayStore   = regexp.MustCompile(`\.\(\*Store\)\.(SweepEvents|OutboxStats|ReclaimOutbox|DeadOrders|RequeueDead)|\.settle|\.readSweepPage|\.parkEvents|\.reclaim`)
	relayPublish = regexp.MustCompile(`(?i)sweep|gauge|reclaim|relay|dead`)
	decodeIngest = regexp.MustCompile(`(?i)decode|scan|parse|seal|price|valid`)
)

// lib classifies a frame of a stack that has no orderflow frame.
func lib(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/valyala/fasthttp"):
		return phHTTP
	case strings.HasPrefix(fn, "github.com/twmb/franz-go"):
		return phPublish
	case strings.HasPrefix(fn, "github.com/jackc/"):
		return phCommit
	case strings.HasPrefix(fn, "github.com/prometheus/"), strings.HasPrefix(fn, "net/http."), strings.HasPrefix(fn, "log/slog"):
		return phMetrics
	case strings.HasPrefix(fn, "runtime.gcBgMarkWorker"), strings.HasPrefix(fn, "runtime.bgsweep"),
		strings.HasPrefix(fn, "runtime.bgscavenge"), strings.HasPrefix(fn, "runtime.gcStart"),
		strings.HasPrefix(fn, "runtime.forEachP"), strings.HasPrefix(fn, "runtime.gcMarkDone"):
		return phGC
	case strings.HasPrefix(fn, "runtime.schedule"), strings.HasPrefix(fn, "runtime.findRunnable"),
		strings.HasPrefix(fn, "runtime.mcall"), strings.HasPrefix(fn, "runtime.park_m"),
		strings.HasPrefix(fn, "runtime.sysmon"), strings.HasPrefix(fn, "runtime.mstart"),
		strings.HasPrefix(fn, "runtime.goexit0"), strings.HasPrefix(fn, "runtime.timer"),
		strings.HasPrefix(fn, "time."):
		return phSched
	}
	return ""
}

// classify gives a stack (leaf first) its phase.
func classify(stack []string) string {
	for _, fn := range stack {
		if strings.HasPrefix(fn, mod) {
			if p := ours(fn); p != "" {
				return p
			}
		}
	}
	for _, fn := range stack {
		if p := lib(fn); p != "" {
			return p
		}
	}
	return phOther
}

type sample struct {
	value time.Duration
	stack []string
}

// parseTraces reads `go tool pprof -traces` output.
func parseTraces(r io.Reader) ([]sample, error) {
	var (
		out []sample
		cur *sample
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			if cur != nil && len(cur.stack) > 0 {
				out = append(out, *cur)
			}
			cur = &sample{}
			continue
		}
		if cur == nil {
			continue // the header
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(cur.stack) == 0 {
			if strings.HasSuffix(f[0], ":") { // a label line ("bytes:[...]")
				continue
			}
			d, err := time.ParseDuration(f[0])
			if err != nil {
				return nil, fmt.Errorf("sample value %q: %w", f[0], err)
			}
			cur.value = d
			if len(f) > 1 {
				cur.stack = append(cur.stack, f[1])
			}
			continue
		}
		if strings.HasSuffix(f[0], ":") {
			continue
		}
		cur.stack = append(cur.stack, f[0])
	}
	if cur != nil && len(cur.stack) > 0 {
		out = append(out, *cur)
	}
	return out, sc.Err()
}

func main() {
	orders := flag.Float64("orders", 0, "orders (or requests) acknowledged while the profile ran: prints µs of CPU per order")
	byFrame := flag.Bool("by-frame", false, "also list, per phase, the leaf-most frames that took the most time")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: phases [-orders N] [-by-frame] cpu.pprof ...")
		os.Exit(2)
	}
	totals := map[string]time.Duration{}
	frames := map[string]map[string]time.Duration{}
	var all time.Duration
	for _, path := range flag.Args() {
		var buf bytes.Buffer
		cmd := exec.Command("go", "tool", "pprof", "-traces", path)
		cmd.Stdout, cmd.Stderr = &buf, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "phases: go tool pprof -traces %s: %v\n", path, err)
			os.Exit(1)
		}
		samples, err := parseTraces(&buf)
		if err != nil {
			fmt.Fprintf(os.Stderr, "phases: %s: %v\n", path, err)
			os.Exit(1)
		}
		for _, s := range samples {
			p := classify(s.stack)
			totals[p] += s.value
			all += s.value
			if frames[p] == nil {
				frames[p] = map[string]time.Duration{}
			}
			frames[p][s.stack[0]] += s.value
		}
	}
	fmt.Printf("| phase | CPU | share |%s\n", map[bool]string{true: " µs per order |", false: ""}[*orders > 0])
	fmt.Printf("|---|---|---|%s\n", map[bool]string{true: "---|", false: ""}[*orders > 0])
	for _, p := range order {
		d := totals[p]
		if d == 0 {
			continue
		}
		line := fmt.Sprintf("| %s | %v | %.1f%% |", p, d.Round(10*time.Millisecond), 100*float64(d)/float64(all))
		if *orders > 0 {
			line += " " + strconv.FormatFloat(float64(d.Microseconds())/(*orders), 'f', 1, 64) + " |"
		}
		fmt.Println(line)
	}
	line := fmt.Sprintf("| all | %v | 100%% |", all.Round(10*time.Millisecond))
	if *orders > 0 {
		line += " " + strconv.FormatFloat(float64(all.Microseconds())/(*orders), 'f', 1, 64) + " |"
	}
	fmt.Println(line)
	if *byFrame {
		for _, p := range order {
			if totals[p] == 0 {
				continue
			}
			type kv struct {
				k string
				v time.Duration
			}
			var kvs []kv
			for k, v := range frames[p] {
				kvs = append(kvs, kv{k, v})
			}
			sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
			fmt.Printf("\n%s:\n", p)
			for i, e := range kvs {
				if i == 8 {
					break
				}
				fmt.Printf("  %8v  %s\n", e.v.Round(time.Millisecond), e.k)
			}
		}
	}
}
