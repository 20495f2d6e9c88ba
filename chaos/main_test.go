package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	longFlag = flag.Bool("chaos.long", false, "run the long forms of the chaos tests (also CHAOS_LONG=1)")
	// resultsFile, when set, receives one markdown table row per crash or
	// fault run (scripts/chaos.sh points it at chaos/RESULTS.md).
	resultsFile = flag.String("chaos.results", os.Getenv("CHAOS_RESULTS"), "append a summary row of each run to this markdown file")
)

// long reports whether the long forms run.
func long() bool { return *longFlag || os.Getenv("CHAOS_LONG") == "1" }

// pick returns short in the short form and long with -chaos.long.
func pick[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// extraServerFlags are appended to every orderflow command line the crash
// test starts (CHAOS_SERVER_FLAGS, space-separated): how the test was shown
// to fail, e.g. CHAOS_SERVER_FLAGS="-kafka.sweep-interval 1h".
func extraServerFlags() []string { return strings.Fields(os.Getenv("CHAOS_SERVER_FLAGS")) }

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// serverBinary builds ./cmd/orderflow once per test run and returns its
// path. CHAOS_RACE=1 builds it with -race.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "orderflow-chaos-bin-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "orderflow")
		args := []string{"build", "-o", buildPath}
		if os.Getenv("CHAOS_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "github.com/orderflow/orderflow/cmd/orderflow")
		//lint:ignore SA1019 the test binary runs where it was built, so the GOROOT it was built with holds the go command running this test
		cmd := exec.Command(runtime.GOROOT()+"/bin/go", args...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "chaos: built %s in %v\n", buildPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("build the server: %v", buildErr)
	}
	return buildPath
}
