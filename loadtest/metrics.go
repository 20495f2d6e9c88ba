package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Metric names read from the server's admin /metrics.
const (
	metricCPU        = "process_cpu_seconds_total"
	metricAllocBytes = "go_memstats_alloc_bytes_total"
	metricGCPauseSum = "go_gc_duration_seconds_sum"
)

// Metrics is one scrape of a Prometheus text exposition: series → value.
// A series is keyed by its name, followed by its labels exactly as the
// server wrote them: `orderflow_http_requests_total{code="201"}`.
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text format: `# …` comment lines and
// `name value [timestamp]` or `name{labels} value [timestamp]` sample lines.
// It does not normalize label order, so keys compare equal only between
// scrapes of the same server. A malformed sample line is an error.
func ParseMetrics(b []byte) (Metrics, error) {
	m := Metrics{}
	for lineNo := 1; len(b) > 0; lineNo++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, rest, err := splitSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", lineNo, line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) < 1 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d %q: want a value and an optional timestamp", lineNo, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", lineNo, line, err)
		}
		m[key] = v
	}
	return m, nil
}

// splitSeries splits a sample line into its series key (name plus any
// {labels}) and the rest. Label values are quoted and may contain spaces,
// braces and escaped quotes.
func splitSeries(line []byte) (key, rest string, err error) {
	i := bytes.IndexAny(line, "{ \t")
	if i <= 0 {
		return "", "", fmt.Errorf("no value")
	}
	if line[i] != '{' {
		return string(line[:i]), string(line[i:]), nil
	}
	inQuote := false
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case inQuote && c == '\\':
			j++ // skip the escaped character
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return string(line[:j+1]), string(line[j+1:]), nil
		}
	}
	return "", "", fmt.Errorf("unterminated label set")
}

