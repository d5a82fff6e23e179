//go:build !linux && !darwin

package delivery

import "net"

// connUsable cannot peek at a socket on this platform; a connection the
// endpoint closed while idle fails the attempt that reuses it.
func connUsable(net.Conn) bool { return true }
