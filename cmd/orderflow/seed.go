package main

import (
	"context"
	"fmt"
	neturl "net/url"

	"github.com/orderflow/orderflow/engine"
)

// seedDemoCatalog creates the schema and upserts the demo catalog that
// `make run` and the README's curl example use. The catalog belongs to
// another service in production; this is for development machines.
func seedDemoCatalog(ctx context.Context, cfg engine.Config) error {
	n, err := engine.SeedDemoCatalog(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("demo catalog seeded", "products", n, "database", redact(cfg.DatabaseURL))
	fmt.Println("seeded", n, "demo products")
	return nil
}

// redact hides a password in a connection URL for logging.
func redact(url string) string {
	if u, err := neturl.Parse(url); err == nil {
		return u.Redacted()
	}
	return "(unparsable url)"
}
