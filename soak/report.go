package soak

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/orderflow/orderflow/loadtest"
)

// Targets the soak is held to.
const (
	// TargetP99Growth bounds the last span's p99 by this multiple of the
	// first span's.
	TargetP99Growth = 1.5
	// TargetP99 bounds the last span's p99.
	TargetP99 = 20 * time.Millisecond
	// TargetCPUDrift bounds the change of server CPU per order from the
	// first span to the last.
	TargetCPUDrift = 0.10
	// TargetOutboxBytes bounds the outbox's total size at every sample.
	TargetOutboxBytes = 64 << 20
)

// Report is everything one soak measured.
type Report struct {
	RunID      string    `json:"run_id"`
	Started    time.Time `json:"started"`
	Autovacuum string    `json:"autovacuum"`
	Duration   string    `json:"duration"`
	Interval   string    `json:"interval"`
	Compare    string    `json:"compare"`
	Share      float64   `json:"share"`
	// PostgresSettings are the -c settings the private PostgreSQL ran with
	// (autovacuum and any the soak was given; the rest are initdb's).
	PostgresSettings map[string]string `json:"postgres_settings"`
	// MaxOrdersPerSecond is the closed-loop maximum measured first (0 when
	// the rate was given); Rate the open-loop rate offered.
	MaxOrdersPerSecond float64 `json:"max_orders_per_second,omitempty"`
	Rate               int     `json:"rate"`
	// Probe is the maximum's run, Load the soak's (with its windows).
	Probe *loadtest.Report `json:"probe,omitempty"`
	Load  *loadtest.Report `json:"load,omitempty"`
	// Samples are taken at the start of the load, every Interval, and at
	// its end; AfterReconcile once reconciliation has read the topic.
	Samples        []Sample `json:"samples"`
	AfterReconcile *Sample  `json:"after_reconcile,omitempty"`
	// Windows are the intervals between consecutive samples.
	Windows []Window `json:"windows"`
	// First and Last are the first and last Compare of the load.
	First     Span       `json:"first"`
	Last      Span       `json:"last"`
	Reconcile *Reconcile `json:"reconcile,omitempty"`
	Targets   []Target   `json:"targets"`
	// Interrupted is set when the load was ended early (Ctrl-C): the
	// windows and spans cover what ran.
	Interrupted bool `json:"interrupted,omitempty"`
	// ServerExit is set when orderflow did not stop cleanly at the end.
	ServerExit string   `json:"server_exit,omitempty"`
	Charts     []string `json:"charts,omitempty"`
}

// Window is one interval of the load.
type Window struct {
	// T is the window's start and Seconds its length, in seconds since the
	// load started.
	T       float64 `json:"t"`
	Seconds float64 `json:"seconds"`
	// Acked orders, their rate, and answers that were not 2xx.
	Acked           int64   `json:"acked"`
	OrdersPerSecond float64 `json:"orders_per_second"`
	Errors          int64   `json:"errors"`
	// Latency of the window's 2xx answers, from the open-loop schedule.
	P50Micros  int64 `json:"p50_us"`
	P99Micros  int64 `json:"p99_us"`
	P999Micros int64 `json:"p99_9_us"`
	// CPU per acknowledged order, µs: the server, PostgreSQL (postmaster
	// and children), the broker.
	ServerCPUMicrosPerOrder   float64 `json:"server_cpu_us_per_order"`
	PostgresCPUMicrosPerOrder float64 `json:"postgres_cpu_us_per_order"`
	BrokerCPUMicrosPerOrder   float64 `json:"broker_cpu_us_per_order"`
	// SoakCPUMicrosPerOrder is the load generator's (this process's) CPU
	// per acknowledged order; MachineBusy the share of the whole box's CPU
	// that was busy during the window (0–1), everything on it included.
	SoakCPUMicrosPerOrder float64 `json:"soak_cpu_us_per_order"`
	MachineBusy           float64 `json:"machine_busy"`
	// WALBytesPerOrder is WAL written per acknowledged order.
	WALBytesPerOrder float64 `json:"wal_bytes_per_order"`
	// Sizes and outbox rows at the window's end; OutboxPeakBytes the
	// largest outbox seen during it.
	Orders          RelSize `json:"orders"`
	OrderItems      RelSize `json:"order_items"`
	Outbox          RelSize `json:"outbox"`
	OutboxPeakBytes int64   `json:"outbox_peak_bytes"`
	OutboxLiveRows  int64   `json:"outbox_live_rows"`
	OutboxDeadRows  int64   `json:"outbox_dead_rows"`
	// Events read from the topic during the window, and repeats among them.
	Events  int64 `json:"events"`
	Repeats int64 `json:"repeats"`
}

