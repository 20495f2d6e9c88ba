package soak

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/internal/privatepg"
	"github.com/orderflow/orderflow/loadtest"
)

// topic is the topic the soak's broker creates and orderflow publishes to.
const topic = "orders"

// Config describes one soak. Zero fields take the defaults WithDefaults
// gives.
type Config struct {
	// Orderflow is the path of the orderflow binary; Broker the path of
	// the benchtargets binary (run as -target broker). Required.
	Orderflow, Broker string
	// Duration is how long the open-loop load runs. Default: 30m.
	Duration time.Duration
	// Share is the offered rate as a share of the measured maximum.
	// Default: 0.7.
	Share float64
	// Rate, when set, is the offered rate in orders/s, and no maximum is
	// measured.
	Rate int
	// Probe is how long the closed-loop maximum is measured with
	// ProbeConns connections. Defaults: 30s, 64.
	Probe      time.Duration
	ProbeConns int
	// Autovacuum is PostgreSQL's autovacuum setting. Default: true (on).
	Autovacuum *bool
	// PostgresSettings are more settings of the private PostgreSQL (-c
	// name=value), e.g. a tuned shared_buffers or max_wal_size; everything
	// else keeps initdb's defaults. An "autovacuum" key here is refused:
	// Autovacuum says it.
	PostgresSettings map[string]string
	// Warmup is open-loop load sent at Rate before the clock starts (its
	// orders are reconciled, not measured), so that the first window does
	// not measure connection set-up. Default: 10s; negative: none.
	Warmup time.Duration
	// Interval is how often a sample is taken and the latency window.
	// Default: 1m.
	Interval time.Duration
	// Compare is the span at the start and the end whose p99 and server
	// CPU per order the targets compare. Default: 5m, lowered to a quarter
	// of Duration (at least one Interval) for shorter soaks.
	Compare time.Duration
	// MaxInFlight bounds outstanding open-loop requests. Default: 1024.
	MaxInFlight int
	// ServerArgs are extra orderflow flags.
	ServerArgs []string
	// Out is the prefix of every file written: <Out>.json, <Out>-*.png,
	// <Out>-orderflow.log, <Out>-broker.log, <Out>-postgres.log.
	// Default: loadtest/out/<RunID>-soak.
	Out string
	// RunID makes order ids unique (see loadtest.Config.RunID). Default:
	// loadtest.NewRunID().
	RunID string
	// ReconcileTimeout bounds the wait for the last events. Default: 2m.
	ReconcileTimeout time.Duration
	// Progress receives a line per sample while the soak runs; nil: none.
	Progress io.Writer
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Duration == 0 {
		c.Duration = 30 * time.Minute
	}
	if c.Share == 0 {
		c.Share = 0.7
	}
	if c.Probe == 0 {
		c.Probe = 30 * time.Second
	}
	if c.ProbeConns == 0 {
		c.ProbeConns = 64
	}
	if c.Autovacuum == nil {
		on := true
		c.Autovacuum = &on
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = 10 * time.Second
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.Compare == 0 {
		c.Compare = 5 * time.Minute
	}
	if c.Compare > c.Duration/4 {
		c.Compare = max(c.Duration/4/c.Interval*c.Interval, c.Interval)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1024
	}
	if c.RunID == "" {
		c.RunID = loadtest.NewRunID()
	}
	if c.Out == "" {
		c.Out = filepath.Join("loadtest", "out", c.RunID+"-soak")
	}
	if c.ReconcileTimeout == 0 {
		c.ReconcileTimeout = 2 * time.Minute
	}
	return c
}

// Validate reports a field out of range.
func (c Config) Validate() error {
	switch {
	case c.Orderflow == "" || c.Broker == "":
		return fmt.Errorf("soak: the orderflow and benchtargets binaries are required")
	case c.Duration < c.Interval || c.Interval < time.Second:
		return fmt.Errorf("soak: duration %v, interval %v: want interval ≥ 1s and duration ≥ interval", c.Duration, c.Interval)
	case c.Rate < 0 || c.Rate == 0 && (c.Share <= 0 || c.Share > 2):
		return fmt.Errorf("soak: rate %d, share %v: want a rate ≥ 1 or a share in (0, 2]", c.Rate, c.Share)
	case c.Compare%c.Interval != 0:
		return fmt.Errorf("soak: compare %v must be a multiple of interval %v", c.Compare, c.Interval)
	}
	if _, ok := c.PostgresSettings["autovacuum"]; ok {
		return fmt.Errorf("soak: set autovacuum with Autovacuum (-autovacuum), not as a PostgreSQL setting")
	}
	return nil
}

// autovacuumSetting is "on" or "off".
func (c Config) autovacuumSetting() string {
	if c.Autovacuum != nil && !*c.Autovacuum {
		return "off"
	}
	return "on"
}

// Run performs one soak and returns its report (also written to
// <Out>.json with charts). It returns an error when something could not be
// started or measured; a reconciliation that finds lost, duplicated,
// phantom or unpublished orders is in the report ([Report.Err]).
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Out), 0o755); err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep = &Report{RunID: cfg.RunID, Started: time.Now().UTC(), Autovacuum: cfg.autovacuumSetting(),
		Duration: cfg.Duration.String(), Interval: cfg.Interval.String(), Compare: cfg.Compare.String(), Share: cfg.Share}

	// PostgreSQL, production defaults but for autovacuum as asked.
	settings := map[string]string{"autovacuum": cfg.autovacuumSetting()}
	maps.Copy(settings, cfg.PostgresSettings)
	rep.PostgresSettings = settings
	pg, err := privatepg.Start(ctx, privatepg.Options{Settings: settings,
		Database: "orderflow", DirPrefix: "orderflow-soak-pg-"})
	if err != nil {
		return nil, err
	}
	defer func() {
		if b, rerr := os.ReadFile(pg.LogFile()); rerr == nil {
			_ = os.WriteFile(cfg.Out+"-postgres.log", b, 0o644)
		}
		pg.Close()
	}()
	pgPID, err := pg.PID()
	if err != nil {
		return nil, err
	}
	dbURL := pg.URL("orderflow")

	// The broker, in its own process.
	brokerAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	broker, err := startProc("broker", cfg.Out+"-broker.log", cfg.Broker, "-target", "broker", "-listen", brokerAddr,
		"-admin-listen", "off", "-kafka-topic", topic, "-partitions", "4")
	if err != nil {
		return nil, err
	}
	defer func() { _ = broker.stop(10 * time.Second) }()
	if err := waitReady(ctx, broker, time.Minute, tcpOK(brokerAddr)); err != nil {
		return nil, err
	}

	// orderflow, seeded, publishing to the broker.
	if out, err := runOnce(ctx, cfg.Orderflow, "seed-demo-catalog", "-database-url", dbURL); err != nil {
		return nil, fmt.Errorf("soak: seed the catalog: %w\n%s", err, out)
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-listen", listen, "-admin-listen", admin, "-database-url", dbURL, "-kafka-brokers", brokerAddr,
		"-kafka-topic", topic}, cfg.ServerArgs...)
	server, err := startProc("orderflow", cfg.Out+"-orderflow.log", cfg.Orderflow, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = server.stop(time.Minute) }()
	if err := waitReady(ctx, server, 2*time.Minute, httpOK("http://"+admin+"/readyz")); err != nil {
		return nil, err
	}

	probeRun, loadRun := cfg.RunID+"-max", cfg.RunID
	tc, err := newTopicCounter([]string{brokerAddr}, topic, probeRun, loadRun)
	if err != nil {
		return nil, err
	}
	defer tc.close()
	cctx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	var consumer sync.WaitGroup
	consumer.Go(func() { tc.run(cctx) })
	defer func() { stopConsumer(); consumer.Wait() }()

	target := "http://" + listen
	var results []*loadtest.Result
	rate := cfg.Rate
	if rate == 0 {
		g, err := loadtest.New(loadtest.Config{Target: target, Admin: "http://" + admin, Conns: cfg.ProbeConns, Duration: cfg.Probe,
			RunID: probeRun, PostgresPID: pgPID})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "soak %s: measuring the maximum, closed loop, %d connections for %v\n", cfg.RunID, cfg.ProbeConns, cfg.Probe)
		res, err := g.Run(ctx)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
		rep.Probe = res.Report
		rep.MaxOrdersPerSecond = res.Report.Rates.OrdersPerSecond
		rate = int(math.Round(cfg.Share * rep.MaxOrdersPerSecond))
		if rate < 1 {
			return rep, fmt.Errorf("soak: the maximum measured %.0f orders/s: nothing to soak at", rep.MaxOrdersPerSecond)
		}
		select { // let the probe's backlog drain before the clock starts
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
	}
	rep.Rate = rate

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return rep, fmt.Errorf("soak: sampler: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	smp := &sampler{conn: conn, server: server.pid(), broker: broker.pid(), pgPID: pgPID, topic: tc}

	g, err := loadtest.New(loadtest.Config{Target: target, Admin: "http://" + admin, Mode: loadtest.ModeOpen, Rate: rate,
		MaxInFlight: cfg.MaxInFlight, Duration: cfg.Duration, Warmup: cfg.Warmup, Window: cfg.Interval, RunID: loadRun, PostgresPID: pgPID})
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(progress, "soak %s: open loop at %d orders/s for %v after %v warmup, autovacuum %s, a sample every %v\n",
		cfg.RunID, rate, cfg.Duration, cfg.Warmup, cfg.autovacuumSetting(), cfg.Interval)
	sampleErr := make(chan error, 1)
	gctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	lctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	smp.start = time.Now().Add(cfg.Warmup) // the generator's clock starts after its warmup
	sampling.Go(func() {
		err := smp.loop(lctx, cfg, rep, progress)
		if err != nil {
			stopLoad() // a soak that cannot be measured (the server died?) stops now, not at its end
		}
		sampleErr <- err
	})
	loadRes, loadErr := g.Run(gctx)
	stopSampling()
	sampling.Wait()
	if loadErr != nil {
		return rep, loadErr
	}
	rep.Interrupted = ctx.Err() != nil
	if err := <-sampleErr; err != nil {
		return rep, err
	}
	if err := server.exited(); err != nil {
		return rep, err
	}
	// The last sample, at the end of the load.
	last, err := smp.sample(context.WithoutCancel(ctx))
	if err != nil {
		return rep, err
	}
	rep.Samples = append(rep.Samples, last)
	results = append(results, loadRes)
	rep.Load = loadRes.Report

	rc, err := reconcile(context.WithoutCancel(ctx), cfg, dbURL, tc, results)
	if err != nil {
		return rep, err
	}
	rep.Reconcile = rc
	final, err := smp.sample(context.WithoutCancel(ctx))
	if err == nil {
		rep.AfterReconcile = &final
	}
	if err := server.stop(time.Minute); err != nil {
		rep.ServerExit = err.Error()
	}
	rep.build(cfg, loadRes)
	if err := rep.write(cfg.Out); err != nil {
		return rep, err
	}
	return rep, nil
}

