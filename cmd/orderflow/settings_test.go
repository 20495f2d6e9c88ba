package main

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/conf"
)

// contractEnv are the environment variables fixed by the public contract;
// every other setting's variable is conf.EnvName of its flag.
var contractEnv = map[string]string{
	"store.database-url": "DATABASE_URL",
	"kafka.brokers":      "KAFKA_BROKERS",
	"kafka.topic":        "KAFKA_TOPIC",
	"auth.api-keys":      apiKeysEnv,
}

// processWide are the only flags without a group.
var processWide = []string{"listen", "admin-listen", "tls-cert-file", "tls-key-file", "shutdown-timeout", "drain-delay", "log-level"}

var flagName = regexp.MustCompile(`^([a-z]+(-[a-z]+)*\.)?[a-z0-9]+(-[a-z0-9]+)*$`)

func testFlags(t *testing.T) (*conf.Flags, *options) {
	t.Helper()
	o := new(options)
	f, _, _, _ := newFlags(o, io.Discard)
	return f, o
}

// TestEverySetting walks every setting: its name follows the scheme, it has
// help text, a default (or help saying what empty means), a section in -h,
// and an environment variable that sets it, which a flag overrides.
func TestEverySetting(t *testing.T) {
	f, _ := testFlags(t)
	if err := f.CheckSections(); err != nil {
		t.Error(err)
	}
	seenEnv := map[string]string{}
	for _, s := range f.Settings() {
		t.Run(s.Name, func(t *testing.T) {
			if !flagName.MatchString(s.Name) || (s.Section() == "" && !slices.Contains(processWide, s.Name)) {
				t.Errorf("flag -%s: want group.name (lower case, dashes between words)", s.Name)
			}
			if s.Usage == "" {
				t.Errorf("flag -%s has no help text", s.Name)
			}
			def := f.Default(s.Name)
			if def == "" && !strings.Contains(s.Usage, "empty") {
				t.Errorf("flag -%s: empty default and its help %q does not say what empty means", s.Name, s.Usage)
			}
			env := conf.EnvName(s.Name)
			if e, ok := contractEnv[s.Name]; ok {
				env = e
			}
			if s.EnvVar() != env {
				t.Errorf("flag -%s: env %s; want %s", s.Name, s.EnvVar(), env)
			}
			if other, dup := seenEnv[env]; dup {
				t.Errorf("flags -%s and -%s share %s", s.Name, other, env)
			}
			seenEnv[env] = s.Name
			if s.EnvOnly {
				if f.FlagSet.Lookup(s.Name) != nil {
					t.Errorf("environment-only %s has a flag", s.Name)
				}
				return
			}
			probe := probeValue(t, s.Name, def)
			// The variable sets the field.
			f2, _ := testFlags(t)
			if _, err := f2.Parse(nil, env1(env, probe)); err != nil {
				t.Fatalf("%s=%q: %v", env, probe, err)
			}
			if got := f2.FlagSet.Lookup(s.Name).Value.String(); got == def {
				t.Errorf("%s=%q left -%s at its default %q", env, probe, s.Name, def)
			}
			// The flag wins.
			f3, _ := testFlags(t)
			if _, err := f3.Parse([]string{"-" + s.Name + "=" + def}, env1(env, probe)); err != nil {
				t.Fatalf("-%s=%q with %s=%q: %v", s.Name, def, env, probe, err)
			}
			if got := f3.FlagSet.Lookup(s.Name).Value.String(); got != def {
				t.Errorf("-%s=%q with %s=%q: got %q; the flag must win", s.Name, def, env, probe, got)
			}
		})
	}
}

func env1(k, v string) func(string) string {
	return func(name string) string {
		if name == k {
			return v
		}
		return ""
	}
}

// probeValue returns a valid value of flag name other than its default.
func probeValue(t *testing.T, name, def string) string {
	t.Helper()
	for _, v := range []string{"7", "7s", "none", "debug", "5,10", "probe.example:1", "true", "2097152", "jsoniter"} {
		f, _ := testFlags(t)
		fl := f.FlagSet.Lookup(name)
		if fl.Value.Set(v) == nil && fl.Value.String() != def {
			return fl.Value.String()
		}
	}
	t.Fatalf("-%s: no probe value differs from the default %q", name, def)
	return ""
}

