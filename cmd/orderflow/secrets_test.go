package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/testcert"
)

// The Kafka SASL password and the API keys never appear in -h, in the log
// (at debug level, with the broker refusing the password so that
// authentication errors are logged), in /debug/pprof/cmdline or /metrics;
// the password has no flag.
func TestSecretsStayOutOfLogsHelpAndAdmin(t *testing.T) {
	const (
		password = "Kafka-pa55word-that-must-not-leak"
		apiKey   = "api-key-that-must-not-leak-0123456789"
	)
	secrets := []string{password, apiKey}
	ca := testcert.NewCA(t, "kafka")
	srv := ca.Issue(t, "broker", "127.0.0.1")
	broker := enginetest.NewBroker(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.Cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "orderflow", "the-right-password"))
	getenv := env("ORDERFLOW_KAFKA_SASL_PASSWORD", password, "ORDERFLOW_API_KEYS", "svc:"+apiKey,
		"DATABASE_URL", enginetest.NewDatabase(t), "KAFKA_BROKERS", broker.ListenAddrs()[0])
	args := []string{"-listen=127.0.0.1:0", "-admin-listen=127.0.0.1:0", "-log-level=debug",
		"-kafka.tls", "-kafka.tls-ca-file=" + ca.File, "-kafka.sasl-mechanism=SCRAM-SHA-256", "-kafka.sasl-username=orderflow"}

	var help bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, getenv, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(help.String(), "ORDERFLOW_KAFKA_SASL_PASSWORD") {
		t.Errorf("-h does not list ORDERFLOW_KAFKA_SASL_PASSWORD:\n%s", help.String())
	}
	var refused bytes.Buffer
	noFlag := "-" + publish.FlagSASLPassword
	if err := run(context.Background(), []string{noFlag + "=" + password}, getenv, &refused); err == nil {
		t.Errorf("%s was accepted as a flag", noFlag)
	}

	var logs enginetest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, &logs) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("the server did not stop")
		}
		for _, out := range []string{help.String(), refused.String(), logs.String()} {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("a secret appears in the output:\n%s", out)
				}
			}
		}
	}()

	admin := ""
	deadline := time.Now().Add(60 * time.Second)
	for admin == "" || !strings.Contains(logs.String(), "kafka authentication failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no start-up and authentication failure in the log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
		for _, line := range strings.Split(logs.String(), "\n") {
			var l struct{ Msg, Admin string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "orderflow started" {
				admin = l.Admin
			}
		}
	}
	for _, path := range []string{"/debug/pprof/cmdline", "/metrics"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		for _, s := range secrets {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("GET %s shows a secret", path)
			}
		}
	}
}
