package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/apitest"
	"github.com/orderflow/orderflow/internal/pgtest"
)

// exampleURL is the public listener of a real orderflow server that
// TestMain starts for the package's examples.
var exampleURL string

// TestMain starts a server for the examples, runs everything, and fails
// the binary when an exchange broke api/openapi.yaml (every request the
// tests' clients send goes through apitest's checking transport).
func TestMain(m *testing.M) {
	tb := &mainTB{}
	srv := startServer(tb, pgtest.New(tb), nil)
	exampleURL = srv.base
	defer tb.cleanup()
	apitest.Main(m)
}

// mainTB is the part of testing.TB that pgtest.New and startServer call,
// for TestMain (which has no T): a failure panics, cleanups run at the end.
type mainTB struct {
	testing.TB // nil: only the methods below are used
	cleanups   []func()
}

func (*mainTB) Helper()                           {}
func (*mainTB) Name() string                      { return "client_examples" }
func (m *mainTB) Cleanup(f func())                { m.cleanups = append(m.cleanups, f) }
func (*mainTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (*mainTB) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (m *mainTB) cleanup() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
}

// server is a real orderflow engine on loopback ports with its own
// in-process Kafka-protocol broker.
type server struct {
	e           *engine.Engine
	base, admin string
	dbURL       string
}

// startServer seeds the demo catalog into dbURL (migrating it) and starts
// an engine on it; tweak may change the config. It shuts down in Cleanup.
func startServer(t testing.TB, dbURL string, tweak func(*engine.Config)) *server {
	t.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "orders"), kfake.Ports(0))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(broker.Close)
	cfg := engine.DefaultConfig()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DatabaseURL = dbURL
	cfg.KafkaBrokers = broker.ListenAddrs()
	cfg.ShutdownTimeout = 20 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ORDERFLOW_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg.Publish.MetadataMinAge = 100 * time.Millisecond
	cfg.Publish.SweepInterval = 200 * time.Millisecond
	cfg.Publish.DeliveryTimeout = time.Second
	cfg.Publish.SweepGrace = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := engine.SeedDemoCatalog(ctx, cfg); err != nil {
		t.Fatalf("seed demo catalog: %v", err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatalf("engine.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
	})
	return &server{e: e, base: "http://" + e.Addr(), admin: "http://" + e.AdminAddr(), dbURL: dbURL}
}

// newClient is a client of s whose every exchange is checked against the
// spec; tweak may change its config.
func newClient(t testing.TB, s *server, tweak func(*client.Config)) *client.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	cfg := client.Config{BaseURL: s.base, HTTPClient: &http.Client{Transport: apitest.Default().Transport(tr)},
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
