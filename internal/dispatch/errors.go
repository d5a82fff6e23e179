package dispatch

import "errors"

var (
	errStopped = errors.New("dispatcher stopped")
	errRevoked = errors.New("partition revoked before the attempt started")
)
