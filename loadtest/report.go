package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is everything one run measured. It is the single data model every
// [Writer] renders — the terminal summary, the JSON file, and any chart
// writer — so a new output never needs the generator's internals. Counts,
// rates and latencies cover the measured window (after warmup); the id
// counts and the reconciliation cover the whole run.
type Report struct {
	RunID   string    `json:"run_id"`
	Started time.Time `json:"started"`
	Config  Config    `json:"config"`
	// ElapsedSeconds is the measured window: from the end of warmup until
	// the last answer arrived.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Counts         Counts  `json:"counts"`
	Rates          Rates   `json:"rates"`
	// Latency is of 2xx answers to order creation (single orders and
	// batches); in open loop measured from each request's scheduled send
	// time.
	Latency Latency `json:"latency"`
	// UpdateLatency is of 2xx answers to status updates (ScenarioMix only).
	UpdateLatency *Latency `json:"update_latency,omitempty"`
	// Series has one point per second of the measured window.
	Series []Second `json:"series"`
	// Windows has one point per Config.Window of the measured window (T is
	// its start in seconds, SpanSeconds its length), latencies at 3
	// significant figures; empty when Window is 0.
	Windows []Second `json:"windows,omitempty"`
	// Server is the server's cost from its /metrics; nil when not scraped,
	// with ServerError saying why when a scrape failed.
	Server      *ServerUsage `json:"server,omitempty"`
	ServerError string       `json:"server_error,omitempty"`
	// Postgres is the CPU PostgreSQL's processes used (Config.PostgresPID);
	// nil when not measured, with PostgresError saying why when /proc could
	// not be read.
	Postgres      *ProcessUsage `json:"postgres,omitempty"`
	PostgresError string        `json:"postgres_error,omitempty"`
	// Generator is the load generator's own cost over the measured window.
	Generator GeneratorUsage `json:"generator"`
	// Reconcile is nil when reconciliation did not run.
	Reconcile *ReconcileResult `json:"reconcile,omitempty"`
}

// Counts are answers by kind in the measured window.
type Counts struct {
	// Requests is every measured request that got an answer or failed.
	Requests int64 `json:"requests"`
	// Acked got 201 or 200; Created got 201.
	Acked   int64 `json:"acked"`
	Created int64 `json:"created"`
	// Refused got a 4xx (429 included) or 503: nothing was stored.
	Refused int64 `json:"refused"`
	// Unknown got a transport error, a timeout or a 5xx other than 503:
	// the order may or may not be stored.
	Unknown         int64 `json:"unknown"`
	TransportErrors int64 `json:"transport_errors"`
	// CommitTimeouts are 503 answers with code commit_timeout: the server
	// gave up waiting for the commit, which may still happen, so they count
	// as Unknown, not Refused.
	CommitTimeouts int64 `json:"commit_timeouts,omitempty"`
	// Orders counts orders by their own fate: one per single-order request,
	// BatchSize per bulk request (from its per-item results).
	Orders OrderCounts `json:"orders"`
	// Updates counts status updates (ScenarioMix).
	Updates UpdateCounts `json:"updates"`
	// ByStatus counts answers by HTTP status ("201"), plus
	// "transport_error" and "other".
	ByStatus map[string]int64 `json:"by_status"`
	// DroppedByGenerator counts open-loop requests the generator did not
	// send because MaxInFlight requests were outstanding. Non-zero means
	// the offered rate was not offered: raise -max-in-flight or lower -rate.
	DroppedByGenerator int64 `json:"dropped_by_generator"`
	// WarmupRequests were sent during warmup and are not in the counts above.
	WarmupRequests int64 `json:"warmup_requests"`
	// Duplicates counts resends in the duplicates scenario.
	Duplicates DuplicateCounts `json:"duplicates"`
	// AckedIDs and RefusedIDs are distinct order ids acknowledged and
	// refused over the whole run, warmup included: the reconciliation input.
	AckedIDs   int `json:"acked_ids"`
	RefusedIDs int `json:"refused_ids"`
}