// ScrapeMetrics fetches and parses admin/metrics, e.g. admin =
// "http://127.0.0.1:6060". It blocks for at most 5s or until ctx is done.
func ScrapeMetrics(ctx context.Context, admin string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := strings.TrimSuffix(admin, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	m, err := ParseMetrics(body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// ServerUsage is what the server spent during the measured window, from two
// scrapes of its /metrics.
type ServerUsage struct {
	// WallSeconds is the time between the two scrapes.
	WallSeconds float64 `json:"wall_seconds"`
	// CPUSeconds is the process_cpu_seconds_total delta; CPUCores is it per
	// wall second (2.0 = two cores busy).
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUCores   float64 `json:"cpu_cores"`
	// CPUSecondsPer1000Acked is CPU seconds per 1,000 acknowledged changes
	// (orders and status updates).
	CPUSecondsPer1000Acked float64 `json:"cpu_seconds_per_1000_acked"`
	// AllocBytesPerSecond is the go_memstats_alloc_bytes_total delta per
	// wall second; AllocBytesPerAcked the same delta per acknowledged order.
	AllocBytesPerSecond float64 `json:"alloc_bytes_per_second"`
	AllocBytesPerAcked  float64 `json:"alloc_bytes_per_acked"`
	// GCPauseFraction is the go_gc_duration_seconds_sum delta over wall
	// time: the share of time the world was stopped for GC. Concurrent mark
	// work is not in it; see CPUCores for that.
	GCPauseFraction float64 `json:"gc_pause_fraction"`
	// Counters holds the non-zero deltas of the server's own counters
	// (orderflow_*_total).
	Counters map[string]float64 `json:"counters,omitempty"`
	// Missing lists the metrics above that a scrape did not have (or had
	// as NaN or ±Inf); their fields are 0.
	Missing []string `json:"missing,omitempty"`
}

// NewServerUsage computes usage from the scrapes before and after a window
// of wall time in which acked orders were acknowledged.
func NewServerUsage(before, after Metrics, wall time.Duration, acked int64) *ServerUsage {
	u := &ServerUsage{WallSeconds: wall.Seconds(), Counters: map[string]float64{}}
	delta := func(name string) float64 {
		b, okB := before[name]
		a, okA := after[name]
		if !okB || !okA || !finite(a-b) {
			u.Missing = append(u.Missing, name)
			return 0
		}
		return a - b
	}
	u.CPUSeconds = delta(metricCPU)
	alloc := delta(metricAllocBytes)
	gc := delta(metricGCPauseSum)
	if u.WallSeconds > 0 {
		u.CPUCores = u.CPUSeconds / u.WallSeconds
		u.AllocBytesPerSecond = alloc / u.WallSeconds
		u.GCPauseFraction = gc / u.WallSeconds
	}
	if acked > 0 {
		u.CPUSecondsPer1000Acked = u.CPUSeconds * 1000 / float64(acked)
		u.AllocBytesPerAcked = alloc / float64(acked)
	}
	for k, a := range after {
		name, _, _ := strings.Cut(k, "{")
		if !strings.HasPrefix(name, "orderflow_") || !strings.HasSuffix(name, "_total") {
			continue
		}
		// A series born during the run started at 0; unchanged ones are left out.
		if d := a - before[k]; d != 0 && finite(d) {
			u.Counters[k] = d
		}
	}
	slices.Sort(u.Missing)
	return u
}

// finite reports whether v can be written as JSON.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// usageProbe measures the server's (via /metrics) and the generator's own
// (via getrusage) cost over the measured window. begin runs when measuring
// starts, end after the workers stop; a sync.WaitGroup orders the two.
type usageProbe struct {
	began         bool
	t0            time.Time
	cpu0          time.Duration
	before, after Metrics
	err           error // why there is no server usage
	wall, cpu     time.Duration
	pgPID         int
	pg0, pg       time.Duration // postgres CPU at begin, then used over the window
	pgErr         error         // why there is no postgres usage
}

func (u *usageProbe) begin(ctx context.Context, admin string) {
	u.began, u.t0, u.cpu0 = true, time.Now(), processCPU()
	if u.pgPID > 0 {
		u.pg0, u.pgErr = ProcessTreeCPU(u.pgPID)
	}
	if admin != "" {
		u.before, u.err = ScrapeMetrics(ctx, admin)
	}
}

func (u *usageProbe) end(ctx context.Context, admin string) {
	if !u.began {
		return
	}
	u.wall, u.cpu = time.Since(u.t0), processCPU()-u.cpu0
	if u.pgPID > 0 && u.pgErr == nil {
		var pg time.Duration
		pg, u.pgErr = ProcessTreeCPU(u.pgPID)
		u.pg = pg - u.pg0
	}
	if admin != "" && u.err == nil {
		u.after, u.err = ScrapeMetrics(ctx, admin)
	}
}

// server returns the server's usage, or why there is none: ("", nil) when
// no admin URL was given or the run ended during warmup.
func (u *usageProbe) server(acked int64) (*ServerUsage, string) {
	switch {
	case u.err != nil:
		return nil, u.err.Error()
	case u.before == nil || u.after == nil:
		return nil, ""
	}
	return NewServerUsage(u.before, u.after, u.wall, acked), ""
}

// postgres returns PostgreSQL's CPU cost over the window, or why there is
// none: (nil, "") when no postmaster was given or the run ended during
// warmup.
func (u *usageProbe) postgres(acked int64) (*ProcessUsage, string) {
	switch {
	case u.pgPID == 0 || !u.began:
		return nil, ""
	case u.pgErr != nil:
		return nil, u.pgErr.Error()
	}
	return NewProcessUsage(u.pgPID, u.pg, u.wall, acked), ""
}

// ProcessUsage is the CPU a process (with its children) used over the
// measured window, read from /proc: PostgreSQL's postmaster and backends.
type ProcessUsage struct {
	PID         int     `json:"pid"`
	WallSeconds float64 `json:"wall_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUCores    float64 `json:"cpu_cores"`
	// CPUSecondsPer1000Acked is CPU seconds per 1,000 acknowledged changes
	// (orders and status updates),
	// comparable with [ServerUsage.CPUSecondsPer1000Acked].
	CPUSecondsPer1000Acked float64 `json:"cpu_seconds_per_1000_acked"`
}

// NewProcessUsage computes usage from cpu used over wall while acked orders
// were acknowledged.
func NewProcessUsage(pid int, cpu, wall time.Duration, acked int64) *ProcessUsage {
	u := &ProcessUsage{PID: pid, WallSeconds: wall.Seconds(), CPUSeconds: cpu.Seconds()}
	if u.WallSeconds > 0 {
		u.CPUCores = u.CPUSeconds / u.WallSeconds
	}
	if acked > 0 {
		u.CPUSecondsPer1000Acked = u.CPUSeconds * 1000 / float64(acked)
	}
	return u
}

// generator returns the load generator's own CPU cost.
func (u *usageProbe) generator(acked int64) GeneratorUsage {
	g := GeneratorUsage{CPUSeconds: u.cpu.Seconds()}
	if s := u.wall.Seconds(); s > 0 {
		g.CPUCores = g.CPUSeconds / s
	}
	if acked > 0 {
		g.CPUSecondsPer1000Acked = g.CPUSeconds * 1000 / float64(acked)
	}
	return g
}
