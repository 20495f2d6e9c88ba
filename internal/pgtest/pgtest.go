// Package pgtest gives each integration test its own PostgreSQL database.
//
// The server is the one DATABASE_URL names (default
// postgres://root@127.0.0.1:5432/postgres?sslmode=disable). A server that does
// not answer fails the test: it is never skipped, so a green run means the
// integration tests ran. Only tests import this package.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultAdminURL is the server pgtest uses when DATABASE_URL is unset.
const DefaultAdminURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// startHint tells whoever reads a failure how to get a server.
const startHint = "start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, or point DATABASE_URL at a server"

var seq atomic.Int64

// AdminURL returns DATABASE_URL, or DefaultAdminURL when it is unset. It must
// be a URL (postgres://…), not a key=value DSN.
func AdminURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// New creates a fresh, uniquely named database on the AdminURL server and
// returns its URL. The database is dropped WITH (FORCE) in t.Cleanup, after
// cleanups registered later (so close pools in a cleanup registered after
// New). If the server does not answer, New calls t.Fatalf with a hint on how
// to start it. The database is empty: run the store's migrations on it.
func New(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL at %s does not answer: %v; %s", redact(admin), err, startHint)
	}
	defer conn.Close(context.Background())

	name := dbName(t.Name())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { drop(t, admin, name) })

	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: parse DATABASE_URL %s: %v", redact(admin), err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// connectAdmin connects to admin's database, or to the "postgres" database
// on the same server when admin's database does not exist (DATABASE_URL may
// name the application's database before anything created it).
func connectAdmin(ctx context.Context, admin string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, admin)
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return conn, err
	}
	u, perr := url.Parse(admin)
	if perr != nil {
		return nil, err
	}
	u.Path = "/postgres"
	return pgx.Connect(ctx, u.String())
}

func drop(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, admin)
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

// dbName builds a name (≤ 63 bytes, PostgreSQL's limit) that is unique per
// process, call and run, and shows which test made it.
func dbName(testName string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	var b strings.Builder
	for _, c := range strings.ToLower(testName) {
		if b.Len() >= 24 {
			break
		}
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return fmt.Sprintf("oftest_%s_%d_%d_%s", b.String(), os.Getpid(), seq.Add(1), hex.EncodeToString(r[:]))
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "DATABASE_URL"
	}
	return u.Redacted()
}

// Product is one catalog row for SeedProducts. The zero value of Inactive is
// an active product; a zero UpdatedAt means now().
type Product struct {
	SKU        string
	Name       string
	PriceCents int64
	Inactive   bool
	UpdatedAt  time.Time
}

// SeedProducts upserts products into the products table of the database at
// url (which must be migrated). It fails the test on any error.
func SeedProducts(t testing.TB, url string, products ...Product) {
	t.Helper()
	for _, p := range products {
		var updated any
		if !p.UpdatedAt.IsZero() {
			updated = p.UpdatedAt
		}
		Exec(t, url, `INSERT INTO products (sku, name, price_cents, active, updated_at)
VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()))
ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents,
  active = excluded.active, updated_at = excluded.updated_at`,
			p.SKU, p.Name, p.PriceCents, !p.Inactive, updated)
	}
}

// Exec runs one statement on a fresh connection to url and fails the test on
// error.
func Exec(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, sql, args...)
		return err
	})
}

// Int64 runs a query returning one integer (e.g. a count) on a fresh
// connection to url and returns it; it fails the test on error.
func Int64(t testing.TB, url, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, sql, args...).Scan(&n)
	})
	return n
}

// TerminateBackends ends every server session connected to the database at
// url (pg_terminate_backend), as a PostgreSQL restart or a failover would,
// and returns how many it ended.
func TerminateBackends(t testing.TB, url string) int64 {
	t.Helper()
	u, err := urlParse(url)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return Int64(t, AdminURL(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()`, strings.TrimPrefix(u.Path, "/"))
}

func urlParse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse url %s: %w", redact(raw), err)
	}
	return u, nil
}

func withConn(t testing.TB, url string, fn func(ctx context.Context, c *pgx.Conn) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v; %s", redact(url), err, startHint)
	}
	defer conn.Close(context.Background())
	if err := fn(ctx, conn); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}
