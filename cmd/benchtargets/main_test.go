package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func noEnv(string) string { return "" }

func TestFlags(t *testing.T) {
	f := func(args []string, want string) {
		t.Helper()
		_, err := parseFlags(args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("parseFlags(%q): got %v; want an error containing %q", args, err, want)
		}
	}
	f(nil, "-target")
	f([]string{"-target", "fast"}, "-target")
	f([]string{"-target", "noop", "x"}, "unexpected")
	if _, err := parseFlags([]string{"-h"}, noEnv, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags(-h): %v; want flag.ErrHelp", err)
	}
	o, err := parseFlags([]string{"-target", "baseline", "-admin-listen", "off"}, noEnv, io.Discard)
	if err != nil || o.listen != "127.0.0.1:8081" || o.adminListen != "" {
		t.Fatalf("baseline defaults: %+v, %v; want listen 127.0.0.1:8081 and no admin", o, err)
	}
}

func TestNoopServesAndExposesMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-target", "noop", "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}, noEnv, &logs,
			func(pub, admin string) { addrs <- [2]string{pub, admin} })
	}()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("noop did not start in 10s")
	}
	resp, err := http.Post("http://"+a[0]+"/v1/orders", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %v %v; want 201", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + a[1] + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"process_cpu_seconds_total", "go_memstats_alloc_bytes_total", "go_gc_duration_seconds_sum"} {
		if !bytes.Contains(b, []byte(m)) {
			t.Fatalf("/metrics lacks %s", m)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

// TestBrokerRoundTrip starts the broker as its own program would, produces
// a record to the pre-created topic and reads it back, then stops it.
func TestBrokerRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-target", "broker", "-listen", "127.0.0.1:0", "-admin-listen", "off", "-kafka-topic", "t1", "-partitions", "2"},
			noEnv, &logs, func(pub, admin string) { addrs <- [2]string{pub, admin} })
	}()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not start in 10s")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(a[0]), kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "t1", Key: []byte("k"), Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got []string
	for len(got) == 0 && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "hello" {
		t.Fatalf("read back %q; want [hello]", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}
