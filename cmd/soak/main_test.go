package main

import (
	"errors"
	"flag"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	c, strict, err := parseFlags([]string{"-autovacuum", "off", "-duration", "2m", "-rate", "500", "-warmup", "0",
		"-server-args", "-pipeline.writers 4  -log-level warn", "-strict", "-pg", "max_wal_size=8GB", "-pg", "shared_buffers=1GB"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Autovacuum || c.Duration != 2*time.Minute || c.Rate != 500 || c.Warmup >= 0 || !strict ||
		!slices.Equal(c.ServerArgs, []string{"-pipeline.writers", "4", "-log-level", "warn"}) ||
		!maps.Equal(c.PostgresSettings, map[string]string{"max_wal_size": "8GB", "shared_buffers": "1GB"}) {
		t.Fatalf("parseFlags: %+v strict %v", c, strict)
	}
	c, strict, err = parseFlags(nil, io.Discard)
	if err != nil || !*c.Autovacuum || c.Duration != 30*time.Minute || c.Share != 0.7 || c.Warmup != 10*time.Second || strict ||
		c.Orderflow != "bin/orderflow" || c.Broker != "bin/benchtargets" {
		t.Fatalf("defaults: %+v strict %v, %v", c, strict, err)
	}
	for _, bad := range [][]string{{"-autovacuum", "maybe"}, {"extra"}, {"-pg", "fsync"}} {
		if _, _, err := parseFlags(bad, io.Discard); err == nil || !strings.Contains(err.Error(), bad[len(bad)-1]) {
			t.Fatalf("parseFlags(%q): %v; want an error naming %q", bad, err, bad[len(bad)-1])
		}
	}
	if _, _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}