// Span is the first or last Compare of the load, merged.
type Span struct {
	Name                      string  `json:"name"`
	From                      float64 `json:"from"`
	To                        float64 `json:"to"`
	Acked                     int64   `json:"acked"`
	P50Micros                 int64   `json:"p50_us"`
	P99Micros                 int64   `json:"p99_us"`
	P999Micros                int64   `json:"p99_9_us"`
	ServerCPUMicrosPerOrder   float64 `json:"server_cpu_us_per_order"`
	PostgresCPUMicrosPerOrder float64 `json:"postgres_cpu_us_per_order"`
	// MachineBusy is the share of the box's CPU busy over the span (0–1).
	MachineBusy float64 `json:"machine_busy"`
}

// Reconcile is the end-of-soak check of every acknowledged order (the
// maximum's run included).
type Reconcile struct {
	Acked   int `json:"acked"`
	Refused int `json:"refused"`
	// Lost were acknowledged but are not in orders; Duplicated are in
	// orders more than once; Phantom are in orders but were only refused;
	// Unpublished have no order.created event on the topic.
	Lost        int `json:"lost"`
	Duplicated  int `json:"duplicated"`
	Phantom     int `json:"phantom"`
	Unpublished int `json:"unpublished"`
	// TopicRecords is every record read; Repeated those whose ce_id had
	// been read before (events beyond one per committed change); Foreign
	// records of no run of this soak.
	TopicRecords     int64    `json:"topic_records"`
	Repeated         int64    `json:"repeated"`
	RepeatedExamples []string `json:"repeated_examples,omitempty"`
	Foreign          int64    `json:"foreign,omitempty"`
	// Trimmed records were deleted from the broker once read, to bound its
	// memory.
	Trimmed    int64    `json:"trimmed"`
	TopicError string   `json:"topic_error,omitempty"`
	Examples   []string `json:"examples,omitempty"`
	Seconds    float64  `json:"seconds"`
}

// OK reports whether nothing was lost, duplicated, phantom or unpublished.
// Repeats are a target, not a failure: delivery is at least once.
func (r *Reconcile) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Phantom == 0 && r.Unpublished == 0
}

