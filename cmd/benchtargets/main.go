// Command benchtargets runs the servers the load test measures orderflow
// against:
//
//	benchtargets -target baseline [flags]   the naive "before" server (bench/baseline)
//	benchtargets -target noop [flags]       fasthttp answering 201 to anything (bench/noop)
//	benchtargets -target broker [flags]     a Kafka-protocol broker (franz-go's kfake, in memory) at -listen
//
// The broker runs in its own process so that a load test or soak measures
// orderflow's CPU without the broker's, as against a real cluster: start
// orderflow with -kafka-brokers <its -listen>. -kafka-topic is pre-created
// with -partitions partitions.
//
// All serve an admin listener with /metrics (Go and process collectors:
// process_cpu_seconds_total, go_memstats_alloc_bytes_total,
// go_gc_duration_seconds — what the load test scrapes), /debug/pprof/ and
// /healthz. The baseline migrates its database and upserts the demo catalog
// at start (as `orderflow seed-demo-catalog`), and runs an embedded Kafka
// broker when -kafka-brokers is empty, as orderflow does. SIGINT or SIGTERM
// stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderflow/orderflow/bench/baseline"
	"github.com/orderflow/orderflow/bench/noop"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/publish"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "benchtargets:", err)
		os.Exit(1)
	}
}

type options struct {
	target            string
	listen            string
	adminListen       string
	databaseURL       string
	maxConns          int
	kafkaBrokers      string
	kafkaTopic        string
	embeddedKafkaAddr string
	shutdownTimeout   time.Duration
	partitions        int
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchtargets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbDefault := getenv("DATABASE_URL")
	if dbDefault == "" {
		dbDefault = "postgres://127.0.0.1:5432/orderflow_baseline?sslmode=disable"
	}
	fs.StringVar(&o.target, "target", "", `"baseline" (naive net/http server), "noop" (fasthttp, 201 to anything) or "broker" (Kafka-protocol broker)`)
	fs.StringVar(&o.listen, "listen", "", "public listener (default 127.0.0.1:8081 for baseline, 127.0.0.1:8082 for noop, 127.0.0.1:9094 for broker: the Kafka address)")
	fs.StringVar(&o.adminListen, "admin-listen", "", `admin listener: /metrics, /debug/pprof, /healthz (default 127.0.0.1:6061 for baseline, 127.0.0.1:6062 for noop, 127.0.0.1:6063 for broker; "off" for none)`)
	fs.IntVar(&o.partitions, "partitions", 4, "broker: partitions of -kafka-topic")
	fs.StringVar(&o.databaseURL, "database-url", dbDefault, "baseline: PostgreSQL database, migrated and seeded at start (env DATABASE_URL)")
	fs.IntVar(&o.maxConns, "max-conns", 4, "baseline: connection pool size")
	fs.StringVar(&o.kafkaBrokers, "kafka-brokers", getenv("KAFKA_BROKERS"), "baseline: comma-separated seed brokers; empty runs an embedded broker at -embedded-kafka-addr (env KAFKA_BROKERS)")
	fs.StringVar(&o.kafkaTopic, "kafka-topic", "orders", "baseline: topic for order.created records; broker: the topic it creates")
	fs.StringVar(&o.embeddedKafkaAddr, "embedded-kafka-addr", "127.0.0.1:9093", "baseline: where the embedded broker listens (only with -kafka-brokers empty)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "drain budget on SIGTERM")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	defListen, defAdmin := "", ""
	switch o.target {
	case "baseline":
		defListen, defAdmin = "127.0.0.1:8081", "127.0.0.1:6061"
	case "noop":
		defListen, defAdmin = "127.0.0.1:8082", "127.0.0.1:6062"
	case "broker":
		defListen, defAdmin = "127.0.0.1:9094", "127.0.0.1:6063"
		if o.partitions < 1 {
			return o, fmt.Errorf("-partitions %d: want at least 1", o.partitions)
		}
	default:
		return o, fmt.Errorf(`-target %q: want "baseline", "noop" or "broker"`, o.target)
	}
	if o.listen == "" {
		o.listen = defListen
	}
	switch o.adminListen {
	case "":
		o.adminListen = defAdmin
	case "off":
		o.adminListen = ""
	}
	return o, nil
}

// started reports the bound addresses once both listeners are up (tests).
type started func(public, admin string)

// run is main without the process exits, for tests. It serves until ctx is
// done, then shuts down.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, up started) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("target", o.target)

	var ln net.Listener // the broker listens itself
	var publicAddr string
	if o.target != "broker" {
		if ln, err = net.Listen("tcp", o.listen); err != nil {
			return fmt.Errorf("-listen: %w", err)
		}
		defer ln.Close()
		publicAddr = ln.Addr().String()
	}
	var adminAddr string
	serveErr := make(chan error, 2) // public and admin; never more
	if o.adminListen != "" {
		aln, err := net.Listen("tcp", o.adminListen)
		if err != nil {
			return fmt.Errorf("-admin-listen: %w", err)
		}
		admin := &http.Server{Handler: adminMux(), ReadHeaderTimeout: 10 * time.Second}
		adminAddr = aln.Addr().String()
		go func() { serveErr <- admin.Serve(aln) }()
		defer admin.Close()
	}

	var serve func() error
	var shutdown func(context.Context) error
	switch o.target {
	case "noop":
		srv := noop.NewServer()
		serve = func() error { return srv.Serve(ln) }
		shutdown = srv.ShutdownWithContext
	case "broker":
		emb, err := publish.StartEmbedded(o.listen, o.kafkaTopic, int32(o.partitions), log)
		if err != nil {
			return err
		}
		defer emb.Close()
		publicAddr = emb.Addrs()[0]
		stopped := make(chan struct{})
		serve = func() error { <-stopped; return nil }
		shutdown = func(context.Context) error { emb.Close(); close(stopped); return nil }
	case "baseline":
		brokers := splitList(o.kafkaBrokers)
		if len(brokers) == 0 {
			emb, err := publish.StartEmbedded(o.embeddedKafkaAddr, o.kafkaTopic, 4, log)
			if err != nil {
				return err
			}
			defer emb.Close()
			brokers = emb.Addrs()
		}
		seedCfg := engine.DefaultConfig()
		seedCfg.DatabaseURL = o.databaseURL
		seedCfg.Logger = log
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := engine.SeedDemoCatalog(sctx, seedCfg) // migrations + demo catalog
		cancel()
		if err != nil {
			return fmt.Errorf("migrate and seed %s: %w", o.databaseURL, err)
		}
		b, err := baseline.New(ctx, baseline.Config{DatabaseURL: o.databaseURL, MaxConns: int32(o.maxConns),
			KafkaBrokers: brokers, KafkaTopic: o.kafkaTopic, Logger: log})
		if err != nil {
			return err
		}
		defer b.Close()
		srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
		serve = func() error { return srv.Serve(ln) }
		shutdown = srv.Shutdown
		log.Info("baseline ready", "kafka_brokers", strings.Join(brokers, ","), "topic", o.kafkaTopic)
	}
	go func() { serveErr <- serve() }()
	log.Info("serving", "listen", publicAddr, "admin", adminAddr)
	if up != nil {
		up(publicAddr, adminAddr)
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// adminMux serves /metrics from a private registry with the Go and process
// collectors, /debug/pprof/ and /healthz.
func adminMux() *http.ServeMux {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
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
