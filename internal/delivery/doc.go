// Package delivery makes one webhook attempt: it builds the signed request a
// subscription asks for (Build), sends it through an SSRF-safe, traced HTTP
// client (Client.Do), and classifies what happened (Result), so that the
// callers can decide between done, retry, disable and dead-letter without
// looking at HTTP details themselves.
package delivery
