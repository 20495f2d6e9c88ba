package engine_test

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/publish"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
	"github.com/orderflow/orderflow/internal/testcert"
)

// kafkaUser and kafkaPassword are the SASL credentials of the test brokers
// (one superuser per mechanism).
const (
	kafkaUser     = "orderflow-svc"
	kafkaPassword = "s3cret-kafka-Pa55word"
)

// tlsBroker starts an in-process broker that speaks TLS only, with a
// certificate for 127.0.0.1 signed by ca; with clientAuth it also requires a
// client certificate signed by ca (mutual TLS). opts are added (SASL).
func tlsBroker(t *testing.T, ca *testcert.CA, clientAuth bool, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	srv := ca.Issue(t, "broker", "127.0.0.1", "localhost")
	tc := &tls.Config{Certificates: []tls.Certificate{srv.Cert}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = ca.Pool
	}
	return enginetest.NewBroker(t, append([]kfake.Opt{kfake.TLS(tc)}, opts...)...)
}

// saslBrokerOpts turns on SASL with kafkaUser/kafkaPassword as a superuser
// for every mechanism orderflow supports.
func saslBrokerOpts() []kfake.Opt {
	return []kfake.Opt{kfake.EnableSASL(),
		kfake.Superuser(publish.SASLPlain, kafkaUser, kafkaPassword),
		kfake.Superuser(publish.SASLScramSHA256, kafkaUser, kafkaPassword),
		kfake.Superuser(publish.SASLScramSHA512, kafkaUser, kafkaPassword)}
}

// consumerOpts are a consumer's options for a broker that requires TLS
// (trusting ca, with the client certificate pair when given) and, with a
// mechanism, SASL as kafkaUser.
func consumerOpts(ca *testcert.CA, pair *testcert.Pair, mechanism string) []kgo.Opt {
	tc := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	if pair != nil {
		tc.Certificates = []tls.Certificate{pair.Cert}
	}
	opts := []kgo.Opt{kgo.DialTLSConfig(tc)}
	switch mechanism {
	case publish.SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: kafkaUser, Pass: kafkaPassword}.AsMechanism()))
	case publish.SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: kafkaUser, Pass: kafkaPassword}.AsSha256Mechanism()))
	case publish.SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: kafkaUser, Pass: kafkaPassword}.AsSha512Mechanism()))
	}
	return opts
}

// postOrders posts n orders prefix00…, each of which must be answered 201.
func postOrders(t *testing.T, url, prefix string, n int) {
	t.Helper()
	for i := range n {
		r := do(t, http.MethodPost, url+"/v1/orders", "application/json", []byte(orderJSON(fmt.Sprintf("%s%02d", prefix, i))))
		if r.code != http.StatusCreated {
			t.Fatalf("POST %s%02d: %s; want 201", prefix, i, r)
		}
	}
}

// checkPublished fails the test unless every order prefix00…(n-1) has its
// order.created event among recs.
func checkPublished(t *testing.T, recs []*kgo.Record, prefix string, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range recs {
		seen[enginetest.Header(r, "ce_id")] = true
	}
	for i := range n {
		if id := fmt.Sprintf("%s%02d/1", prefix, i); !seen[id] {
			t.Errorf("%s never published (%d records read)", id, len(recs))
		}
	}
}

// Events flow to a broker that requires TLS and SASL, for each mechanism;
// the password comes from the configuration (ORDERFLOW_KAFKA_SASL_PASSWORD)
// for some and from -kafka.sasl-password-file for the others.
func TestKafkaTLSAndSASLMechanisms(t *testing.T) {
	ca := testcert.NewCA(t, "kafka")
	broker := tlsBroker(t, ca, false, saslBrokerOpts()...)
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte(kafkaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, mech := range []string{publish.SASLPlain, publish.SASLScramSHA256, publish.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			sec := publish.Security{TLS: true, TLSCAFile: ca.File, TLSServerName: "localhost",
				SASLMechanism: mech, SASLUsername: kafkaUser}
			if i%2 == 0 {
				sec.SASLPassword = kafkaPassword
			} else {
				sec.SASLPasswordFile = pwFile
			}
			in := enginetest.Start(t, enginetest.WithBroker(broker),
				enginetest.WithConfig(func(c *engine.Config) { c.Publish.Security = sec }))
			prefix := fmt.Sprintf("ord_sasl%d_", i)
			postOrders(t, in.URL, prefix, 5)
			recs := enginetest.Consume(t, in.Brokers, prefix, 5, 30*time.Second, consumerOpts(ca, nil, mech)...)
			checkPublished(t, recs, prefix, 5)
		})
	}
}

