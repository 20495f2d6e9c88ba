package publish

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake): one
// node, everything in memory, lost on Close. It is for development and tests
// only: no replication, no durability. The engine runs one when no brokers
// are configured. Safe for concurrent use.
type Embedded struct {
	c     *kfake.Cluster
	addrs []string
	once  sync.Once
}

// StartEmbedded starts an embedded broker listening on addr (host:port; port
// 0 picks a free one) with topic pre-created with partitions partitions (0
// or less: 10). The broker advertises the address it listens on, so clients
// must be able to reach that host (prefer 127.0.0.1 to 0.0.0.0). log nil
// means slog.Default(). Close it when done.
func StartEmbedded(addr, topic string, partitions int32, log *slog.Logger) (*Embedded, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: listen on %s (change -kafka.embedded-addr): %w", addr, err)
	}
	used := false
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topic),
		kfake.WithLogger(kfakeLogger{log}),
		// kfake listens on 127.0.0.1:<port> itself; hand it our listener
		// so that addr's host is honoured and bind errors surface above.
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			if used {
				return nil, fmt.Errorf("embedded kafka: one listener only")
			}
			used = true
			return ln, nil
		}),
	)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	e := &Embedded{c: c, addrs: []string{ln.Addr().String()}}
	log.Warn("embedded Kafka broker running: in memory, for development only; set -kafka.brokers for a real cluster",
		"addr", e.addrs[0], "topic", topic, "partitions", partitions)
	return e, nil
}

// Addrs returns the broker's host:port, to pass as Config.Brokers. The
// caller may keep the slice.
func (e *Embedded) Addrs() []string { return append([]string(nil), e.addrs...) }

// Cluster returns the underlying kfake cluster, for tests' fault injection
// (Cluster.Fault, ControlKey). Production code must not use it.
func (e *Embedded) Cluster() *kfake.Cluster { return e.c }

// Close stops the broker and releases its port; records it held are lost.
// Calling it again does nothing.
func (e *Embedded) Close() { e.once.Do(e.c.Close) }

// kfakeLogger passes kfake's warnings and errors to slog.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		return // info and debug log every request
	}
	k.l.Log(context.Background(), lvl, "embedded kafka: "+fmt.Sprintf(format, args...))
}
