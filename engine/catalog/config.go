package catalog

import (
	"time"

	"github.com/orderflow/orderflow/internal/conf"
)

// Config tunes the refresher. Zero fields take their defaults.
type Config struct {
	// RefreshInterval is how often changed products are re-read. Default: 2s.
	RefreshInterval time.Duration
	// Overlap re-reads products whose updated_at is up to this much older
	// than the newest one seen, so a product committed late with an earlier
	// timestamp is not missed. Default: 10s.
	Overlap time.Duration
	// FullReloadEvery reloads the whole catalog (dropping deleted rows).
	// Default: 5m.
	FullReloadEvery time.Duration
	// Timeout bounds one load. Default: 10s.
	Timeout time.Duration
}

// Flag names of the catalog's settings.
const (
	FlagRefreshInterval = "catalog.refresh-interval"
	FlagOverlap         = "catalog.overlap"
	FlagFullReload      = "catalog.full-reload"
	FlagTimeout         = "catalog.timeout"
)

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{RefreshInterval: 2 * time.Second, Overlap: 10 * time.Second, FullReloadEvery: 5 * time.Minute, Timeout: 10 * time.Second}
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *time.Duration }{{&c.RefreshInterval, &d.RefreshInterval}, {&c.Overlap, &d.Overlap}, {&c.FullReloadEvery, &d.FullReloadEvery}, {&c.Timeout, &d.Timeout}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return c
}

// Settings lists c's settings, bound to c's fields, with their bounds.
func (c *Config) Settings() []conf.Setting {
	return []conf.Setting{
		conf.Duration(&c.RefreshInterval, FlagRefreshInterval, "how often changed products are re-read").Min(1),
		conf.Duration(&c.Overlap, FlagOverlap, "re-read products up to this much older than the newest seen (catches late commits)").Min(1),
		conf.Duration(&c.FullReloadEvery, FlagFullReload, "how often the whole catalog is reloaded (drops deleted products)").Min(1),
		conf.Duration(&c.Timeout, FlagTimeout, "time budget of one catalog load").Min(1),
	}
}

// Validate reports settings that cannot work, naming the flag. Zero fields
// are checked with their default values.
func (c Config) Validate() error {
	c = c.WithDefaults()
	return conf.Validate(c.Settings())
}
