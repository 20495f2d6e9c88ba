package loadtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves goroutines behind: every
// worker, scheduler and probe of a run must have stopped when Run returns.
// fasthttp's own background goroutines are ignored: a HostClient's
// idle-connection cleaner and a Server's worker-pool cleaner exit on their
// next tick, not when their owner is closed; the default dialer's
// address-cache cleaner and the server's Date updater live as long as the
// process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
