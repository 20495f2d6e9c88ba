// Command loadtest sends POST /v1/orders load to an orderflow server,
// reports latency, throughput and server cost, and reconciles every
// acknowledged order against PostgreSQL and the Kafka topic.
//
//	loadtest [flags]
//
// It prints a summary, writes the JSON report to -out, and exits non-zero
// when reconciliation finds a lost, duplicated, phantom or unpublished order.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
}

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
	fs.StringVar(&cfg.Mode, "mode", loadtest.ModeClosed, `load model: "closed" (workers send, wait, send) or "open" (fixed -rate, latency from the schedule)`)
	fs.IntVar(&cfg.Conns, "conns", 64, "closed loop: workers, each with its own keep-alive connection")
	fs.IntVar(&cfg.Rate, "rate", 0, "open loop: requests per second (required with -mode open)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 1024, "open loop: bound on outstanding requests; a request over it is dropped and counted")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured run time, after -warmup")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "load sent before measuring (reconciled, not measured)")
	fs.Int64Var(&cfg.MaxRequests, "max-requests", 0, "stop after this many requests, warmup included (0: no limit)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 10*time.Second, "timeout of one request, connect included")
	fs.StringVar(&cfg.Scenario, "scenario", loadtest.ScenarioOrders, `"orders" (new orders only) or "duplicates" (Idempotency-Key on every order, 5% resends expecting 200)`)
	fs.IntVar(&cfg.Items, "items", 3, "items per order (1–100)")
	fs.StringVar(&skus, "skus", strings.Join(loadtest.DefaultSKUs, ","), "comma-separated SKUs items are drawn from (must be in the server's catalog)")
	fs.StringVar(&cfg.RunID, "run-id", "", "run id; order ids are lt_<run-id>_<n> (default: UTC time plus random hex)")
	fs.StringVar(&cfg.Admin, "admin", "http://127.0.0.1:6060", `server admin URL to scrape /metrics from before and after ("" to skip)`)
	fs.StringVar(&o.databaseURL, "database-url", envOr("DATABASE_URL", "postgres://127.0.0.1:5432/orderflow?sslmode=disable"), "PostgreSQL for reconciliation (env DATABASE_URL)")
	fs.StringVar(&o.kafkaBrokers, "kafka-brokers", envOr("KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka seed brokers for reconciliation (env KAFKA_BROKERS)")
	fs.StringVar(&o.kafkaTopic, "kafka-topic", envOr("KAFKA_TOPIC", "orders"), "topic the server publishes to (env KAFKA_TOPIC)")
	fs.BoolVar(&o.reconcile, "reconcile", true, "check every acknowledged order against PostgreSQL and the topic afterwards")
	fs.DurationVar(&o.reconcileTimeout, "reconcile-timeout", 30*time.Second, "how long to wait for acknowledged orders to appear on the topic")
	fs.StringVar(&o.out, "out", "loadtest/out/"+runIDPlaceholder+".json", `JSON report path; `+runIDPlaceholder+` is replaced by the run id ("" to skip)`)
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.SKUs = nil
	for s := range strings.SplitSeq(skus, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.SKUs = append(cfg.SKUs, s)
		}
	}
	return cfg, o, nil
}

// run is main without the process exits, for tests. It returns an error
// wrapping loadtest.ErrReconcile when reconciliation fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	g, err := loadtest.New(cfg)
	if err != nil {
		return err
	}
	cfg = g.Config()
	fmt.Fprintf(stdout, "loadtest %s: %s loop against %s for %v (warmup %v)\n", cfg.RunID, cfg.Mode, cfg.Target, cfg.Duration, cfg.Warmup)
	res, err := g.Run(ctx)
	if err != nil {
		return err
	}
	rep := res.Report

	var runErr error
	if o.reconcile {
		brokers := splitList(o.kafkaBrokers)
		// Reconcile even after Ctrl-C: what was acknowledged must be checked.
		rc, err := loadtest.Reconcile(context.WithoutCancel(ctx), o.databaseURL, brokers, o.kafkaTopic,
			res.AckedIDs(), res.RefusedIDs(), o.reconcileTimeout)
		if err != nil {
			runErr = err
		} else {
			rep.Reconcile = rc
			runErr = rc.Err()
		}
	}

	// Further outputs (charts) are one more loadtest.Writer in this list.
	writers := []loadtest.Writer{loadtest.Summary{W: stdout}}
	path := strings.ReplaceAll(o.out, runIDPlaceholder, rep.RunID)
	if path != "" {
		writers = append(writers, loadtest.JSONFile{Path: path})
	}
	for _, w := range writers {
		if err := w.WriteReport(rep); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if path != "" {
		fmt.Fprintf(stdout, "report written to %s\n", path)
	}
	return runErr
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