// flagRef finds the flags an error message names: -name after a space, a
// parenthesis or the start, never a negative number.
var flagRef = regexp.MustCompile(`(?:^|[\s(])-([a-z][a-z0-9.-]*[a-z0-9])`)

// checkNames reports the flags msg names that are not current flags.
func checkNames(t *testing.T, f *conf.Flags, msg string) []string {
	t.Helper()
	var names []string
	for _, m := range flagRef.FindAllStringSubmatch(msg, -1) {
		names = append(names, m[1])
		if f.FlagSet.Lookup(m[1]) == nil {
			t.Errorf("error %q names -%s, which is no flag", msg, m[1])
		} else if cur, old := f.Deprecated(m[1]); old {
			t.Errorf("error %q names the deprecated -%s; want -%s", msg, m[1], cur)
		}
	}
	return names
}

// TestValidationErrorsNameRealFlags puts every setting out of its bounds
// behind the flag layer's back (as a Go caller of engine.Config could) and
// checks that engine.Config.Validate rejects it naming that flag; then it
// triggers every rule across settings. Every flag an error names must exist.
func TestValidationErrorsNameRealFlags(t *testing.T) {
	f, _ := testFlags(t)
	for _, s := range f.Settings() {
		if s.EnvOnly {
			continue
		}
		rejected := false
		for _, bad := range []string{"-1", "-1s", "-1ns", "bogus", "99999999999", "2m"} {
			_, o := testFlags(t)
			cfg := o.cfg
			for _, cs := range cfg.Settings() {
				if cs.Name == s.Name {
					_ = cs.Value().Set(bad) // stores the value, then reports the bound
				}
			}
			err := cfg.Validate()
			if err == nil {
				continue
			}
			if slices.Contains(checkNames(t, f, err.Error()), s.Name) {
				rejected = true
			}
		}
		if !rejected && hasBounds(t, s.Name) {
			t.Errorf("-%s has bounds its flag checks, but Validate accepts every value out of them", s.Name)
		}
	}

	cross := []struct {
		name string
		mod  func(*engine.Config)
		want string
	}{
		{"writers above connections", func(c *engine.Config) { c.Pipeline.Writers = 4; c.Store.MaxConns = 4 }, "-store.max-conns"},
		{"status writers above connections", func(c *engine.Config) { c.StatusPipeline.Writers = 4; c.Store.MaxConns = 4 }, "-status-pipeline.writers"},
		{"batch rows above queue", func(c *engine.Config) { c.Pipeline.MaxBatchRows = 30000 }, "-pipeline.queue-rows"},
		{"status batch rows above queue", func(c *engine.Config) { c.StatusPipeline.QueueRows = 10 }, "-status-pipeline.queue-rows"},
		{"body above batch body", func(c *engine.Config) { c.Ingest.MaxBodyBytes = 32 << 20 }, "-ingest.max-batch-body-bytes"},
		{"backoff above tx timeout", func(c *engine.Config) { c.Store.RetryBackoff = time.Minute }, "-store.tx-timeout"},
		{"grace below delivery", func(c *engine.Config) { c.Publish.DeliveryTimeout = time.Hour }, "-kafka.sweep-grace"},
		{"redis url", func(c *engine.Config) { c.RedisURL = "http://x" }, "-ratelimit.redis-url"},
		{"per-key limit", func(c *engine.Config) { c.Ingest.PerKeyLimit.Rate = -1 }, "-ratelimit.per-key"},
		{"status pipeline negative", func(c *engine.Config) { c.StatusPipeline.Linger = -1 }, "-status-pipeline.linger"},
	}
	for _, tc := range cross {
		cfg := engine.DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v; want it to name %s", tc.name, err, tc.want)
			continue
		}
		checkNames(t, f, err.Error())
	}

	// Errors of the command line itself.
	for _, args := range [][]string{
		{"-log-level", "loud"}, {"-auth.keys-file", "/nonexistent/keys"}, {"-store.max-conns", "0"},
		{"-kafka.compression", "zstd"}, {"-ingest.max-inflight", "x"}, {"-pipeline.writers", "8"},
	} {
		_, _, err := parseConfig(args, env(), io.Discard)
		if err == nil {
			t.Errorf("parseConfig(%q): no error", args)
			continue
		}
		if names := checkNames(t, f, err.Error()); len(names) == 0 {
			t.Errorf("parseConfig(%q): error %q names no flag", args, err)
		}
	}
}