// loop samples at every Interval of the load (the first at its start) and
// peeks at the outbox size every few seconds in between, until ctx is
// done.
func (s *sampler) loop(ctx context.Context, cfg Config, rep *Report, progress io.Writer) error {
	peek := min(cfg.Interval/4, 5*time.Second)
	next := time.Duration(0)
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		if el := time.Since(s.start); el >= next {
			x, err := s.sample(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			rep.Samples = append(rep.Samples, x)
			fmt.Fprintf(progress, "soak: %s\n", x.line())
			next += cfg.Interval
			if next >= cfg.Duration {
				return nil // the last one is taken after the load
			}
		} else if err := s.peekOutbox(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		wait := min(peek, next-time.Since(s.start))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(wait, 0)):
		}
	}
}

// line is a one-line progress view of a sample.
func (x Sample) line() string {
	return fmt.Sprintf("t=%4.0fs server cpu %.1fs postgres cpu %.1fs wal %s orders %s outbox %s (live %d dead %d) events %d repeats %d",
		x.T, x.ServerCPUSeconds, x.PostgresCPUSeconds, mb(x.WALBytes), mb(x.Orders.TotalBytes), mb(x.Outbox.TotalBytes),
		x.OutboxLiveRows, x.OutboxDeadRows, x.TopicRecords, x.TopicRepeats)
}

