package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/enginetest"
	"github.com/orderflow/orderflow/internal/pgtest"
	"github.com/orderflow/orderflow/internal/privatepg"
	"github.com/orderflow/orderflow/internal/testcert"
)

// tlsPostgres starts a private PostgreSQL with ssl = on and a certificate
// for localhost (only: not for 127.0.0.1) signed by ca, with database
// "orderflow".
func tlsPostgres(t *testing.T, ca *testcert.CA) *privatepg.Server {
	t.Helper()
	srv := ca.Issue(t, "postgres", "localhost")
	crt, err := os.ReadFile(srv.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg, err := privatepg.Start(ctx, privatepg.Options{
		Settings: map[string]string{"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"},
		Files:    map[string][]byte{"server.crt": crt, "server.key": key},
		Database: "orderflow",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	return pg
}

// verifyFullURL is the URL of database db on pg over TLS, checking the
// server's certificate against caFile and its name against host.
func verifyFullURL(pg *privatepg.Server, host, db, caFile string) string {
	return fmt.Sprintf("postgres://root@%s:%d/%s?sslmode=verify-full&sslrootcert=%s", host, pg.Port(), db, url.QueryEscape(caFile))
}

// The engine runs on a DATABASE_URL with sslmode=verify-full and a CA file:
// every connection it opens is encrypted, orders commit and publish. A
// server certificate from another CA, or for another name, is refused at
// start.
func TestPostgresVerifyFull(t *testing.T) {
	ca := testcert.NewCA(t, "postgres")
	pg := tlsPostgres(t, ca)
	dbURL := verifyFullURL(pg, "localhost", "orderflow", ca.File)
	in := enginetest.Start(t, enginetest.WithDatabase(dbURL), enginetest.WithCatalog(enginetest.GeneratedProducts(3)))
	const n = 5
	for i := range n {
		r := do(t, http.MethodPost, in.URL+"/v1/orders", "application/json",
			[]byte(orderJSON(fmt.Sprintf("ord_pgtls%02d", i), `{"sku":"sku-000001","qty":1}`)))
		if r.code != http.StatusCreated {
			t.Fatalf("POST over a TLS database: %s; want 201", r)
		}
	}
	if got := pgtest.Int64(t, dbURL, `SELECT count(*) FROM orders`); got != n {
		t.Errorf("orders = %d; want %d", got, n)
	}
	checkPublished(t, in.Consume(t, "ord_pgtls", n, 30*time.Second), "ord_pgtls", n)
	// Every connection of the engine's (all but this query's own) uses TLS.
	plain := pgtest.Int64(t, dbURL, `SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
		WHERE a.datname = 'orderflow' AND a.pid <> pg_backend_pid() AND NOT s.ssl`)
	encrypted := pgtest.Int64(t, dbURL, `SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
		WHERE a.datname = 'orderflow' AND a.pid <> pg_backend_pid() AND s.ssl`)
	if plain != 0 || encrypted == 0 {
		t.Errorf("engine connections: %d without TLS, %d with; want 0 and at least 1", plain, encrypted)
	}

	other := testcert.NewCA(t, "other")
	refused := func(name, u string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, u); err == nil {
			c.Close(ctx)
			t.Errorf("%s: connected; want the certificate refused", name)
		}
		cfg := engine.DefaultConfig()
		cfg.DatabaseURL, cfg.Listen, cfg.AdminListen = u, "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaBrokers, cfg.Logger = in.Brokers, enginetest.Logger()
		e, err := engine.New(cfg)
		if err != nil {
			return
		}
		if err := e.Start(ctx); err == nil {
			_ = e.Shutdown(ctx)
			t.Errorf("%s: the engine started; want it to refuse the database", name)
		}
	}
	refused("certificate from another CA", verifyFullURL(pg, "localhost", "orderflow", other.File))
	refused("certificate for another name", verifyFullURL(pg, "127.0.0.1", "orderflow", ca.File))
}
