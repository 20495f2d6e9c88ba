package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	f := func(in string, want Metrics) {
		t.Helper()
		got, err := ParseMetrics([]byte(in))
		if err != nil {
			t.Fatalf("ParseMetrics(%q): %v", in, err)
		}
		if len(got) != len(want) {
			t.Fatalf("ParseMetrics(%q): got %v; want %v", in, got, want)
		}
		for k, v := range want {
			g, ok := got[k]
			if !ok || g != v && !(math.IsNaN(g) && math.IsNaN(v)) {
				t.Fatalf("ParseMetrics(%q)[%q]: got %v (present %v); want %v", in, k, g, ok, v)
			}
		}
	}
	f("", Metrics{})
	f("# HELP x y\n# TYPE x counter\nx 1\n", Metrics{"x": 1})
	f("process_cpu_seconds_total 12.5\r\n", Metrics{"process_cpu_seconds_total": 12.5})
	f("a 1 1712345678000\n", Metrics{"a": 1})
	f("a 1.5e+06\nb +Inf\nc -Inf\nd NaN\n", Metrics{"a": 1.5e6, "b": math.Inf(1), "c": math.Inf(-1), "d": math.NaN()})
	f(`go_gc_duration_seconds{quantile="0.5"} 0.0001`+"\n", Metrics{`go_gc_duration_seconds{quantile="0.5"}`: 0.0001})
	f(`h_bucket{le="+Inf",path="/v1/a b"} 7`, Metrics{`h_bucket{le="+Inf",path="/v1/a b"}`: 7})
	f(`m{msg="brace } and \" quote"} 3`, Metrics{`m{msg="brace } and \" quote"}`: 3})
	f("  \n\t\n x 2 \n", Metrics{"x": 2})

	bad := func(in string) {
		t.Helper()
		if got, err := ParseMetrics([]byte(in)); err == nil {
			t.Fatalf("ParseMetrics(%q): got %v; want an error", in, got)
		}
	}
	bad("x\n")
	bad("x y\n")
	bad("x 1 2 3\n")
	bad(`x{a="b" 1`)
	bad("{a=\"b\"} 1\n")
}

func TestNewServerUsage(t *testing.T) {
	before := Metrics{metricCPU: 10, metricAllocBytes: 1e6, metricGCPauseSum: 0.5, "orderflow_orders_total": 100, "orderflow_depth": 3}
	after := Metrics{metricCPU: 12, metricAllocBytes: 5e6, metricGCPauseSum: 0.6, "orderflow_orders_total": 2100, "orderflow_depth": 9,
		`orderflow_new_total{x="y"}`: 4}
	u := NewServerUsage(before, after, 2*time.Second, 2000)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(u.CPUSeconds, 2) || !near(u.CPUCores, 1) || !near(u.CPUSecondsPer1000Acked, 1) ||
		!near(u.AllocBytesPerSecond, 2e6) || !near(u.AllocBytesPerAcked, 2000) || !near(u.GCPauseFraction, 0.05) {
		t.Fatalf("NewServerUsage: got %+v; want 2 CPU s, 1 core, 1 s/1000, 2 MB/s, 2000 B/order, 5%% GC", u)
	}
	if len(u.Counters) != 2 || u.Counters["orderflow_orders_total"] != 2000 || u.Counters[`orderflow_new_total{x="y"}`] != 4 {
		t.Fatalf("counters %v; want the two orderflow_*_total deltas", u.Counters)
	}
	u = NewServerUsage(Metrics{}, Metrics{metricCPU: 1}, time.Second, 10)
	if strings.Join(u.Missing, ",") != strings.Join([]string{metricGCPauseSum, metricAllocBytes, metricCPU}, ",") {
		t.Fatalf("missing %v; want all three", u.Missing)
	}
}