// hasBounds reports whether the flag layer rejects some value of name that
// it can parse (so Validate must reject it too).
func hasBounds(t *testing.T, name string) bool {
	for _, v := range []string{"-1", "-1s", "-1ns", "99999999999", "2m", "bogus"} {
		f, _ := testFlags(t)
		err := f.FlagSet.Lookup(name).Value.Set(v)
		if err != nil && f.FlagSet.Lookup(name).Value.String() == v {
			return true
		}
	}
	return false
}

// TestDeprecatedSpellings checks each old flag and variable still sets the
// setting and is reported.
func TestDeprecatedSpellings(t *testing.T) {
	f := func(args []string, getenv func(string) string, check func(engine.Config) bool, warn string) {
		t.Helper()
		o, err := parseOptions(args, getenv, io.Discard)
		if err != nil {
			t.Fatalf("parseOptions(%q): %v", args, err)
		}
		if !check(o.cfg) {
			t.Errorf("parseOptions(%q): the old spelling did not set the setting: %+v", args, o.cfg)
		}
		if !slices.ContainsFunc(o.deprecated, func(w string) bool { return strings.Contains(w, warn) }) {
			t.Errorf("parseOptions(%q): warnings %q; want one naming %s", args, o.deprecated, warn)
		}
	}
	f([]string{"-database-url", "postgres://db/x"}, env(), func(c engine.Config) bool { return c.DatabaseURL == "postgres://db/x" }, "-store.database-url")
	f([]string{"-kafka-brokers", "k1:9092,k2:9092"}, env(), func(c engine.Config) bool { return strings.Join(c.KafkaBrokers, " ") == "k1:9092 k2:9092" }, "-kafka.brokers")
	f([]string{"-kafka-topic", "t"}, env(), func(c engine.Config) bool { return c.KafkaTopic == "t" }, "-kafka.topic")
	f([]string{"-embedded-kafka-addr", "127.0.0.1:0"}, env(), func(c engine.Config) bool { return c.EmbeddedKafkaAddr == "127.0.0.1:0" }, "-kafka.embedded-addr")
	f([]string{"-embedded-kafka-partitions", "2"}, env(), func(c engine.Config) bool { return c.EmbeddedKafkaPartitions == 2 }, "-kafka.embedded-partitions")
	f([]string{"-redis-url", "redis://127.0.0.1:6379/1"}, env(), func(c engine.Config) bool { return c.RedisURL == "redis://127.0.0.1:6379/1" }, "-ratelimit.redis-url")
	f([]string{"-redis-timeout", "70ms"}, env(), func(c engine.Config) bool { return c.Ingest.RedisTimeout == 70*time.Millisecond }, "-ratelimit.redis-timeout")
	f(nil, env("ORDERFLOW_EMBEDDED_KAFKA_ADDR", "127.0.0.1:1"), func(c engine.Config) bool { return c.EmbeddedKafkaAddr == "127.0.0.1:1" }, "ORDERFLOW_KAFKA_EMBEDDED_ADDR")
	f(nil, env("ORDERFLOW_REDIS_TIMEOUT", "80ms"), func(c engine.Config) bool { return c.Ingest.RedisTimeout == 80*time.Millisecond }, "ORDERFLOW_RATELIMIT_REDIS_TIMEOUT")

	// The new variable wins over the old one; no warning then.
	o, err := parseOptions(nil, env("ORDERFLOW_KAFKA_EMBEDDED_ADDR", "127.0.0.1:2", "ORDERFLOW_EMBEDDED_KAFKA_ADDR", "127.0.0.1:1"), io.Discard)
	if err != nil || o.cfg.EmbeddedKafkaAddr != "127.0.0.1:2" || len(o.deprecated) != 0 {
		t.Errorf("new and old variable: addr %q, warnings %q, err %v; want 127.0.0.1:2, none, nil", o.cfg.EmbeddedKafkaAddr, o.deprecated, err)
	}
	// -h lists no deprecated name.
	var out strings.Builder
	if _, _, err := parseConfig([]string{"-h"}, env(), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, old := range []string{"-database-url", "-kafka-brokers", "-redis-url", "-embedded-kafka-addr"} {
		if strings.Contains(out.String(), old+" ") {
			t.Errorf("-h lists the deprecated %s", old)
		}
	}
}

// TestDocsNameRealFlags scans the server's source and README for dotted
// flag names of a known group and checks each one exists.
func TestDocsNameRealFlags(t *testing.T) {
	f, _ := testFlags(t)
	var groups []string
	for _, s := range sections {
		if s.Name != "" {
			groups = append(groups, regexp.QuoteMeta(s.Name))
		}
	}
	ref := regexp.MustCompile(`(?:^|[^a-zA-Z0-9_.-])-((?:` + strings.Join(groups, "|") + `)\.[a-z0-9]+(?:-[a-z0-9]+)*)`)
	var files []string
	for _, root := range []string{"../../engine", "."} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	files = append(files, "../../README.md")
	var old []string
	for _, s := range f.Settings() {
		for _, o := range s.Deprecated {
			old = append(old, regexp.QuoteMeta(o))
		}
	}
	oldRef := regexp.MustCompile(`(?:^|[^a-zA-Z0-9_.-])-(` + strings.Join(old, "|") + `)(?:[^a-zA-Z0-9_.-]|$)`)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			if f.FlagSet.Lookup(m[1]) == nil {
				t.Errorf("%s names -%s, which is no flag", p, m[1])
			}
		}
		if strings.HasSuffix(p, "_test.go") {
			continue // tests use the old spellings on purpose
		}
		text := string(b)
		if i, j := strings.Index(text, readmeBegin), strings.Index(text, readmeEnd); i >= 0 && j > i {
			text = text[:i] + text[j:] // the generated deprecation table
		}
		for _, line := range strings.Split(text, "\n") {
			if m := oldRef.FindStringSubmatch(line); m != nil && !strings.Contains(line, "deprecated") {
				t.Errorf("%s names the deprecated -%s: %s", p, m[1], strings.TrimSpace(line))
			}
		}
	}
}

