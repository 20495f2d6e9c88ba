// Command soak runs orderflow under sustained open-loop load against a
// private PostgreSQL and a broker in its own process, samples it every
// interval, reconciles every acknowledged order at the end, and prints
// each target as met or not met (see package soak).
//
//	soak [-duration 30m] [-share 0.7 | -rate N] [-autovacuum on|off] [-interval 1m] ...
//
// It writes <out>.json, <out>-*.png charts and the processes' logs, and
// exits non-zero when an order was lost, duplicated, phantom or
// unpublished, or when the soak could not run. Targets that are not met are
// printed, and fail the exit status only with -strict. Ctrl-C ends the
// load early; reconciliation, the report and the charts still follow.
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

	"github.com/orderflow/orderflow/soak"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (soak.Config, bool, error) {
	var c soak.Config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Orderflow, "orderflow", "bin/orderflow", "orderflow binary")
	fs.StringVar(&c.Broker, "benchtargets", "bin/benchtargets", "benchtargets binary (runs the broker with -target broker)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Minute, "open-loop load time")
	fs.Float64Var(&c.Share, "share", 0.7, "offered rate as a share of the measured maximum")
	fs.IntVar(&c.Rate, "rate", 0, "offered rate in orders/s; skips measuring the maximum")
	fs.DurationVar(&c.Probe, "probe", 30*time.Second, "how long the closed-loop maximum is measured")
	fs.IntVar(&c.ProbeConns, "probe-conns", 64, "connections of the maximum's closed loop")
	av := fs.String("autovacuum", "on", "PostgreSQL autovacuum: on or off")
	fs.Func("pg", "a setting of the private PostgreSQL, `name=value` (repeatable), e.g. -pg max_wal_size=8GB", func(v string) error {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("want name=value")
		}
		if c.PostgresSettings == nil {
			c.PostgresSettings = map[string]string{}
		}
		c.PostgresSettings[name] = value
		return nil
	})
	fs.DurationVar(&c.Warmup, "warmup", 10*time.Second, "open-loop load before the clock starts (reconciled, not measured; 0: none)")
	fs.DurationVar(&c.Interval, "interval", time.Minute, "sample and latency window interval")
	fs.DurationVar(&c.Compare, "compare", 5*time.Minute, "span at the start and the end that the targets compare (at most a quarter of -duration)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1024, "bound on outstanding open-loop requests")
	serverArgs := fs.String("server-args", "", "extra orderflow flags, space-separated")
	fs.StringVar(&c.Out, "out", "", "prefix of the files written (default loadtest/out/<run id>-soak)")
	fs.StringVar(&c.RunID, "run-id", "", "run id (default: UTC time plus random hex)")
	fs.DurationVar(&c.ReconcileTimeout, "reconcile-timeout", 2*time.Minute, "how long to wait for the last events on the topic")
	strict := fs.Bool("strict", false, "exit non-zero when a target is not met")
	if err := fs.Parse(args); err != nil {
		return c, false, err
	}
	if fs.NArg() > 0 {
		return c, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch *av {
	case "on", "off":
		on := *av == "on"
		c.Autovacuum = &on
	default:
		return c, false, fmt.Errorf("-autovacuum %q: want on or off", *av)
	}
	c.ServerArgs = strings.Fields(*serverArgs)
	if c.Warmup == 0 {
		c.Warmup = -1 // none, not the default
	}
	return c, *strict, nil
}

// run is main without the process exits, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, strict, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.Progress = stderr
	rep, err := soak.Run(ctx, cfg)
	if rep != nil && len(rep.Targets) > 0 {
		if werr := rep.WriteSummary(stdout); werr != nil {
			return errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	if strict {
		for _, t := range rep.Targets {
			if !t.Met {
				return fmt.Errorf("target not met: %s: %s", t.Name, t.Got)
			}
		}
	}
	return nil
}
