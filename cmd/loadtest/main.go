// Command loadtest sends order load to an orderflow server (or several
// targets one after another), reports latency, throughput and server cost,
// and reconciles every acknowledged order against PostgreSQL and the Kafka
// topic.
//
//	loadtest [flags]
//	loadtest -targets orderflow=http://127.0.0.1:8080,baseline=http://127.0.0.1:8081,noop=http://127.0.0.1:8082 \
//	    -target-opt orderflow.admin=http://127.0.0.1:6060 -target-opt noop.reconcile=false ... [-sweep 1000,2000,4000]
//
// It prints a summary (with -targets or -sweep, a table comparing the
// runs), writes the JSON report to -out and PNG charts next to it, and
// exits non-zero when reconciliation finds a lost, duplicated, phantom or
// unpublished order, or a wrong final status.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/loadtest"
)

func main() {
	// The first Ctrl-C ends the load early; reconciliation and the report
	// still run. Restoring the default handler then lets a second one kill.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// options are the flags that are not loadtest.Config fields.
type options struct {
	databaseURL      string
	kafkaBrokers     string
	kafkaTopic       string
	reconcile        bool
	reconcileTimeout time.Duration
	out              string
	charts           bool
	targets          string
	targetOpts       []string
	sweep            []int
	sweepDuration    time.Duration
	settle           time.Duration
	postgresCPU      bool
	// Set explicitly (flag, or its environment variable): against a target
	// on another machine the defaults would name this machine's admin
	// listener, database and broker.
	adminGiven, databaseGiven, brokersGiven bool
}

// target is one server to measure and where it stores and publishes.
type target struct {
	name, url, admin string
	backend          loadtest.Backend
	reconcile        bool
	// databaseGiven, brokersGiven: the backend was named explicitly (see
	// options), not left to the defaults.
	databaseGiven, brokersGiven bool
}

// apiKeyEnv holds the API key when -api-key is not given (the environment
// keeps it out of ps).
const apiKeyEnv = "ORDERFLOW_LOADTEST_API_KEY"

// maxTargetName keeps a run id plus "-<name>-<rate>" within the run id limit.
const maxTargetName = 10

// runIDPlaceholder in -out is replaced by the run id.
const runIDPlaceholder = "<runid>"

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (loadtest.Config, options, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var cfg loadtest.Config
	var o options
	var skus string
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "server base URL")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a -target that is not a loopback address")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "PEM file of CAs to trust for an https -target (empty: the system roots)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API key sent as Authorization: Bearer on every request (env "+apiKeyEnv+", which keeps it out of ps; empty: none)")
	fs.StringVar(&cfg.Mode, "mode", loadtest.ModeClosed, `load model: "closed" (workers send, wait, send) or "open" (fixed -rate, latency from the schedule)`)
	fs.IntVar(&cfg.Conns, "conns", 64, "closed loop: workers, each with its own keep-alive connection")
	fs.IntVar(&cfg.Rate, "rate", 0, "open loop: requests per second (required with -mode open)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 1024, "open loop: bound on outstanding requests; a request over it is dropped and counted")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured run time, after -warmup")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "load sent before measuring (reconciled, not measured)")
	fs.Int64Var(&cfg.MaxRequests, "max-requests", 0, "stop after this many requests, warmup included (0: no limit)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 10*time.Second, "timeout of one request, connect included")
	fs.StringVar(&cfg.Scenario, "scenario", loadtest.ScenarioOrders, `"orders" (new orders only), "duplicates" (Idempotency-Key on every order, 5% resends expecting 200), `+
		`"batches" (-batch-size orders per POST /v1/order-batches, NDJSON), "mix" (each acknowledged order then goes paid → assembling via POST /v1/orders/{id}/status) `+
		`"batcher" (each connection is one caller of the Go client's Batcher, which coalesces their orders into bulk requests) `+
		`or "status" (-status-orders orders created in bulk before measuring, then only POST /v1/orders/{id}/status moving each paid → assembling → delivering → delivered)`)
	fs.IntVar(&cfg.StatusOrders, "status-orders", 20_000, "status: orders created before measuring (4 status changes each); workers that run out create more")
	fs.IntVar(&cfg.BatchSize, "batch-size", 100, "batches: orders per request (1–10000)")
	fs.IntVar(&cfg.Items, "items", 3, "items per order (1–100)")
	fs.StringVar(&skus, "skus", strings.Join(loadtest.DefaultSKUs, ","), "comma-separated SKUs items are drawn from (must be in the server's catalog)")
	fs.StringVar(&cfg.RunID, "run-id", "", "run id; order ids are lt_<run-id>_<n> (default: UTC time plus random hex)")
	fs.StringVar(&cfg.Admin, "admin", "http://127.0.0.1:6060", `server admin URL to scrape /metrics from before and after ("" to skip; a -target on another machine is scraped only when -admin is given)`)
	fs.StringVar(&o.databaseURL, "database-url", envOr("DATABASE_URL", "postgres://127.0.0.1:5432/orderflow?sslmode=disable"), "PostgreSQL for reconciliation (env DATABASE_URL); a -target on another machine is reconciled only when this and -kafka-brokers are given")
	fs.StringVar(&o.kafkaBrokers, "kafka-brokers", envOr("KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka seed brokers for reconciliation (env KAFKA_BROKERS)")
	fs.StringVar(&o.kafkaTopic, "kafka-topic", envOr("KAFKA_TOPIC", "orders"), "topic the server publishes to (env KAFKA_TOPIC)")
	fs.BoolVar(&o.reconcile, "reconcile", true, "check every acknowledged order against PostgreSQL and the topic afterwards")
	fs.DurationVar(&o.reconcileTimeout, "reconcile-timeout", 30*time.Second, "how long to wait for acknowledged orders to appear on the topic")
	fs.StringVar(&o.out, "out", "loadtest/out/"+runIDPlaceholder+".json", `JSON report path; `+runIDPlaceholder+` is replaced by the run id ("" to skip)`)
	fs.BoolVar(&o.charts, "charts", true, "write PNG charts next to the JSON report (<out without .json>-*.png)")
	fs.StringVar(&o.targets, "targets", "", "measure several targets one after another with the same settings: name=url,name=url,… (names: 1–10 of a-z 0-9 _); replaces -target")
	fs.Func("target-opt", "per-target setting name.key=value (repeatable); keys: admin, database-url, kafka-brokers (comma-separated), kafka-topic, reconcile (true/false). "+
		"With -targets, -database-url, -kafka-brokers, -kafka-topic and -reconcile are the defaults; -admin is not (give each target its own admin)", func(v string) error {
		o.targetOpts = append(o.targetOpts, v)
		return nil
	})
	var sweep string
	fs.StringVar(&sweep, "sweep", "", "after each target's main run, run open loop at each of these offered rates (requests/s), e.g. 1000,2000,4000,8000, and chart latency against rate")
	fs.DurationVar(&o.sweepDuration, "sweep-duration", 0, "measured time of each sweep run (default -duration)")
	fs.DurationVar(&o.settle, "settle", time.Second, "pause between runs, so one target's background work does not load the next")
	fs.BoolVar(&o.postgresCPU, "postgres-cpu", true, "report the CPU of the PostgreSQL server behind each target's -database-url (postmaster and children, from /proc) when it runs on this machine")
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	for r := range strings.SplitSeq(sweep, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			return cfg, o, fmt.Errorf("-sweep %q: want comma-separated rates of at least 1 request/s", sweep)
		}
		o.sweep = append(o.sweep, n)
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.APIKey == "" {
		cfg.APIKey = strings.TrimSpace(getenv(apiKeyEnv))
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "admin":
			o.adminGiven = true
		case "database-url":
			o.databaseGiven = true
		case "kafka-brokers":
			o.brokersGiven = true
		}
	})
	o.databaseGiven = o.databaseGiven || getenv("DATABASE_URL") != ""
	o.brokersGiven = o.brokersGiven || getenv("KAFKA_BROKERS") != ""
	cfg.SKUs = nil
	for s := range strings.SplitSeq(skus, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.SKUs = append(cfg.SKUs, s)
		}
	}
	return cfg, o, nil
}

