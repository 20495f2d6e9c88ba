package loadtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Charts renders PNG charts (gonum.org/v1/plot) of a Suite next to its JSON:
//
//   - <Prefix>-throughput.png: acknowledged orders per second over the
//     measured window, one line per target;
//   - <Prefix>-latency.png: p50 (dashed) and p99 (solid) of each second's
//     2xx answers over time, per target, on a log axis;
//   - with a sweep, <Prefix>-sweep-latency.png: p50, p99 and p99.9 against
//     the offered rate per target (open loop, latency from the schedule),
//     and <Prefix>-sweep-throughput.png: acknowledged against offered rate.
//
// Written lists the files of the last WriteSuite. Not safe for concurrent use.
type Charts struct {
	Prefix  string
	Written []string
}

// chartSize is every chart's size.
const chartW, chartH = 10 * vg.Inch, 5 * vg.Inch

// WriteReport implements [Writer]: the charts of a one-run suite.
func (c *Charts) WriteReport(r *Report) error {
	return c.WriteSuite(&Suite{RunID: r.RunID, Started: r.Started, Runs: []*Report{r}})
}

type namedChart struct {
	name string
	make func(*Suite) (*plot.Plot, error)
}

// WriteSuite implements [SuiteWriter].
func (c *Charts) WriteSuite(s *Suite) error {
	c.Written = c.Written[:0]
	if err := os.MkdirAll(filepath.Dir(c.Prefix), 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	charts := []namedChart{{"throughput", throughputChart}, {"latency", latencyChart}}
	if len(s.Sweep) > 0 {
		charts = append(charts, namedChart{"sweep-latency", sweepLatencyChart}, namedChart{"sweep-throughput", sweepThroughputChart})
	}
	for _, ch := range charts {
		p, err := ch.make(s)
		if err := c.save(ch.name, p, err); err != nil {
			return err
		}
	}
	return nil
}

func (c *Charts) save(name string, p *plot.Plot, err error) error {
	if err != nil {
		return fmt.Errorf("chart %s: %w", name, err)
	}
	path := c.Prefix + "-" + name + ".png"
	if err := p.Save(chartW, chartH, path); err != nil {
		return fmt.Errorf("chart %s: %w", name, err)
	}
	c.Written = append(c.Written, path)
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// logY puts the Y axis on a log scale; every value plotted must be > 0.
func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
}

func addLine(p *plot.Plot, name string, pts plotter.XYs, color, dash int) error {
	if len(pts) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(color)
	l.Dashes = plotutil.Dashes(dash)
	l.Width = vg.Points(1.5)
	s.Color = plotutil.Color(color)
	s.Shape = plotutil.Shape(color)
	s.Radius = vg.Points(2)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// ms converts µs to ms for a log axis, which cannot show 0.
func ms(us int64) float64 { return max(float64(us)/1e3, 0.001) }

// fullishSeconds skips the run's last second when it covers under half a
// second: its rate would be noise.
func fullishSeconds(series []Second) []Second {
	return slices.DeleteFunc(slices.Clone(series), func(p Second) bool { return p.SpanSeconds < 0.5 })
}

func throughputChart(s *Suite) (*plot.Plot, error) {
	p := newPlot(s.RunID+": acknowledged orders per second", "seconds since measuring started", "orders/s")
	for i, r := range s.Runs {
		var pts plotter.XYs
		for _, sec := range fullishSeconds(r.Series) {
			pts = append(pts, plotter.XY{X: float64(sec.T), Y: float64(sec.Acked) / sec.SpanSeconds})
		}
		if err := addLine(p, displayName(r), pts, i, 0); err != nil {
			return nil, err
		}
	}
	p.Y.Min = 0
	return p, nil
}

func latencyChart(s *Suite) (*plot.Plot, error) {
	p := newPlot(s.RunID+": latency of 2xx answers per second (p99 solid, p50 dashed)", "seconds since measuring started", "ms (log)")
	logY(p)
	for i, r := range s.Runs {
		var p50, p99 plotter.XYs
		for _, sec := range r.Series {
			if sec.P99Micros == 0 {
				continue // no 2xx answer in that second
			}
			p50 = append(p50, plotter.XY{X: float64(sec.T), Y: ms(sec.P50Micros)})
			p99 = append(p99, plotter.XY{X: float64(sec.T), Y: ms(sec.P99Micros)})
		}
		if err := addLine(p, displayName(r)+" p99", p99, i, 0); err != nil {
			return nil, err
		}
		if err := addLine(p, displayName(r)+" p50", p50, i, 1); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// sweepByTarget groups the sweep runs by target name, in first-seen order.
func sweepByTarget(s *Suite) (names []string, runs map[string][]*Report) {
	runs = map[string][]*Report{}
	for _, r := range s.Sweep {
		n := displayName(r)
		if _, ok := runs[n]; !ok {
			names = append(names, n)
		}
		runs[n] = append(runs[n], r)
	}
	return names, runs
}

func sweepLatencyChart(s *Suite) (*plot.Plot, error) {
	p := newPlot(s.RunID+": latency against offered rate, open loop (p50 dotted, p99 solid, p99.9 dashed)", "offered requests/s", "ms (log)")
	logY(p)
	names, runs := sweepByTarget(s)
	for i, n := range names {
		var p50, p99, p999 plotter.XYs
		for _, r := range runs[n] {
			l := r.Latency
			if l.Count == 0 {
				continue
			}
			x := float64(r.Config.Rate)
			p50 = append(p50, plotter.XY{X: x, Y: ms(l.P50Micros)})
			p99 = append(p99, plotter.XY{X: x, Y: ms(l.P99Micros)})
			p999 = append(p999, plotter.XY{X: x, Y: ms(l.P999Micros)})
		}
		for _, e := range []struct {
			suffix string
			pts    plotter.XYs
			dash   int
		}{{" p99", p99, 0}, {" p99.9", p999, 1}, {" p50", p50, 2}} {
			if err := addLine(p, n+e.suffix, e.pts, i, e.dash); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func sweepThroughputChart(s *Suite) (*plot.Plot, error) {
	p := newPlot(s.RunID+": acknowledged orders/s against offered rate, open loop", "offered requests/s", "acknowledged orders/s")
	names, runs := sweepByTarget(s)
	var maxRate float64
	for i, n := range names {
		var pts plotter.XYs
		for _, r := range runs[n] {
			pts = append(pts, plotter.XY{X: float64(r.Config.Rate), Y: r.Rates.OrdersPerSecond})
			maxRate = max(maxRate, float64(r.Config.Rate))
		}
		if err := addLine(p, n, pts, i, 0); err != nil {
			return nil, err
		}
	}
	if maxRate > 0 { // the ideal: everything offered is acknowledged
		ideal, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: maxRate, Y: maxRate}})
		if err != nil {
			return nil, err
		}
		ideal.Dashes = plotutil.Dashes(1)
		p.Add(ideal)
		p.Legend.Add("offered", ideal)
	}
	p.Y.Min, p.X.Min = 0, 0
	return p, nil
}

// Line is one named series of a [WriteLineChart] chart; X and Y have the
// same length.
type Line struct {
	Name   string
	X, Y   []float64
	Dashed bool
}

// WriteLineChart writes a PNG line chart of lines to path, in the style of
// the other charts; with logY the Y axis is logarithmic and values ≤ 0 are
// left out. Lines without points are skipped.
func WriteLineChart(path, title, xLabel, yLabel string, logScale bool, lines []Line) error {
	p := newPlot(title, xLabel, yLabel)
	if logScale {
		logY(p)
	}
	for i, l := range lines {
		var pts plotter.XYs
		for j := range min(len(l.X), len(l.Y)) {
			if logScale && l.Y[j] <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: l.X[j], Y: l.Y[j]})
		}
		dash := 0
		if l.Dashed {
			dash = 1
		}
		if err := addLine(p, l.Name, pts, i, dash); err != nil {
			return fmt.Errorf("chart %s: %w", path, err)
		}
	}
	if !logScale {
		p.Y.Min = 0
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	if err := p.Save(chartW, chartH, path); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return nil
}
