package soak

import (
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Orderflow: "o", Broker: "b"}.WithDefaults()
	if c.Duration != 30*time.Minute || c.Share != 0.7 || c.Compare != 5*time.Minute || c.Interval != time.Minute ||
		!*c.Autovacuum || c.Warmup != 10*time.Second || c.Validate() != nil {
		t.Fatalf("defaults: %+v", c)
	}
	// A short soak compares quarters of its duration, in whole intervals.
	c = Config{Orderflow: "o", Broker: "b", Duration: time.Minute, Interval: 15 * time.Second, Warmup: -1}.WithDefaults()
	if c.Compare != 15*time.Second || c.Warmup != 0 || c.Validate() != nil {
		t.Fatalf("short: %+v", c)
	}
	for _, bad := range []Config{
		{Broker: "b"},
		{Orderflow: "o", Broker: "b", Duration: time.Second, Interval: time.Minute},
		{Orderflow: "o", Broker: "b", Share: 3},
		{Orderflow: "o", Broker: "b", Interval: time.Minute, Compare: 90 * time.Second, Duration: time.Hour},
		{Orderflow: "o", Broker: "b", PostgresSettings: map[string]string{"autovacuum": "off"}},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Fatalf("Validate(%+v): want an error", bad)
		}
	}
}
