package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/ingest"
	"github.com/orderflow/orderflow/engine/pipeline"
	"github.com/orderflow/orderflow/engine/tracing"
	"github.com/orderflow/orderflow/internal/conf"
)

// apiKeysEnv holds API keys as comma-separated NAME:KEY[:RATE[:BURST]] (or
// KEY) entries. It has no flag: a key on the command line shows in ps.
const apiKeysEnv = "ORDERFLOW_API_KEYS"

// loadAPIKeys reads the keys file (if any) and the environment entries (if
// any). Errors name the file or variable and the entry, never a key.
func loadAPIKeys(file, env string) ([]ingest.APIKey, error) {
	var keys []ingest.APIKey
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", flagKeysFile, err)
		}
		defer f.Close()
		k, err := ingest.ParseAPIKeys(f, "-"+flagKeysFile+" "+file)
		if err != nil {
			return nil, err
		}
		if len(k) == 0 {
			return nil, fmt.Errorf("-"+flagKeysFile+" %s holds no key: remove the flag to run without authentication", file)
		}
		keys = append(keys, k...)
	}
	if env != "" {
		k, err := ingest.ParseAPIKeys(strings.NewReader(env), apiKeysEnv)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// sections are the headings of -h, in order: one per flag group.
var sections = []conf.Section{
	{Name: "", Title: "General"},
	{Name: "store", Title: "PostgreSQL (-store.*)"},
	{Name: "kafka", Title: "Kafka and the outbox publisher (-kafka.*)"},
	{Name: "ingest", Title: "HTTP front end (-ingest.*)"},
	{Name: "auth", Title: "Authentication (-auth.*)"},
	{Name: "ratelimit", Title: "Rate limits (-ratelimit.*)"},
	{Name: pipeline.Prefix, Title: "Order pipeline: group commit of new orders (-pipeline.*)"},
	{Name: engine.StatusPrefix, Title: "Status-change pipeline: group commit of status changes (-status-pipeline.*)"},
	{Name: "catalog", Title: "Product catalog (-catalog.*)"},
	{Name: "pprof", Title: "Profiling (-pprof.*)"},
}

// Flag names of the settings cmd/orderflow reads itself.
const (
	flagLogLevel = "log-level"
	flagKeysFile = "auth.keys-file"
)

// options is what the command line and environment select.
type options struct {
	cfg   engine.Config
	level slog.Level
	// deprecated holds one warning per deprecated flag or variable used,
	// logged once the logger exists.
	deprecated []string
	// keysFile and apiKeys are where the API keys came from (-auth.keys-file,
	// ORDERFLOW_API_KEYS), for reloads.
	keysFile, apiKeys string
}

// newFlags returns the flag set of every setting bound to o's fields, and
// the fields only cmd/orderflow reads (keys file, API keys, log level).
func newFlags(o *options, out io.Writer) (f *conf.Flags, keysFile, apiKeys, level *string) {
	o.cfg = engine.DefaultConfig()
	keysFile, apiKeys, level = new(string), new(string), new(string)
	*level = "info"
	f = conf.NewFlags("orderflow", out, sections)
	f.Add(o.cfg.Settings()...)
	f.Add(
		conf.String(level, flagLogLevel, "log level: debug, info, warn, error"),
		conf.String(keysFile, flagKeysFile, "file of API keys, one NAME:KEY[:RATE[:BURST]] (or KEY) per line; with "+apiKeysEnv+" the keys add up; empty and no "+apiKeysEnv+": authentication off"),
		conf.String(apiKeys, "auth.api-keys", "API keys as comma-separated NAME:KEY[:RATE[:BURST]] (or KEY) entries, environment only (a command line shows in ps); they add up with -"+flagKeysFile+"; empty and no keys file: authentication off").WithEnv(apiKeysEnv).Secret(),
	)
	f.FlagSet.Usage = func() {
		fmt.Fprintf(out, "Usage: orderflow [seed-demo-catalog | outbox dead | outbox requeue (--all | ID/VERSION...)] [flags]\n\nEvery flag can also be set by the environment variable in brackets; the flag wins.\n")
		f.Usage(out)
	}
	return f, keysFile, apiKeys, level
}

// parseOptions builds the engine configuration from args and environment.
// Flags win over environment variables; errors name the flag.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (options, error) {
	var o options
	f, keysFile, apiKeys, level := newFlags(&o, out)
	var err error
	if o.deprecated, err = f.Parse(args, getenv); err != nil {
		return o, err
	}
	if f.FlagSet.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", f.FlagSet.Arg(0))
	}
	o.keysFile, o.apiKeys = *keysFile, *apiKeys
	if o.cfg.Ingest.APIKeys, err = loadAPIKeys(*keysFile, *apiKeys); err != nil {
		return o, err
	}
	if err := o.level.UnmarshalText([]byte(*level)); err != nil {
		return o, fmt.Errorf("-%s: %w", flagLogLevel, err)
	}
	// Tracing has no flags: the standard OTEL_* variables configure it.
	if o.cfg.Tracing, err = tracing.FromEnv(getenv); err != nil {
		return o, err
	}
	o.cfg.Tracing.ServiceVersion = version
	return o, o.cfg.Validate()
}

// parseConfig is parseOptions without the deprecation warnings.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (engine.Config, slog.Level, error) {
	o, err := parseOptions(args, getenv, out)
	return o.cfg, o.level, err
}
