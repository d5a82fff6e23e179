package dedupe

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// commands notes the name of every command sent through a client, and
// can play a server older than 7.0, which refuses SET with both NX and
// GET as a syntax error.
type commands struct {
	before7 bool

	mu     sync.Mutex
	names  []string
	single []string // commands sent on their own, not in a pipeline
}

// serverError is an error reply, as the client reads them.
type serverError string

func (e serverError) Error() string { return string(e) }
func (serverError) RedisError()     {}

var errSyntax = serverError("ERR syntax error")

func (c *commands) refuse(cmd redis.Cmder) bool {
	c.mu.Lock()
	c.names = append(c.names, cmd.Name())
	c.mu.Unlock()
	if !c.before7 || cmd.Name() != "set" {
		return false
	}
	var nx, get bool
	for _, a := range cmd.Args()[1:] {
		if s, ok := a.(string); ok {
			nx = nx || strings.EqualFold(s, "nx")
			get = get || strings.EqualFold(s, "get")
		}
	}
	if nx && get {
		cmd.SetErr(errSyntax)
		return true
	}
	return false
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.single = append(c.single, cmd.Name())
		c.mu.Unlock()
		if c.refuse(cmd) {
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var rest []redis.Cmder
		for _, cmd := range cmds {
			if !c.refuse(cmd) {
				rest = append(rest, cmd)
			}
		}
		if len(rest) == 0 {
			return nil
		}
		return next(ctx, rest)
	}
}

func (c *commands) sent(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.names {
		if s == name {
			n++
		}
	}
	return n
}

func hooked(t *testing.T, b backend, c *commands) redis.UniversalClient {
	t.Helper()
	o := b.rdb.(*redis.Client).Options()
	rdb := redis.NewClient(&redis.Options{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB})
	rdb.AddHook(c)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestLeaseIsOneCommand pins the lease on Redis 7: one SET NX GET, no
// script, for single leases and batches alike.
func TestLeaseIsOneCommand(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		var c commands
		s := New(hooked(t, b, &c))
		mustAcquire(t, s, "msg_one", Acquired)
		mustAcquire(t, s, "msg_one", Busy)
		if _, err := s.AcquireMany(ctx, []string{"msg_two", "msg_three"}, lease); err != nil {
			t.Fatal(err)
		}
		if n := c.sent("set"); n != 4 {
			t.Fatalf("%d SETs for 4 leases, want one each", n)
		}
		if n := c.sent("evalsha") + c.sent("eval"); n != 0 {
			t.Fatalf("%d scripts run on a server that has SET NX GET", n)
		}
	})
}

// TestLeaseIsPipelined pins the lease to the autopipeliner's batches:
// leases taken at once share pipelines rather than each taking a
// connection and a round trip of its own.
func TestLeaseIsPipelined(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		var c commands
		ap, err := hooked(t, b, &c).(*redis.Client).AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ap.Close() })
		s := New(ap, WithPrefix("herald:pipelined:"))
		const n = 50
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { mustAcquire(t, s, fmt.Sprintf("msg_%d", i), Acquired) })
		}
		wg.Wait()
		if got := c.sent("set"); got != n {
			t.Fatalf("%d SETs for %d leases", got, n)
		}
		// The autopipeliner may send a lease that meets no other on its
		// own; sent with Do, every one of them would go alone.
		alone := 0
		for _, name := range c.single {
			if name == "set" {
				alone++
			}
		}
		if alone > n/2 {
			t.Fatalf("%d of %d concurrent leases sent outside the autopipeliner's pipelines", alone, n)
		}
	})
}

// TestLeaseBeforeRedis7 plays a server that refuses SET NX GET: the
// refused command takes no lease, the script takes it instead, and from
// then on only the script is used. Nothing counts as a Redis failure.
func TestLeaseBeforeRedis7(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := commands{before7: true}
		s := New(hooked(t, b, &c), WithPrefix("herald:old:"))
		other := New(hooked(t, b, &c), WithPrefix("herald:old:"))

		mustAcquire(t, s, "msg_1", Acquired)
		mustAcquire(t, other, "msg_1", Busy)
		if err := s.MarkDone(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		mustAcquire(t, other, "msg_1", Done)

		got, err := other.AcquireMany(ctx, []string{"msg_1", "msg_2", "msg_2"}, lease)
		if err != nil {
			t.Fatal(err)
		}
		if want := []State{Done, Acquired, Busy}; !slices.Equal(got, want) {
			t.Fatalf("AcquireMany = %v, want %v", got, want)
		}
		if !s.scriptOnly.Load() || !other.scriptOnly.Load() {
			t.Fatal("the stores still try SET NX GET after the server refused it")
		}
		// One refusal per store, and none after it.
		if n := c.sent("set"); n != 3 {
			t.Fatalf("%d SETs sent, want the two refused ones and the done mark", n)
		}
		if s.Errors() != 0 || other.Errors() != 0 {
			t.Fatalf("refusals counted as failures: %d, %d", s.Errors(), other.Errors())
		}
	})
}
