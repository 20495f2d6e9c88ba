package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, _, err := parseConfig(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || cfg.AdminListen != "127.0.0.1:6060" || cfg.KafkaTopic != "orders" ||
		cfg.DatabaseURL != "postgres://127.0.0.1:5432/orderflow?sslmode=disable" || len(cfg.KafkaBrokers) != 0 ||
		cfg.EmbeddedKafkaAddr != "127.0.0.1:9092" || cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("defaults differ from the contract: %+v", cfg)
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	f := func(args []string, getenv func(string) string, check func(t *testing.T, got string)) {
		t.Helper()
		cfg, _, err := parseConfig(args, getenv, io.Discard)
		if err != nil {
			t.Fatalf("parseConfig(%q): %v", args, err)
		}
		check(t, strings.Join([]string{cfg.Listen, cfg.DatabaseURL, strings.Join(cfg.KafkaBrokers, ","), cfg.KafkaTopic, cfg.ShutdownTimeout.String()}, " "))
	}
	want := func(w string) func(*testing.T, string) {
		return func(t *testing.T, got string) {
			t.Helper()
			if got != w {
				t.Errorf("got %q; want %q", got, w)
			}
		}
	}
	f(nil, env("ORDERFLOW_LISTEN", ":9000", "DATABASE_URL", "postgres://db/x", "KAFKA_BROKERS", "k1:9092, k2:9092", "KAFKA_TOPIC", "t", "ORDERFLOW_SHUTDOWN_TIMEOUT", "5s"),
		want(":9000 postgres://db/x k1:9092,k2:9092 t 5s"))
	// Flags win over the environment.
	f([]string{"-listen", ":7000", "-kafka-topic", "flagged"}, env("ORDERFLOW_LISTEN", ":9000", "KAFKA_TOPIC", "t"),
		want(":7000 postgres://127.0.0.1:5432/orderflow?sslmode=disable  flagged 30s"))
	cfg, _, err := parseConfig(nil, env("ORDERFLOW_PIPELINE_BATCH_MAX_ROWS", "77", "ORDERFLOW_STORE_MAX_CONNS", "9"), io.Discard)
	if err != nil || cfg.Pipeline.MaxBatchRows != 77 || cfg.Store.MaxConns != 9 {
		t.Errorf("dotted flags from env: rows=%d conns=%d err=%v", cfg.Pipeline.MaxBatchRows, cfg.Store.MaxConns, err)
	}
}

func TestParseConfigErrorsNameTheFlag(t *testing.T) {
	f := func(args []string, getenv func(string) string, want string) {
		t.Helper()
		_, _, err := parseConfig(args, getenv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseConfig(%q): err = %v; want it to mention %q", args, err, want)
		}
	}
	f([]string{"-pipeline.writers", "-1"}, env(), "-pipeline.writers")
	f([]string{"-shutdown-timeout", "-1s"}, env(), "-shutdown-timeout")
	f(nil, env("ORDERFLOW_SHUTDOWN_TIMEOUT", "soon"), "ORDERFLOW_SHUTDOWN_TIMEOUT")
	f([]string{"-store.max-conns", "0"}, env(), "-store.max-conns")
	f([]string{"-pipeline.writers", "8", "-store.max-conns", "4"}, env(), "-pipeline.writers")
	f([]string{"-log-level", "loud"}, env(), "-log-level")
	f([]string{"stray"}, env(), "stray")
}

func TestUsageListsEnvVariables(t *testing.T) {
	var out strings.Builder
	_, _, err := parseConfig([]string{"-h"}, env(), &out)
	if err == nil {
		t.Fatal("-h: want flag.ErrHelp")
	}
	for _, w := range []string{"-listen", "[ORDERFLOW_LISTEN]", "[DATABASE_URL]", "[KAFKA_BROKERS]", "-pipeline.batch-max-rows", "[ORDERFLOW_PIPELINE_BATCH_MAX_ROWS]"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage lacks %q", w)
		}
	}
}