func mb(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + "MB" }

// runOnce runs bin with args to completion and returns its output.
func runOnce(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, bin, args...).CombinedOutput()
}

// reconcile checks every run's acknowledged orders in PostgreSQL, waits
// until the consumer has read every one's order.created event (or
// ReconcileTimeout passes) and has caught up with the topic, and counts
// repeats.
func reconcile(ctx context.Context, cfg Config, dbURL string, tc *topicCounter, results []*loadtest.Result) (*Reconcile, error) {
	start := time.Now()
	rc := &Reconcile{}
	for _, res := range results {
		r, err := loadtest.ReconcileStore(ctx, dbURL, res)
		if err != nil {
			return nil, err
		}
		rc.Acked += r.Acked
		rc.Refused += r.Refused
		rc.Lost += r.LostCount
		rc.Duplicated += r.DuplicatedCount
		rc.Phantom += r.PhantomCount
		rc.Examples = append(rc.Examples, r.Lost...)
		rc.Examples = append(rc.Examples, r.Duplicated...)
		rc.Examples = append(rc.Examples, r.Phantom...)
	}
	acked := make([][]uint64, len(results))
	for i, res := range results {
		acked[i] = res.AckedNumbers()
	}
	deadline := time.Now().Add(cfg.ReconcileTimeout)
	var missing int
	var examples []string
	for {
		missing, examples = 0, examples[:0]
		for i, res := range results {
			for _, n := range tc.missing(res.Report.RunID, acked[i]) {
				if missing < 10 {
					examples = append(examples, "unpublished "+loadtest.OrderID(res.Report.RunID, n))
				}
				missing++
			}
		}
		if missing == 0 && tc.counts().CaughtUp || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	rc.Examples = append(rc.Examples, examples...)
	c := tc.counts()
	rc.Unpublished = missing
	rc.TopicRecords, rc.Repeated, rc.Foreign, rc.Trimmed = c.Records, c.Repeats, c.Foreign, c.Trimmed
	tc.mu.Lock()
	rc.RepeatedExamples = append([]string(nil), tc.repeated...)
	rc.TopicError = tc.err
	tc.mu.Unlock()
	rc.Seconds = time.Since(start).Seconds()
	return rc, nil
}