// OrderCounts are orders by fate in the measured window.
type OrderCounts struct {
	// Sent is every order sent (resends included).
	Sent int64 `json:"sent"`
	// Acked got 201 or 200 (its own status in a bulk answer); Created 201.
	Acked   int64 `json:"acked"`
	Created int64 `json:"created"`
	// Refused got a 4xx or 503: nothing was stored.
	Refused int64 `json:"refused"`
	// Unknown may or may not be stored: transport errors, timeouts, 5xx,
	// a bulk answer that did not report the item.
	Unknown int64 `json:"unknown"`
}

func (c *OrderCounts) add(oc outcome, status int) {
	c.Sent++
	switch oc {
	case outcomeAcked:
		c.Acked++
		if status == 201 {
			c.Created++
		}
	case outcomeRefused:
		c.Refused++
	default:
		c.Unknown++
	}
}

func (c *OrderCounts) merge(o OrderCounts) {
	c.Sent += o.Sent
	c.Acked += o.Acked
	c.Created += o.Created
	c.Refused += o.Refused
	c.Unknown += o.Unknown
}

// UpdateCounts are status updates by fate in the measured window.
type UpdateCounts struct {
	Sent    int64 `json:"sent"`
	Acked   int64 `json:"acked"`
	Refused int64 `json:"refused"`
	Unknown int64 `json:"unknown"`
}

func (c *UpdateCounts) add(oc outcome) {
	c.Sent++
	switch oc {
	case outcomeAcked:
		c.Acked++
	case outcomeRefused:
		c.Refused++
	default:
		c.Unknown++
	}
}

func (c *UpdateCounts) merge(o UpdateCounts) {
	c.Sent += o.Sent
	c.Acked += o.Acked
	c.Refused += o.Refused
	c.Unknown += o.Unknown
}

// DuplicateCounts are the answers to resent orders. The contract answers a
// resend with 200; a 201 means the server created the same order twice.
type DuplicateCounts struct {
	Sent     int64 `json:"sent"`
	Got200   int64 `json:"got_200"`
	Got201   int64 `json:"got_201"`
	GotOther int64 `json:"got_other"`
}

