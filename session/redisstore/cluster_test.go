package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/session/redisstore/redistest"

	"github.com/redis/go-redis/v9"

	"github.com/postern/postern/session"
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	addrs := redistest.StartCluster(t)
	// Two of the three as seeds; the third is discovered.
	tt := testTarget{url: "redis-cluster://" + addrs[0] + "," + addrs[1], prefix: "cluster"}
	ctx := context.Background()
	replicas := []session.Backend{openStore(t, tt), openStore(t, tt)}
	b := replicas[0]
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { raw.Close() })

	// clusterKeys scans every master for this test's keys.
	clusterKeys := func() []string {
		var keys []string
		var mu sync.Mutex
		err := raw.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			ks, err := scanKeys(ctx, n, tt.prefix)
			mu.Lock()
			keys = append(keys, ks...)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}

	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "rec", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetDelete(ctx, "rec"); err != nil || string(v) != "v" {
		t.Fatalf("GetDelete on the cluster: %q, %v", v, err)
	}

	// Blobs under several keys, so they land on different nodes; each
	// blob's keys must share one slot.
	body := randomBytes(9*chunk+11, 6)
	slotsSeen := map[int64]bool{}
	for i := 0; i < 6; i++ {
		key := fmt.Sprintf("stash-%d", i)
		if _, err := b.PutBlob(ctx, key, []byte(key), bytes.NewReader(body), 1<<20, time.Minute); err != nil {
			t.Fatalf("PutBlob %s: %v", key, err)
		}
		keys := clusterKeys()
		if len(keys) != 11 { // meta and 10 chunks
			t.Fatalf("%s: %d keys, want 11: %v", key, len(keys), keys)
		}
		var slot int64 = -1
		for _, k := range keys {
			s, err := raw.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if slot != -1 && s != slot {
				t.Fatalf("blob %s spans slots %d and %d (key %s)", key, slot, s, k)
			}
			slot = s
		}
		slotsSeen[slot] = true

		meta, got := takeAll(t, replicas[1], key)
		if string(meta) != key || !bytes.Equal(got, body) {
			t.Fatalf("%s: round trip on the cluster differs", key)
		}
		if err := replicas[1].RestoreBlob(ctx, key); err != nil {
			t.Fatal(err)
		}
		var takers []session.Backend
		for j := 0; j < 50; j++ {
			takers = append(takers, replicas[j%2])
		}
		if n := takeRace(t, takers, key, body); n != 1 {
			t.Fatalf("%s: %d of 50 takers won on the cluster, want 1", key, n)
		}
		if err := b.DeleteBlob(ctx, key); err != nil {
			t.Fatal(err)
		}
		if keys := clusterKeys(); len(keys) != 0 {
			t.Fatalf("%s: keys left after DeleteBlob: %v", key, keys)
		}
	}
	if len(slotsSeen) < 2 {
		t.Fatalf("all blobs in one slot %v: the hash tag does not include the key", slotsSeen)
	}
}