// Target is one target and whether the soak met it.
type Target struct {
	Name string `json:"name"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// Err is non-nil when reconciliation failed.
func (r *Report) Err() error {
	if r.Reconcile == nil || r.Reconcile.OK() {
		return nil
	}
	c := r.Reconcile
	return fmt.Errorf("soak %s: reconciliation failed: lost %d, duplicated %d, phantom %d, unpublished %d",
		r.RunID, c.Lost, c.Duplicated, c.Phantom, c.Unpublished)
}

// build derives windows, spans and targets from the samples and the load.
func (r *Report) build(cfg Config, load *loadtest.Result) {
	gw := load.Report.Windows
	n := len(r.Samples) - 1
	r.Windows = make([]Window, 0, n)
	for i := range n {
		a, b := r.Samples[i], r.Samples[i+1]
		w := Window{T: a.T, Seconds: b.T - a.T, Orders: b.Orders, OrderItems: b.OrderItems, Outbox: b.Outbox,
			OutboxPeakBytes: b.OutboxPeakBytes, OutboxLiveRows: b.OutboxLiveRows, OutboxDeadRows: b.OutboxDeadRows,
			Events: b.TopicRecords - a.TopicRecords, Repeats: b.TopicRepeats - a.TopicRepeats}
		// The last window also takes the answers that arrived after the
		// schedule ended (the generator's tail window).
		for j := i; j < len(gw) && (j == i || i == n-1); j++ {
			w.Acked += gw[j].Acked
			w.Errors += gw[j].Errors
		}
		if i < len(gw) {
			w.P50Micros, w.P99Micros, w.P999Micros = gw[i].P50Micros, gw[i].P99Micros, gw[i].P999Micros
		}
		if w.Seconds > 0 {
			w.OrdersPerSecond = float64(w.Acked) / w.Seconds
		}
		if w.Acked > 0 {
			per := 1e6 / float64(w.Acked)
			w.ServerCPUMicrosPerOrder = (b.ServerCPUSeconds - a.ServerCPUSeconds) * per
			w.PostgresCPUMicrosPerOrder = (b.PostgresCPUSeconds - a.PostgresCPUSeconds) * per
			w.BrokerCPUMicrosPerOrder = (b.BrokerCPUSeconds - a.BrokerCPUSeconds) * per
			w.SoakCPUMicrosPerOrder = (b.SoakCPUSeconds - a.SoakCPUSeconds) * per
			w.WALBytesPerOrder = float64(b.WALBytes-a.WALBytes) / float64(w.Acked)
		}
		if d := b.MachineSeconds - a.MachineSeconds; d > 0 {
			w.MachineBusy = (b.MachineBusySeconds - a.MachineBusySeconds) / d
		}
		r.Windows = append(r.Windows, w)
	}
	k := min(int(cfg.Compare/cfg.Interval), n)
	if k > 0 {
		r.First = r.span("first "+cfg.Compare.String(), load, 0, k, cfg.Interval)
		r.Last = r.span("last "+cfg.Compare.String(), load, n-k, n, cfg.Interval)
	}
	r.Targets = r.targets(cfg)
}

// span merges windows [i, j).
func (r *Report) span(name string, load *loadtest.Result, i, j int, interval time.Duration) Span {
	s := Span{Name: name, From: r.Samples[i].T, To: r.Samples[j].T}
	for _, w := range r.Windows[i:j] {
		s.Acked += w.Acked
	}
	to := time.Duration(j) * interval
	if j == len(r.Windows) {
		to = time.Duration(math.MaxInt64) // the tail of answers after the schedule
	}
	l := load.LatencyBetween(time.Duration(i)*interval, to)
	s.P50Micros, s.P99Micros, s.P999Micros = l.P50Micros, l.P99Micros, l.P999Micros
	if s.Acked > 0 {
		per := 1e6 / float64(s.Acked)
		s.ServerCPUMicrosPerOrder = (r.Samples[j].ServerCPUSeconds - r.Samples[i].ServerCPUSeconds) * per
		s.PostgresCPUMicrosPerOrder = (r.Samples[j].PostgresCPUSeconds - r.Samples[i].PostgresCPUSeconds) * per
	}
	if d := r.Samples[j].MachineSeconds - r.Samples[i].MachineSeconds; d > 0 {
		s.MachineBusy = (r.Samples[j].MachineBusySeconds - r.Samples[i].MachineBusySeconds) / d
	}
	return s
}

func (r *Report) targets(cfg Config) []Target {
	f, l := r.First, r.Last
	var ts []Target
	ratio := math.Inf(1)
	if f.P99Micros > 0 {
		ratio = float64(l.P99Micros) / float64(f.P99Micros)
	}
	ts = append(ts, Target{Name: fmt.Sprintf("p99 of the last %v ≤ %.1f× p99 of the first %v", cfg.Compare, TargetP99Growth, cfg.Compare),
		Got: fmt.Sprintf("%s vs %s (%.2f×)", us(l.P99Micros), us(f.P99Micros), ratio), Met: ratio <= TargetP99Growth})
	ts = append(ts, Target{Name: fmt.Sprintf("p99 of the last %v ≤ %v", cfg.Compare, TargetP99),
		Got: us(l.P99Micros), Met: l.P99Micros > 0 && time.Duration(l.P99Micros)*time.Microsecond <= TargetP99})
	drift := math.Inf(1)
	if f.ServerCPUMicrosPerOrder > 0 {
		drift = l.ServerCPUMicrosPerOrder/f.ServerCPUMicrosPerOrder - 1
	}
	ts = append(ts, Target{Name: fmt.Sprintf("server CPU per order of the last %v within %.0f%% of the first %v", cfg.Compare, TargetCPUDrift*100, cfg.Compare),
		Got: fmt.Sprintf("%.1fµs vs %.1fµs (%+.1f%%)", l.ServerCPUMicrosPerOrder, f.ServerCPUMicrosPerOrder, drift*100), Met: math.Abs(drift) <= TargetCPUDrift})
	var peak int64
	for _, x := range append(r.Samples, ptrOr(r.AfterReconcile)...) {
		peak = max(peak, x.OutboxPeakBytes, x.Outbox.TotalBytes)
	}
	ts = append(ts, Target{Name: fmt.Sprintf("outbox total size ≤ %d MB at any time (autovacuum %s)", TargetOutboxBytes>>20, r.Autovacuum),
		Got: fmt.Sprintf("peak %s", mb(peak)), Met: peak <= TargetOutboxBytes})
	if c := r.Reconcile; c != nil {
		ts = append(ts,
			Target{Name: "0 lost orders (acknowledged, not stored or not published)",
				Got: fmt.Sprintf("lost %d, unpublished %d, phantom %d of %d acked", c.Lost, c.Unpublished, c.Phantom, c.Acked), Met: c.Lost == 0 && c.Unpublished == 0 && c.Phantom == 0},
			Target{Name: "0 duplicated rows", Got: fmt.Sprint(c.Duplicated), Met: c.Duplicated == 0},
			Target{Name: "0 repeated events on the topic", Got: fmt.Sprintf("%d of %d events", c.Repeated, c.TopicRecords), Met: c.Repeated == 0})
	}
	return ts
}

func ptrOr(s *Sample) []Sample {
	if s == nil {
		return nil
	}
	return []Sample{*s}
}

// us formats microseconds for people.
func us(v int64) string { return loadtest.FormatMicros(v) }

// write writes <out>.json and the charts.
func (r *Report) write(out string) error {
	if err := r.writeCharts(out); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("soak report: %w", err)
	}
	if err := os.WriteFile(out+".json", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("soak report: %w", err)
	}
	return nil
}

func (r *Report) writeCharts(out string) error {
	var x []float64
	col := func(f func(w Window) float64) []float64 {
		v := make([]float64, len(r.Windows))
		for i, w := range r.Windows {
			v[i] = f(w)
		}
		return v
	}
	for _, w := range r.Windows {
		x = append(x, (w.T+w.Seconds)/60) // at the window's end, in minutes
	}
	title := func(s string) string {
		return fmt.Sprintf("soak %s (autovacuum %s, %d orders/s): %s", r.RunID, r.Autovacuum, r.Rate, s)
	}
	const xl = "minutes since the load started"
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	charts := []struct {
		name, title, y string
		log            bool
		lines          []loadtest.Line
	}{
		{"latency", "latency of 2xx answers per window, open loop", "ms (log)", true, []loadtest.Line{
			{Name: "p99.9", X: x, Y: col(func(w Window) float64 { return float64(w.P999Micros) / 1e3 })},
			{Name: "p99", X: x, Y: col(func(w Window) float64 { return float64(w.P99Micros) / 1e3 })},
			{Name: "p50", X: x, Y: col(func(w Window) float64 { return float64(w.P50Micros) / 1e3 }), Dashed: true}}},
		{"throughput", "acknowledged orders per second per window", "orders/s", false, []loadtest.Line{
			{Name: "acknowledged", X: x, Y: col(func(w Window) float64 { return w.OrdersPerSecond })},
			{Name: "offered", X: x, Y: col(func(Window) float64 { return float64(r.Rate) }), Dashed: true}}},
		{"cpu", "CPU per acknowledged order", "µs/order", false, []loadtest.Line{
			{Name: "orderflow", X: x, Y: col(func(w Window) float64 { return w.ServerCPUMicrosPerOrder })},
			{Name: "PostgreSQL", X: x, Y: col(func(w Window) float64 { return w.PostgresCPUMicrosPerOrder })},
			{Name: "broker", X: x, Y: col(func(w Window) float64 { return w.BrokerCPUMicrosPerOrder }), Dashed: true}}},
		{"wal", "WAL bytes per acknowledged order", "bytes/order", false, []loadtest.Line{
			{Name: "WAL", X: x, Y: col(func(w Window) float64 { return w.WALBytesPerOrder })}}},
		{"sizes", "table sizes (heap + indexes + TOAST) at each window's end", "MiB", false, []loadtest.Line{
			{Name: "orders", X: x, Y: col(func(w Window) float64 { return mib(w.Orders.TotalBytes) })},
			{Name: "order_items", X: x, Y: col(func(w Window) float64 { return mib(w.OrderItems.TotalBytes) })},
			{Name: "outbox* total", X: x, Y: col(func(w Window) float64 { return mib(w.Outbox.TotalBytes) })},
			{Name: "outbox* peak", X: x, Y: col(func(w Window) float64 { return mib(w.OutboxPeakBytes) }), Dashed: true},
			{Name: "outbox* indexes", X: x, Y: col(func(w Window) float64 { return mib(w.Outbox.IndexBytes) }), Dashed: true}}},
		{"outbox-rows", "outbox live and dead rows (pg_stat_user_tables)", "rows", false, []loadtest.Line{
			{Name: "live", X: x, Y: col(func(w Window) float64 { return float64(w.OutboxLiveRows) })},
			{Name: "dead", X: x, Y: col(func(w Window) float64 { return float64(w.OutboxDeadRows) })}}},
		{"events", "events read from the topic per window", "events", false, []loadtest.Line{
			{Name: "events", X: x, Y: col(func(w Window) float64 { return float64(w.Events) })},
			{Name: "repeats", X: x, Y: col(func(w Window) float64 { return float64(w.Repeats) }), Dashed: true}}},
	}
	r.Charts = r.Charts[:0]
	for _, c := range charts {
		path := out + "-" + c.name + ".png"
		if err := loadtest.WriteLineChart(path, title(c.title), xl, c.y, c.log, c.lines); err != nil {
			return err
		}
		r.Charts = append(r.Charts, path)
	}
	return nil
}

// WriteSummary writes the soak for people: settings, one line per window,
// the first and last spans, reconciliation and every target, met or not.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "soak %s: open loop at %d orders/s", r.RunID, r.Rate)
	if r.MaxOrdersPerSecond > 0 {
		fmt.Fprintf(&b, " (%.0f%% of the measured maximum %.0f orders/s)", r.Share*100, r.MaxOrdersPerSecond)
	}
	fmt.Fprintf(&b, " for %s, autovacuum %s, a window every %s (minute: the window's end; µs and B per acknowledged order)\n",
		r.Duration, r.Autovacuum, r.Interval)
	if r.Interrupted && len(r.Samples) > 0 {
		fmt.Fprintf(&b, "INTERRUPTED after %.0fs of load: what follows covers that\n", r.Samples[len(r.Samples)-1].T)
	}
	if l := r.Load; l != nil && l.Counts.DroppedByGenerator > 0 {
		fmt.Fprintf(&b, "WARNING: %d requests dropped by the generator (max in-flight reached): the offered rate was not offered\n", l.Counts.DroppedByGenerator)
	}
	fmt.Fprintf(&b, "%7s %9s %8s %8s %8s %7s %8s %8s %8s %5s %8s %9s %9s %9s %10s %10s %9s %8s\n",
		"minute", "orders/s", "p50", "p99", "p99.9", "errors", "srv µs", "pg µs", "gen µs", "box", "WAL B", "orders", "items", "outbox", "outbox pk", "live/dead", "events", "repeats")
	for _, x := range r.Windows {
		fmt.Fprintf(&b, "%7.2f %9.0f %8s %8s %8s %7d %8.1f %8.1f %8.1f %4.0f%% %8.0f %9s %9s %9s %10s %10s %9d %8d\n",
			(x.T+x.Seconds)/60, x.OrdersPerSecond, us(x.P50Micros), us(x.P99Micros), us(x.P999Micros), x.Errors,
			x.ServerCPUMicrosPerOrder, x.PostgresCPUMicrosPerOrder, x.SoakCPUMicrosPerOrder, x.MachineBusy*100, x.WALBytesPerOrder,
			mb(x.Orders.TotalBytes), mb(x.OrderItems.TotalBytes), mb(x.Outbox.TotalBytes), mb(x.OutboxPeakBytes),
			fmt.Sprintf("%d/%d", x.OutboxLiveRows, x.OutboxDeadRows), x.Events, x.Repeats)
	}
	for _, s := range []Span{r.First, r.Last} {
		if s.Name == "" {
			continue
		}
		fmt.Fprintf(&b, "%-12s %9d acked  p50 %s  p99 %s  p99.9 %s  server %.1f µs/order  postgres %.1f µs/order  box %.0f%% busy\n",
			s.Name+":", s.Acked, us(s.P50Micros), us(s.P99Micros), us(s.P999Micros), s.ServerCPUMicrosPerOrder, s.PostgresCPUMicrosPerOrder, s.MachineBusy*100)
	}
	if c := r.Reconcile; c != nil {
		verdict := "OK"
		if !c.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(&b, "reconcile %s: %d acked, %d refused; lost %d, duplicated %d, phantom %d, unpublished %d; topic events %d, repeated %d, foreign %d (%d trimmed from the broker once read; %.1fs)\n",
			verdict, c.Acked, c.Refused, c.Lost, c.Duplicated, c.Phantom, c.Unpublished, c.TopicRecords, c.Repeated, c.Foreign, c.Trimmed, c.Seconds)
		if c.TopicError != "" {
			fmt.Fprintf(&b, "  topic error: %s\n", c.TopicError)
		}
		if len(c.Examples) > 0 {
			fmt.Fprintf(&b, "  e.g. %s\n", strings.Join(c.Examples[:min(len(c.Examples), 5)], "; "))
		}
		if len(c.RepeatedExamples) > 0 {
			fmt.Fprintf(&b, "  repeated e.g. %s\n", strings.Join(c.RepeatedExamples[:min(len(c.RepeatedExamples), 5)], " "))
		}
	}
	if r.ServerExit != "" {
		fmt.Fprintf(&b, "orderflow did not stop cleanly: %s\n", r.ServerExit)
	}
	fmt.Fprintf(&b, "targets:\n")
	for _, t := range r.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "NOT MET"
		}
		fmt.Fprintf(&b, "  %-7s %s: %s\n", verdict, t.Name, t.Got)
	}
	if len(r.Charts) > 0 {
		fmt.Fprintf(&b, "charts: %s\n", strings.Join(r.Charts, " "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