// targetsOf returns what to measure: the -targets list with its
// -target-opt settings, or the single -target.
func targetsOf(cfg loadtest.Config, o options) ([]target, error) {
	def := func(name, url, admin string) target {
		return target{name: name, url: url, admin: admin, reconcile: o.reconcile, backend: loadtest.Backend{
			DatabaseURL: o.databaseURL, Brokers: splitList(o.kafkaBrokers), Topic: o.kafkaTopic, Timeout: o.reconcileTimeout},
			databaseGiven: o.databaseGiven, brokersGiven: o.brokersGiven}
	}
	if o.targets == "" {
		if len(o.targetOpts) > 0 {
			return nil, fmt.Errorf("-target-opt needs -targets")
		}
		t := def("", cfg.Target, cfg.Admin)
		if !o.adminGiven && !loadtest.IsLoopbackTarget(t.url) {
			t.admin = "" // the default names this machine's admin listener, not the target's
		}
		return []target{t}, nil
	}
	var ts []target
	index := map[string]int{}
	for spec := range strings.SplitSeq(o.targets, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		name, url, ok := strings.Cut(spec, "=")
		if !ok || !validName(name) || url == "" {
			return nil, fmt.Errorf("-targets %q: want name=url,… with names of 1–%d of a-z 0-9 _", spec, maxTargetName)
		}
		if _, dup := index[name]; dup {
			return nil, fmt.Errorf("-targets: %q given twice", name)
		}
		index[name] = len(ts)
		ts = append(ts, def(name, url, ""))
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("-targets %q: no target", o.targets)
	}
	for _, opt := range o.targetOpts {
		nk, v, ok := strings.Cut(opt, "=")
		name, key, ok2 := strings.Cut(nk, ".")
		i, known := index[name]
		if !ok || !ok2 || !known {
			return nil, fmt.Errorf("-target-opt %q: want name.key=value for a name in -targets", opt)
		}
		t := &ts[i]
		switch key {
		case "admin":
			t.admin = v
		case "database-url":
			t.backend.DatabaseURL, t.databaseGiven = v, true
		case "kafka-brokers":
			t.backend.Brokers, t.brokersGiven = splitList(v), true
		case "kafka-topic":
			t.backend.Topic = v
		case "reconcile":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("-target-opt %q: %w", opt, err)
			}
			t.reconcile = b
		default:
			return nil, fmt.Errorf("-target-opt %q: unknown key %q (want admin, database-url, kafka-brokers, kafka-topic or reconcile)", opt, key)
		}
	}
	return ts, nil
}

