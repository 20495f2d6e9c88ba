package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// inTx runs one attempt of a batch transaction, bounded by Config.TxTimeout:
// BEGIN, body, COMMIT. body names the step it is in through *step, so that an
// error says where it happened. An error before COMMIT rolls back and comes
// back as a *txError (which records whether the connection died); an error
// at COMMIT comes back as a *commitError, whose outcome is unknown and which
// classify never retries. WriteOrders and WriteStatus both run through it.
func (s *Store) inTx(parent context.Context, firstStep string, body func(ctx context.Context, tx pgx.Tx, step *string) error) error {
	ctx, cancel := context.WithTimeout(parent, s.cfg.TxTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return &txError{step: "begin", err: err}
	}
	step := firstStep
	if err := body(ctx, tx, &step); err != nil {
		closed := tx.Conn().IsClosed()
		_ = tx.Rollback(ctx)
		return &txError{step: step, err: err, connClosed: closed}
	}
	if err := tx.Commit(ctx); err != nil {
		return &commitError{err: err}
	}
	return nil
}

// errData marks an error caused by the data of some row (bisect, then reject).
var errData = errors.New("postgres refused the data")

type errKind uint8

const (
	kindOther errKind = iota
	kindRetryable
	kindData
	kindCachedPlan
)

// retrying runs attempt until it succeeds, fails with an error that
// retrying cannot fix, or runs out of retries (Config.MaxRetries), sleeping
// a jittered exponential backoff between tries. reset runs after every
// failed attempt (to clear results it set). Retries after a lost connection
// ask the pool to ping before handing out a connection. The returned error
// wraps errData for data errors.
func (s *Store) retrying(ctx context.Context, m *opMetrics, attempt func(context.Context) error, reset func()) error {
	planRetried := false
	retries := 0
	attemptCtx := ctx
	for {
		err := attempt(attemptCtx)
		if err == nil {
			return nil
		}
		reset()
		kind := classify(err)
		if ctx.Err() != nil {
			// The caller gave up: whatever the error, don't try again.
			kind = kindOther
		}
		switch kind {
		case kindData:
			m.errData.Inc()
			return fmt.Errorf("%w: %w", errData, err)
		case kindCachedPlan:
			m.errRetryable.Inc()
			if planRetried {
				return err
			}
			planRetried = true // pgx dropped the stale statement: retry now
			m.retries.Inc()
			continue
		case kindRetryable:
			m.errRetryable.Inc()
			if retries >= s.cfg.MaxRetries {
				return fmt.Errorf("%d retries: %w", retries, err)
			}
		default:
			m.errOther.Inc()
			return err
		}
		s.log.Debug("retrying batch transaction", "retry", retries+1, "err", err)
		if serr := sleepCtx(ctx, s.backoff(retries)); serr != nil {
			return err
		}
		retries++
		m.retries.Inc()
		attemptCtx = context.WithValue(ctx, pingOnAcquire{}, true)
	}
}

// backoff returns the sleep before retry n (0-based): full jitter over
// [0, RetryBackoff·2ⁿ).
func (s *Store) backoff(n int) time.Duration {
	max := s.cfg.RetryBackoff << min(n, 16)
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// txError is an error before COMMIT; connClosed records whether it left the
// connection closed (the server then rolled the transaction back).
type txError struct {
	step       string
	err        error
	connClosed bool
}

func (e *txError) Error() string { return e.step + ": " + e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

// commitError is an error at COMMIT: the transaction may or may not have
// committed.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit (outcome unknown): " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// CommitUnknown reports whether err, the error of a write that failed
// (order.Update.Err, order.Result.Err), leaves its outcome unknown: the
// transaction reached COMMIT and may have committed. Any other failure
// committed nothing.
func CommitUnknown(err error) bool {
	var ce *commitError
	return errors.As(err, &ce)
}

// classify decides what to do about an error of commitOnce, by behaviour and
// SQLSTATE, never by message text.
func classify(err error) errKind {
	var ce *commitError
	if errors.As(err, &ce) {
		// Never retried, whatever the error says: the transaction may have
		// committed. pgx v5.12 reports a connection lost while waiting for
		// COMMIT's answer as SafeToRetry (MultiResultReader.NextResult
		// drops the read error and closes the connection; the next read
		// returns a "conn closed" error that claims nothing was sent), and
		// a retry of a committed status batch re-applied its changes and
		// answered a committed change 409 (chaos.TestAmbiguousCommit).
		// The orders fail with 503; the client's retry with the same id
		// converges.
		return kindOther
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "40001", code == "40P01", // serialization failure, deadlock
			code == "57P01", code == "57P02", code == "57P03", // admin/crash shutdown, cannot connect now
			code == "57014",               // query canceled (statement timeout, TxTimeout)
			code == "23505",               // unique violation: a race our ON CONFLICT did not cover; converges on retry
			code == "55P03",               // lock not available
			strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"): // insufficient resources (too many connections, …)
			return kindRetryable
		case code == "0A000": // "cached plan must not change result type"
			return kindCachedPlan
		case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"):
			return kindData
		}
		return kindOther
	}
	var te *txError
	if errors.As(err, &te) && te.connClosed {
		// Nothing committed; a fresh connection may well succeed.
		return kindRetryable
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return kindRetryable
	}
	return kindOther
}
