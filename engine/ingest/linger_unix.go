//go:build unix

package ingest

import (
	"io"
	"net"
	"syscall"
)

// discard reads and discards at most max bytes from c once they are there:
// it waits for the socket to be readable without holding a buffer (the
// runtime's poller, under c's read deadline), then reads into a pooled
// buffer and returns it at once. io.EOF when the client closed; the
// deadline's error when it passed. A connection without a file descriptor
// is read with discardRead.
func discard(c net.Conn, max int64) (int64, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return discardRead(c, max)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return discardRead(c, max)
	}
	var (
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		buf := drainBufs.Get().(*[]byte)
		p := *buf
		if int64(len(p)) > max {
			p = p[:max]
		}
		for {
			n, rerr = syscall.Read(int(fd), p)
			if rerr != syscall.EINTR {
				break
			}
		}
		drainBufs.Put(buf)
		return rerr != syscall.EAGAIN // false: wait until readable, then call again
	})
	switch {
	case err != nil:
		return 0, err // the deadline, or closed
	case rerr != nil:
		return 0, rerr // a reset
	case n == 0:
		return 0, io.EOF
	}
	return int64(n), nil
}
