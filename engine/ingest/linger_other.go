//go:build !unix

package ingest

import "net"

// discard reads and discards at most max bytes from c (discardRead: one
// pooled buffer held for the read).
func discard(c net.Conn, max int64) (int64, error) { return discardRead(c, max) }