// Events flow to a broker that requires a client certificate (mutual TLS);
// without one, the server still takes orders and counts TLS failures.
func TestKafkaMutualTLS(t *testing.T) {
	ca := testcert.NewCA(t, "kafka")
	broker := tlsBroker(t, ca, true)
	cli := ca.Issue(t, "orderflow-client")
	in := enginetest.Start(t, enginetest.WithBroker(broker), enginetest.WithConfig(func(c *engine.Config) {
		c.Publish.Security = publish.Security{TLS: true, TLSCAFile: ca.File, TLSCertFile: cli.CertFile, TLSKeyFile: cli.KeyFile}
	}))
	postOrders(t, in.URL, "ord_mtls", 5)
	recs := enginetest.Consume(t, in.Brokers, "ord_mtls", 5, 30*time.Second, consumerOpts(ca, &cli, "")...)
	checkPublished(t, recs, "ord_mtls", 5)

	anon := enginetest.Start(t, enginetest.WithBroker(broker), enginetest.WithConfig(func(c *engine.Config) {
		c.Publish.Security = publish.Security{TLS: true, TLSCAFile: ca.File}
	}))
	postOrders(t, anon.URL, "ord_notls", 2)
	waitFor(t, 30*time.Second, "a tls authentication failure counted", func() bool {
		return authFailures(t, anon.AdminURL, "tls") > 0
	})
}

// authFailuresRE reads orderflow_kafka_auth_failures_total by kind.
var authFailuresRE = regexp.MustCompile(`(?m)^orderflow_kafka_auth_failures_total\{kind="(\w+)"\} (\S+)$`)

// authFailures returns orderflow_kafka_auth_failures_total{kind=kind} from
// the admin listener at adminURL.
func authFailures(t *testing.T, adminURL, kind string) float64 {
	t.Helper()
	r := do(t, http.MethodGet, adminURL+"/metrics", "", nil)
	for _, m := range authFailuresRE.FindAllSubmatch(r.body, -1) {
		if string(m[1]) == kind {
			v, _ := strconv.ParseFloat(string(m[2]), 64)
			return v
		}
	}
	return 0
}

// With a wrong SASL password the server still takes orders (Kafka is not on
// the acknowledgement path), logs the authentication failure at start and
// then at most every 5 seconds, counts it in a metric, keeps every event in
// the outbox, and publishes them all once restarted with the right password.
// Neither password ever reaches the log.
func TestKafkaWrongPasswordKeepsEventsUntilFixed(t *testing.T) {
	const wrong = "not-the-Kafka-pa55word"
	ca := testcert.NewCA(t, "kafka")
	broker := tlsBroker(t, ca, false, saslBrokerOpts()...)
	var logs enginetest.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sec := publish.Security{TLS: true, TLSCAFile: ca.File, SASLMechanism: publish.SASLScramSHA256,
		SASLUsername: kafkaUser, SASLPassword: wrong}
	started := time.Now()
	a := enginetest.Start(t, enginetest.WithBroker(broker), enginetest.WithConfig(func(c *engine.Config) {
		c.Publish.Security = sec
		c.Logger = logger
	}))
	const n = 20
	postOrders(t, a.URL, "ord_pw", n)
	waitFor(t, 30*time.Second, "the authentication failure logged and counted", func() bool {
		return strings.Contains(logs.String(), "kafka authentication failed") && authFailures(t, a.AdminURL, "sasl") > 0
	})
	// Let the client retry for a while: the log stays quiet between lines.
	time.Sleep(6 * time.Second)
	lines := strings.Count(logs.String(), "kafka authentication failed")
	if most := int(time.Since(started)/(5*time.Second)) + 1; lines > most {
		t.Errorf("%d authentication log lines in %v; want at most %d (one per 5 s)", lines, time.Since(started).Round(time.Second), most)
	}
	if !strings.Contains(logs.String(), "-kafka.sasl-username") {
		t.Errorf("the authentication log line does not say what to check:\n%s", logs.String())
	}
	if got := pgtest.Int64(t, a.DatabaseURL, `SELECT count(*) FROM outbox`); got != n {
		t.Fatalf("outbox rows with a wrong Kafka password = %d; want %d", got, n)
	}
	if err := a.Stop(); err != nil {
		t.Logf("shutdown with events unpublished: %v", err)
	}
	if got := pgtest.Int64(t, a.DatabaseURL, `SELECT count(*) FROM outbox`); got != n {
		t.Fatalf("outbox rows after shutdown = %d; want %d", got, n)
	}

	sec.SASLPassword = kafkaPassword
	b := enginetest.Start(t, enginetest.WithBroker(broker), enginetest.WithDatabase(a.DatabaseURL),
		enginetest.WithConfig(func(c *engine.Config) {
			c.Publish.Security = sec
			c.Logger = logger
		}))
	recs := enginetest.Consume(t, b.Brokers, "ord_pw", n, 30*time.Second, consumerOpts(ca, nil, publish.SASLScramSHA256)...)
	checkPublished(t, recs, "ord_pw", n)
	waitFor(t, 15*time.Second, "outbox drained", func() bool {
		return pgtest.Int64(t, b.DatabaseURL, `SELECT count(*) FROM outbox`) == 0
	})
	for _, secret := range []string{wrong, kafkaPassword} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a SASL password appears in the log")
		}
	}
}
