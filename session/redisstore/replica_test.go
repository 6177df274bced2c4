package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
	"github.com/postern/postern/session/sessiontest"
)

// TestClusterReplay runs the replay state machine suite on a real
// three-node Redis Cluster: every transition's keys are in one slot.
func TestClusterReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	addrs := redistest.StartCluster(t)
	sessiontest.RunReplay(t, func(t *testing.T) session.Backend {
		return openStore(t, testTarget{url: "redis-cluster://" + addrs[0] + "," + addrs[1], prefix: "creplay-" + strings.ReplaceAll(t.Name(), "/", ".")})
	})
}

// startReplica starts a replica of primary and waits (at most 10s) until
// it acknowledges the primary's writes.
func startReplica(t *testing.T, primary *redistest.Server) (*redistest.Server, *redis.Client) {
	t.Helper()
	host, port, _ := strings.Cut(primary.Addr(), ":")
	replica := redistest.Start(t, "--replicaof", host, port)
	raw := rawClient(t, testTarget{url: replica.URL()})
	prim := rawClient(t, testTarget{url: primary.URL()})
	ctx := context.Background()
	// Up once the replica acknowledges a write (WAIT on the primary).
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := prim.Set(ctx, "replica-probe", "1", time.Minute).Err()
		if err == nil {
			var n int64
			if n, err = prim.Do(ctx, "wait", 1, 1000).Int64(); err == nil && n == 1 {
				return replica, raw
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not acknowledge writes within 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replicaState reads a stash's replay state straight from a Redis server.
func replicaState(t *testing.T, raw *redis.Client, prefix, id string) session.ReplayState {
	t.Helper()
	v, err := raw.HGet(context.Background(), prefix+":e:{stash:"+id+"}:s", "s").Result()
	if err != nil {
		t.Fatalf("read the state on the replica: %v", err)
	}
	var r struct {
		S session.ReplayState `json:"s"`
	}
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		t.Fatal(err)
	}
	return r.S
}

// TestMinReplicas shows min_replicas at work with a real primary and a real
// replica (redis-server --replicaof): a lease is on the replica by the time
// Lease returns, and with the replica gone a transition fails with
// ErrUnavailable, leaving the stash harmless (it is taken again once the
// unconfirmed lease lapses; a MarkSent that was not confirmed is given back).
func TestMinReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	primary := redistest.Start(t)
	replica, raw := startReplica(t, primary)
	tt := testTarget{url: primary.URL() + "?min_replicas=1&wait_timeout=2s", prefix: "minrep"}
	sealer, err := session.NewSealer([][]byte{[]byte("a test secret of at least 32 bytes!!")})
	if err != nil {
		t.Fatal(err)
	}
	clock := sessiontest.NewClock(time.Now())
	st := session.NewStore(openStore(t, tt), sealer, session.WithStoreClock(clock.Now))
	// The same primary without waiting, for looking at what is left.
	plain := session.NewStore(openStore(t, testTarget{url: primary.URL(), prefix: "minrep"}), sealer, session.WithStoreClock(clock.Now))

	put := func() string {
		id := session.NewID()
		if _, err := st.PutStash(ctx, id, session.Stored{Method: "POST", Owner: "b1", Size: 4}, strings.NewReader("body"), 10, time.Hour); err != nil {
			info, _ := rawClient(t, testTarget{url: primary.URL()}).Info(ctx, "replication").Result()
			t.Fatalf("PutStash with the replica up: %v\n%s", err, info)
		}
		return id
	}
	id1, id2, id3 := put(), put(), put()

	// Lease returns only once the replica has the lease.
	_, rc, _, err := st.Lease(ctx, id1, "b1", "t1", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease with the replica up: %v", err)
	}
	rc.Close()
	if got := replicaState(t, raw, tt.prefix, id1); got != session.StateLeased {
		t.Fatalf("right after Lease the replica has state %s, want leased", got)
	}
	if err := st.MarkSent(ctx, id1, "t1"); err != nil {
		t.Fatalf("MarkSent with the replica up: %v", err)
	}
	if got := replicaState(t, raw, tt.prefix, id1); got != session.StateSent {
		t.Fatalf("right after MarkSent the replica has state %s, want sent", got)
	}
	_, rc, _, err = st.Lease(ctx, id3, "b1", "t3", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()

	replica.Stop()

	// Nothing confirmed: Lease fails, and the gateway sends nothing.
	_, rc, _, err = st.Lease(ctx, id2, "b1", "t2", 10*time.Second)
	if !errors.Is(err, session.ErrUnavailable) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Lease with the replica down: err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "min_replicas") {
		t.Errorf("error %q does not name min_replicas", err)
	}
	// Harmless: once its lease lapses, the stash is taken again.
	clock.Advance(11 * time.Second)
	_, rc, _, err = plain.Lease(ctx, id2, "b1", "t4", 10*time.Second)
	if err != nil {
		t.Fatalf("Lease after the unconfirmed lease lapsed: %v", err)
	}
	rc.Close()

	// A MarkSent that is not confirmed is given back: the stash is pending,
	// not "sent" for a send that never happened.
	if err := plain.Renew(ctx, id3, "t3", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkSent(ctx, id3, "t3"); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("MarkSent with the replica down: err = %v, want ErrUnavailable", err)
	}
	if _, r, err := plain.ReplayOf(ctx, id3, "b1"); err != nil || r.State != session.StatePending {
		t.Fatalf("after an unconfirmed MarkSent: %+v, %v; want pending", r, err)
	}
}

func TestMinReplicasOptions(t *testing.T) {
	for _, bad := range []string{
		"redis://127.0.0.1:1/0?min_replicas=x",
		"redis://127.0.0.1:1/0?min_replicas=-1",
		"redis://127.0.0.1:1/0?min_replicas=1&wait_timeout=0s",
		"redis://127.0.0.1:1/0?min_replicas=1&wait_timeout=soon",
		"redis://127.0.0.1:1/0?wait_timeout=1s",
	} {
		if err := redisstore.CheckURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		} else if !strings.Contains(err.Error(), "min_replicas") && !strings.Contains(err.Error(), "wait_timeout") {
			t.Errorf("%s: error %q names neither option", bad, err)
		}
	}
	for _, good := range []string{
		"redis://127.0.0.1:1/0?min_replicas=0",
		"redis://127.0.0.1:1/0?min_replicas=2&wait_timeout=250ms",
		"redis-sentinel://127.0.0.1:1/0?master=m&min_replicas=1",
		"redis-cluster://127.0.0.1:1?min_replicas=1&wait_timeout=2s",
	} {
		if err := redisstore.CheckURL(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
}

// TestSentinelFailoverKeepsLease takes a stash's lease through Sentinel
// with min_replicas=1, kills the primary (SIGKILL), and lets Sentinel
// promote the replica: the promoted server knows the lease, so no other
// sender takes the submission while it is live, and the sender's token
// still holds it there.
func TestSentinelFailoverKeepsLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a Sentinel failover")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary := redistest.Start(t)
	_, _ = startReplica(t, primary)
	sentinel := redistest.StartSentinel(t, "main", primary.Addr(),
		"sentinel down-after-milliseconds main 500",
		"sentinel failover-timeout main 5000")
	sealer, err := session.NewSealer([][]byte{[]byte("a test secret of at least 32 bytes!!")})
	if err != nil {
		t.Fatal(err)
	}
	clock := sessiontest.NewClock(time.Now())
	url := "redis-sentinel://" + sentinel.Addr() + "/0?master=main"
	// Sentinel learns of the replica from the primary's INFO.
	raw := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	t.Cleanup(func() { raw.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		reps, err := raw.Replicas(ctx, "main").Result()
		if err == nil && len(reps) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel did not find the replica within 30s: %v %v", reps, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := session.NewStore(openStore(t, testTarget{url: url + "&min_replicas=1&wait_timeout=2s", prefix: "failover"}), sealer, session.WithStoreClock(clock.Now))
	id := session.NewID()
	if _, err := st.PutStash(ctx, id, session.Stored{Method: "POST", Owner: "b1", Size: 4}, strings.NewReader("body"), 10, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, rc, _, err := st.Lease(ctx, id, "b1", "t1", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()

	primary.Kill(t)
	// A Store reaching whatever server Sentinel names now (no replica is
	// left to wait for once the replica is promoted).
	after := session.NewStore(openStore(t, testTarget{url: url, prefix: "failover"}), sealer, session.WithStoreClock(clock.Now))
	deadline = time.Now().Add(60 * time.Second)
	for {
		addr, err := raw.GetMasterAddrByName(ctx, "main").Result()
		if err == nil && len(addr) == 2 && addr[0]+":"+addr[1] != primary.Addr() {
			if _, _, err := after.ReplayOf(ctx, id, "b1"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover within 60s: master %v, %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, r, err := after.ReplayOf(ctx, id, "b1")
	if err != nil || r.State != session.StateLeased {
		t.Fatalf("after the failover: %+v, %v; want the lease kept", r, err)
	}
	if _, _, _, err := after.Lease(ctx, id, "b1", "t2", 10*time.Second); !errors.Is(err, session.ErrState) {
		t.Fatalf("a second Lease after the failover: %v, want ErrState (the lease is live)", err)
	}
	if err := after.MarkSent(ctx, id, "t1"); err != nil {
		t.Fatalf("the sender's MarkSent after the failover: %v", err)
	}
}
