package client_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/orderflow/orderflow/client"
	"github.com/orderflow/orderflow/internal/apitest"
	"github.com/orderflow/orderflow/internal/enginetest"
)

// exampleURL is the public listener of a real orderflow server that
// TestMain starts for the package's examples.
var exampleURL string

// TestMain starts a server for the examples, runs everything, and fails
// the binary when an exchange broke api/openapi.yaml (every request the
// tests' clients send goes through apitest's checking transport).
func TestMain(m *testing.M) {
	tb := &mainTB{}
	exampleURL = enginetest.Start(tb).URL
	defer tb.cleanup()
	apitest.Main(m)
}

// mainTB is the part of testing.TB that enginetest.Start calls, for
// TestMain (which has no T): a failure panics, cleanups run at the end.
type mainTB struct {
	testing.TB // nil: only the methods below are used
	cleanups   []func()
}

func (*mainTB) Helper()                           {}
func (*mainTB) Name() string                      { return "client_examples" }
func (m *mainTB) Cleanup(f func())                { m.cleanups = append(m.cleanups, f) }
func (*mainTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (*mainTB) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (*mainTB) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (m *mainTB) cleanup() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
}

// newClient is a client of s whose every exchange is checked against the
// spec; tweak may change its config.
func newClient(t testing.TB, s *enginetest.Instance, tweak func(*client.Config)) *client.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	cfg := client.Config{BaseURL: s.URL, HTTPClient: &http.Client{Transport: apitest.Default().Transport(tr)},
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
