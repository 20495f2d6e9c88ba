// Command orderflow runs the order ingestion server.
//
//	orderflow [flags]               serve (the default action)
//	orderflow seed-demo-catalog     create the schema and upsert a demo product catalog
//	orderflow outbox dead           list the parked (dead-lettered) outbox events
//	orderflow outbox requeue (--all | ID/VERSION...)
//	                                put parked events back for the sweeper
//
// Every flag has an environment variable (listed by -h); a flag given on
// the command line wins over its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/orderflow/orderflow/engine"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "orderflow:", err)
		os.Exit(1)
	}
}

// run is main without the process exits, for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	seed := false
	if len(args) > 0 && args[0] == "seed-demo-catalog" {
		seed, args = true, args[1:]
	}
	var outboxSub string
	var outboxArgs []string
	if len(args) > 0 && args[0] == "outbox" {
		var err error
		if outboxSub, outboxArgs, args, err = splitOutboxArgs(args[1:]); err != nil {
			return err
		}
	}
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.level}))
	for _, w := range o.deprecated {
		log.Warn(w)
	}
	cfg := o.cfg
	cfg.Logger = log
	if seed {
		return seedDemoCatalog(ctx, cfg)
	}
	if outboxSub != "" {
		return outboxCommand(ctx, cfg, outboxSub, outboxArgs, os.Stdout)
	}
	log.Info("orderflow starting", "version", version)
	e, err := engine.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(cfg.Ingest.APIKeys) > 0 {
		var wg sync.WaitGroup
		wctx, cancel := context.WithCancel(ctx)
		wg.Go(func() { watchKeys(wctx, o, e, log, keysCheckEvery) })
		defer wg.Wait()
		defer cancel()
	}
	if err := e.Run(ctx); err != nil {
		return err
	}
	log.Info("orderflow stopped")
	return nil
}
