package main

import (
	"fmt"
	"io"
	"os"
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

func TestParseConfigSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/keys"
	if err := os.WriteFile(file, []byte("# ops keys\nops:ops-key-0123456789abcdef\nbatch:batch-key-0123456789abcdef:50:100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parseConfig([]string{"-auth.keys-file", file, "-ratelimit.per-key", "200,400", "-redis-url", "redis://127.0.0.1:6379/2"},
		env("ORDERFLOW_API_KEYS", "env-key-0123456789abcdef, ci:ci-key-0123456789abcdef", "ORDERFLOW_RATELIMIT_PER_IP", "20", "ORDERFLOW_INGEST_MAX_INFLIGHT_BODY_BYTES", "1000000"), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	in := cfg.Ingest
	var keys []string
	for _, k := range in.APIKeys {
		keys = append(keys, fmt.Sprintf("%s=%s/%v", k.Name, k.Key, k.Limit))
	}
	got := fmt.Sprint(keys, " ", in.PerKeyLimit, " ", in.PerIPLimit, " ", cfg.RedisURL, " ", in.MaxInflightBodyBytes)
	// PerIPLimit's burst is filled in later (ingest.New): "20" parses as 20,0.
	want := "[ops=ops-key-0123456789abcdef/0 batch=batch-key-0123456789abcdef/50,100 =env-key-0123456789abcdef/0 ci=ci-key-0123456789abcdef/0] 200,400 20,0 redis://127.0.0.1:6379/2 1000000"
	if got != want {
		t.Errorf("security flags:\n got %s\nwant %s", got, want)
	}
	// Defaults: authentication and limits off.
	cfg, _, err = parseConfig(nil, env(), io.Discard)
	if err != nil || len(cfg.Ingest.APIKeys) != 0 || cfg.Ingest.PerKeyLimit.On() || cfg.Ingest.PerIPLimit.On() || cfg.RedisURL != "" {
		t.Errorf("defaults: keys %d, per-key %v, per-ip %v, redis %q, err %v; want all off", len(cfg.Ingest.APIKeys), cfg.Ingest.PerKeyLimit, cfg.Ingest.PerIPLimit, cfg.RedisURL, err)
	}

	bad := func(args []string, getenv func(string) string, want string) {
		t.Helper()
		_, _, err := parseConfig(args, getenv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseConfig(%q): err = %v; want it to mention %q", args, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789") {
			t.Errorf("parseConfig(%q): the error %q shows a key", args, err)
		}
	}
	bad([]string{"-auth.keys-file", dir + "/missing"}, env(), "-auth.keys-file")
	empty := dir + "/empty"
	_ = os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	bad([]string{"-auth.keys-file", empty}, env(), "holds no key")
	bad(nil, env("ORDERFLOW_API_KEYS", "short"), "ORDERFLOW_API_KEYS")
	bad(nil, env("ORDERFLOW_API_KEYS", "a:dup-key-0123456789abcdef,b:dup-key-0123456789abcdef"), "configured twice")
	bad([]string{"-ratelimit.per-ip", "fast"}, env(), "-ratelimit.per-ip")
	bad(nil, env("ORDERFLOW_RATELIMIT_PER_KEY", "-3"), "ORDERFLOW_RATELIMIT_PER_KEY")
	bad([]string{"-redis-url", "http://nope"}, env(), "-ratelimit.redis-url")
}