// Rates are per second of the measured window.
type Rates struct {
	AckedPerSecond    float64 `json:"acked_per_second"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	// OrdersPerSecond is acknowledged orders (Counts.Orders.Acked) per
	// second: the throughput to compare across scenarios and targets.
	OrdersPerSecond float64 `json:"orders_per_second"`
	// UpdatesPerSecond is acknowledged status updates per second.
	UpdatesPerSecond float64 `json:"updates_per_second,omitempty"`
	// ScheduledPerSecond is the open-loop rate asked for (0 in closed loop).
	ScheduledPerSecond float64 `json:"scheduled_per_second,omitempty"`
}

// Latency summarizes the HDR histogram (1µs–60s, 3 significant figures) of
// 2xx latencies, in microseconds.
type Latency struct {
	Count      int64   `json:"count"`
	MinMicros  int64   `json:"min_us"`
	MeanMicros float64 `json:"mean_us"`
	P50Micros  int64   `json:"p50_us"`
	P90Micros  int64   `json:"p90_us"`
	P99Micros  int64   `json:"p99_us"`
	P999Micros int64   `json:"p99_9_us"`
	MaxMicros  int64   `json:"max_us"`
	// Distribution is the percentile spectrum, for charts.
	Distribution []Quantile `json:"distribution,omitempty"`
}

// Quantile is one point of a latency distribution.
type Quantile struct {
	Percentile float64 `json:"percentile"`
	Micros     int64   `json:"us"`
}

// Second is one second (or, in Report.Windows, one window) of the measured
// window, by the time answers arrived.
type Second struct {
	// T is seconds since measuring started.
	T int `json:"t"`
	// SpanSeconds is how much of this second the window covers: 1, except
	// for the last second, which the run usually ends inside. Rates are
	// Acked / SpanSeconds.
	SpanSeconds float64 `json:"span_seconds"`
	Requests    int64   `json:"requests"`
	// Acked is acknowledged orders (per item for bulk requests).
	Acked int64 `json:"acked"`
	// Updates is acknowledged status updates.
	Updates int64 `json:"updates,omitempty"`
	// Errors are answers that were not 2xx, transport errors included.
	Errors int64 `json:"errors"`
	// Latencies of this second's 2xx answers (2 significant figures).
	P50Micros  int64 `json:"p50_us"`
	P99Micros  int64 `json:"p99_us"`
	P999Micros int64 `json:"p99_9_us,omitempty"`
	MaxMicros  int64 `json:"max_us"`
}

// GeneratorUsage is the load generator's own CPU over the measured window:
// on a shared box it is CPU the server did not get.
type GeneratorUsage struct {
	CPUSeconds             float64 `json:"cpu_seconds"`
	CPUCores               float64 `json:"cpu_cores"`
	CPUSecondsPer1000Acked float64 `json:"cpu_seconds_per_1000_acked"`
}

// Writer renders a finished Report: a terminal summary, a JSON file, a
// chart. Implementations read only the Report.
type Writer interface {
	WriteReport(r *Report) error
}

// JSONFile writes the report as indented JSON to Path, creating its
// directory. The file is written to a temporary name and renamed, so a
// reader never sees half a report.
type JSONFile struct {
	Path string
}

// WriteReport implements [Writer].
func (j JSONFile) WriteReport(r *Report) error { return writeJSONFile(j.Path, r) }

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ReadReport reads a report that JSONFile wrote, for tools that render
// reports after the run (charts, comparisons).
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	r := new(Report)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode report %s: %w", path, err)
	}
	return r, nil
}

// Summary writes a human-readable summary to W.
type Summary struct {
	W io.Writer
}

// WriteReport implements [Writer].
func (s Summary) WriteReport(r *Report) error {
	var b strings.Builder
	c, cfg := r.Counts, r.Config
	if cfg.Name != "" {
		fmt.Fprintf(&b, "[%s] ", cfg.Name)
	}
	fmt.Fprintf(&b, "run %s: %s loop", r.RunID, cfg.Mode)
	if cfg.Mode == ModeOpen {
		fmt.Fprintf(&b, ", %d req/s scheduled, at most %d in flight", cfg.Rate, cfg.MaxInFlight)
	} else {
		fmt.Fprintf(&b, ", %d connections", cfg.Conns)
	}
	fmt.Fprintf(&b, ", scenario %s", cfg.Scenario)
	if cfg.Scenario == ScenarioBatches {
		fmt.Fprintf(&b, " (%d orders/request)", cfg.BatchSize)
	}
	fmt.Fprintf(&b, ", %d items/order, target %s\n", cfg.Items, cfg.Target)
	fmt.Fprintf(&b, "measured %.2fs after %v warmup (%d warmup requests)\n", r.ElapsedSeconds, cfg.Warmup, c.WarmupRequests)
	fmt.Fprintf(&b, "requests %d  acked %d (%.0f/s)  refused %d  unknown %d  transport errors %d\n",
		c.Requests, c.Acked, r.Rates.AckedPerSecond, c.Refused, c.Unknown, c.TransportErrors)
	fmt.Fprintf(&b, "by status: %s\n", formatStatus(c.ByStatus))
	if c.CommitTimeouts > 0 {
		fmt.Fprintf(&b, "503 commit_timeout %d (counted unknown: the commit may still happen)\n", c.CommitTimeouts)
	}
	o := c.Orders
	fmt.Fprintf(&b, "orders sent %d  acked %d (%.0f/s)  created %d  refused %d  unknown %d\n",
		o.Sent, o.Acked, r.Rates.OrdersPerSecond, o.Created, o.Refused, o.Unknown)
	if u := c.Updates; u.Sent > 0 {
		fmt.Fprintf(&b, "status updates sent %d  acked %d (%.0f/s)  refused %d  unknown %d\n",
			u.Sent, u.Acked, r.Rates.UpdatesPerSecond, u.Refused, u.Unknown)
	}
	if c.DroppedByGenerator > 0 {
		fmt.Fprintf(&b, "WARNING: %d requests dropped by the generator (max in-flight reached): the offered rate was not offered\n", c.DroppedByGenerator)
	}
	if d := c.Duplicates; d.Sent > 0 {
		fmt.Fprintf(&b, "duplicates sent %d: 200 %d, 201 %d, other %d\n", d.Sent, d.Got200, d.Got201, d.GotOther)
	}
	l := r.Latency
	fmt.Fprintf(&b, "latency (2xx, n=%d): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", l.Count,
		micros(l.P50Micros), micros(l.P90Micros), micros(l.P99Micros), micros(l.P999Micros), micros(l.MaxMicros))
	if u := r.UpdateLatency; u != nil {
		fmt.Fprintf(&b, "update latency (2xx, n=%d): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", u.Count,
			micros(u.P50Micros), micros(u.P90Micros), micros(u.P99Micros), micros(u.P999Micros), micros(u.MaxMicros))
	}
	if lo, hi, n := fullSeconds(r.Series); n > 0 {
		fmt.Fprintf(&b, "acked orders per second: min %d max %d over %d full seconds\n", lo, hi, n)
	}
	g := r.Generator
	fmt.Fprintf(&b, "generator: %.2f cores, %.3f CPU s per 1000 acked changes\n", g.CPUCores, g.CPUSecondsPer1000Acked)
	switch {
	case r.Server != nil:
		sv := r.Server
		fmt.Fprintf(&b, "server: %.2f cores, %.3f CPU s per 1000 acked changes, %.1f MB/s allocated (%.0f B/order), GC pause %.2f%%\n",
			sv.CPUCores, sv.CPUSecondsPer1000Acked, sv.AllocBytesPerSecond/1e6, sv.AllocBytesPerAcked, sv.GCPauseFraction*100)
		if len(sv.Missing) > 0 {
			fmt.Fprintf(&b, "server metrics missing: %s\n", strings.Join(sv.Missing, ", "))
		}
	case r.ServerError != "":
		fmt.Fprintf(&b, "server metrics: %s\n", r.ServerError)
	}
	switch {
	case r.Postgres != nil:
		fmt.Fprintf(&b, "postgres (pid %d and children): %.2f cores, %.3f CPU s per 1000 acked changes\n",
			r.Postgres.PID, r.Postgres.CPUCores, r.Postgres.CPUSecondsPer1000Acked)
	case r.PostgresError != "":
		fmt.Fprintf(&b, "postgres cpu: %s\n", r.PostgresError)
	}
	if rc := r.Reconcile; rc != nil {
		verdict := "OK"
		if !rc.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "reconcile %s: %d acked, %d refused checked; lost %d, duplicated %d, phantom %d, unpublished %d; repeated events %d (topic records read %d, %.1fs)\n",
			verdict, rc.Acked, rc.Refused, rc.LostCount, rc.DuplicatedCount, rc.PhantomCount, rc.UnpublishedCount, rc.RepeatedCount, rc.TopicRecords, rc.Seconds)
		if rc.StateChecked > 0 {
			fmt.Fprintf(&b, "  final status/version checked for %d updated orders: %d wrong\n", rc.StateChecked, rc.WrongStateCount)
		}
		for _, e := range []struct {
			name string
			ids  []string
		}{{"lost", rc.Lost}, {"duplicated", rc.Duplicated}, {"phantom", rc.Phantom}, {"unpublished", rc.Unpublished}, {"wrong state", rc.WrongState}, {"repeated", rc.Repeated}} {
			if len(e.ids) > 0 {
				fmt.Fprintf(&b, "  %s e.g. %s\n", e.name, strings.Join(e.ids[:min(len(e.ids), 5)], " "))
			}
		}
	}
	_, err := io.WriteString(s.W, b.String())
	return err
}

// fullSeconds returns the range of acked counts over the seconds the
// window covers completely, and how many there are.
func fullSeconds(series []Second) (lo, hi int64, n int) {
	for _, p := range series {
		if p.SpanSeconds < 1 {
			continue
		}
		if n == 0 {
			lo, hi = p.Acked, p.Acked
		}
		lo, hi, n = min(lo, p.Acked), max(hi, p.Acked), n+1
	}
	return lo, hi, n
}

func formatStatus(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// FormatMicros formats a microsecond count for people: 850µs, 12.3ms,
// 1.20s.
func FormatMicros(us int64) string { return micros(us) }

// micros is FormatMicros.
func micros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}
