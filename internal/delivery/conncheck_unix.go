//go:build linux || darwin

package delivery

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// connUsable reports whether an idle connection can carry another request:
// the endpoint has neither closed it nor sent anything unasked (which, in
// HTTP/1.1 without pipelining, can only be the start of a close or garbage).
// It peeks without blocking and consumes nothing.
func connUsable(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := false
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
				usable = true // nothing to read: still open and quiet
			}
			// Otherwise: EOF (n == 0), unexpected bytes (n > 0) or an
			// error such as ECONNRESET.
			return
		}
	})
	return err == nil && usable
}