// Markers of README's generated tables.
const (
	readmeBegin = "<!-- flags: generated by go test ./cmd/orderflow -run TestREADMEFlags -update -->\n"
	readmeEnd   = "<!-- flags: end -->\n"
)

var update = flag.Bool("update", false, "rewrite README's flag tables from the settings")

// TestREADMEFlags checks that README's configuration tables are exactly
// what the settings generate (go test ./cmd/orderflow -run TestREADMEFlags
// -update rewrites them).
func TestREADMEFlags(t *testing.T) {
	const begin, end = readmeBegin, readmeEnd
	f, _ := testFlags(t)
	var b strings.Builder
	b.WriteString(begin)
	for _, sec := range sections {
		first := true
		for _, s := range f.Settings() {
			if s.Section() != sec.Name {
				continue
			}
			if first {
				b.WriteString("\n**" + sec.Title + "**\n\n| flag | env | default | meaning |\n|---|---|---|---|\n")
				first = false
			}
			name, def := "`-"+s.Name+"`", "`"+f.Default(s.Name)+"`"
			if s.EnvOnly {
				name = "(environment only)"
			}
			if f.Default(s.Name) == "" {
				def = "empty"
			}
			b.WriteString("| " + name + " | `" + s.EnvVar() + "` | " + def + " | " + strings.ReplaceAll(s.Usage, "|", "\\|") + " |\n")
		}
	}
	b.WriteString("\n**Deprecated spellings** (the environment variables named by the contract stay as they are)\n\n| deprecated | use |\n|---|---|\n")
	for _, s := range f.Settings() {
		for _, o := range s.Deprecated {
			old, cur := "`-"+o+"`", "`-"+s.Name+"`"
			if s.Env == "" {
				old += ", `" + conf.EnvName(o) + "`"
				cur += ", `" + s.EnvVar() + "`"
			}
			b.WriteString("| " + old + " | " + cur + " |\n")
		}
	}
	b.WriteString("\n" + end)
	const path = "../../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q … %q", begin, end)
	}
	got := readme[i : j+len(end)]
	if got == b.String() {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:i]+b.String()+readme[j+len(end):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's flag tables differ from the settings; run go test ./cmd/orderflow -run TestREADMEFlags -update")
}