// remoteDefaults turns reconciliation off for each target on another
// machine whose database and brokers were not both given: the defaults
// name this machine's, which hold none of its orders, so reconciling
// against them would report every order lost. It says so on w. Without a
// given database it also leaves PostgreSQL's CPU unmeasured (this
// machine's PostgreSQL is not the target's).
func remoteDefaults(ts []target, w io.Writer) {
	for i := range ts {
		t := &ts[i]
		if loadtest.IsLoopbackTarget(t.url) || t.databaseGiven && t.brokersGiven {
			continue
		}
		if t.reconcile {
			fmt.Fprintf(w, "loadtest: %s is not on this machine and its -database-url and -kafka-brokers were not both given: not reconciled\n", t.url)
		}
		t.reconcile = false
		if !t.databaseGiven {
			t.backend.DatabaseURL = ""
		}
	}
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxTargetName {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// run is main without the process exits, for tests. It returns an error
// wrapping loadtest.ErrReconcile when reconciliation fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	targets, err := targetsOf(cfg, o)
	if err != nil {
		return err
	}
	if cfg.RunID == "" {
		cfg.RunID = loadtest.NewRunID()
	}
	// Build every generator first, so a bad setting fails before any load.
	type plan struct {
		t     target
		g     *loadtest.Generator
		sweep bool
	}
	var plans []plan
	remoteDefaults(targets, stderr)
	for _, t := range targets {
		c := cfg
		c.Target, c.Admin, c.Name = t.url, t.admin, t.name
		if o.postgresCPU && t.backend.DatabaseURL != "" {
			pid, err := loadtest.FindPostmaster(ctx, t.backend.DatabaseURL)
			if err != nil {
				fmt.Fprintf(stderr, "loadtest: %s: PostgreSQL CPU not measured: %v\n", cmp.Or(t.name, t.url), err)
			}
			c.PostgresPID = pid
		}
		if t.name != "" {
			c.RunID = cfg.RunID + "-" + t.name
		}
		g, err := loadtest.New(c)
		if err != nil {
			return err
		}
		plans = append(plans, plan{t: t, g: g})
		for _, rate := range o.sweep {
			sc := c
			sc.Mode, sc.Rate, sc.RunID = loadtest.ModeOpen, rate, c.RunID+"-"+strconv.Itoa(rate)
			if o.sweepDuration > 0 {
				sc.Duration = o.sweepDuration
			}
			sg, err := loadtest.New(sc)
			if err != nil {
				return err
			}
			plans = append(plans, plan{t: t, g: sg, sweep: true})
		}
	}

	suite := &loadtest.Suite{RunID: cfg.RunID, Started: time.Now().UTC()}
	var runErr error
	for i, p := range plans {
		if ctx.Err() != nil {
			break // Ctrl-C: report what ran
		}
		if i > 0 && o.settle > 0 {
			select {
			case <-time.After(o.settle):
			case <-ctx.Done():
			}
		}
		c := p.g.Config()
		what := fmt.Sprintf("%s loop", c.Mode)
		if c.Mode == loadtest.ModeOpen {
			what = fmt.Sprintf("open loop at %d req/s", c.Rate)
		}
		fmt.Fprintf(stdout, "loadtest %s: %s, scenario %s, against %s for %v (warmup %v)\n", c.RunID, what, c.Scenario, c.Target, c.Duration, c.Warmup)
		res, err := p.g.Run(ctx)
		if err != nil {
			return err
		}
		rep := res.Report
		if o.reconcile && p.t.reconcile {
			// Reconcile even after Ctrl-C: what was acknowledged must be checked.
			rc, err := loadtest.ReconcileRun(context.WithoutCancel(ctx), p.t.backend, res)
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("%s: %w", c.RunID, err))
			} else {
				rep.Reconcile = rc
			}
		}
		if err := (loadtest.Summary{W: stdout}).WriteReport(rep); err != nil {
			return errors.Join(runErr, err)
		}
		if err := nothingAcked(rep); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("%s: %w", c.RunID, err))
		}
		fmt.Fprintln(stdout)
		if p.sweep {
			suite.Sweep = append(suite.Sweep, rep)
		} else {
			suite.Runs = append(suite.Runs, rep)
		}
	}
	if len(suite.Runs) == 0 {
		return errors.Join(runErr, ctx.Err())
	}
	runErr = errors.Join(runErr, suite.Err())

	// One target and no sweep: the report is a single Report, as before.
	single := len(targets) == 1 && targets[0].name == "" && len(o.sweep) == 0
	path := strings.ReplaceAll(o.out, runIDPlaceholder, cfg.RunID)
	var writers []loadtest.SuiteWriter
	var charts *loadtest.Charts
	if path != "" {
		if o.charts {
			charts = &loadtest.Charts{Prefix: strings.TrimSuffix(path, ".json")}
			writers = append(writers, charts)
		}
		writers = append(writers, loadtest.JSONFile{Path: path})
	}
	if !single {
		if err := (loadtest.Summary{W: stdout}).WriteTables(suite); err != nil {
			return errors.Join(runErr, err)
		}
	}
	for _, w := range writers {
		var err error
		if rw, ok := w.(loadtest.Writer); ok && single {
			err = rw.WriteReport(suite.Runs[0])
		} else {
			err = w.WriteSuite(suite)
		}
		if err != nil {
			return errors.Join(runErr, err)
		}
	}
	if path != "" {
		fmt.Fprintf(stdout, "report written to %s\n", path)
	}
	if charts != nil {
		fmt.Fprintf(stdout, "charts written to %s\n", strings.Join(charts.Written, " "))
	}
	return runErr
}

// nothingAcked is an error when a run sent requests and none was
// acknowledged: a wrong key, catalog or certificate, not a measurement.
func nothingAcked(rep *loadtest.Report) error {
	c := rep.Counts
	if c.Requests == 0 || c.Acked > 0 {
		return nil
	}
	hint := ""
	switch {
	case c.ByStatus["401"] > 0:
		hint = "; 401: give the target's API key (-api-key or " + apiKeyEnv + ")"
	case c.ByStatus["422"] > 0:
		hint = "; 422: are -skus active in the target's catalog?"
	case c.ByStatus["transport_error"] > 0:
		hint = "; transport errors: is the target up, and for https is -ca-file right?"
	}
	return fmt.Errorf("none of %d requests was acknowledged (by status %v)%s", c.Requests, c.ByStatus, hint)
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
