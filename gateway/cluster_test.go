package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session"
	"github.com/postern/postern/session/redisstore"
	"github.com/postern/postern/session/redisstore/redistest"
)

// The whole flow on a real three-master Redis Cluster, with two gateways
// (replicas) on it: a stash made through one is completed through the
// other, and 20 completions racing over both replay it once.
func TestFlowOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	addrs := redistest.StartCluster(t)
	clusterURL := "redis-cluster://" + addrs[0] + "," + addrs[1]
	prefix := "gw-" + session.NewID()[:8]
	open := func() session.Backend {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := redisstore.Open(ctx, clusterURL, redisstore.WithKeyPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	up := gatewaytest.NewUpstream(t)
	a := &env{t: t, up: up, storeDir: t.TempDir(), openBackend: open}
	a.start()
	b := &env{t: t, up: up, storeDir: t.TempDir(), openBackend: open}
	b.start()

	// Stash through replica a, complete through replica b.
	br := a.browser()
	f := br.SubmitWhileLoggedOut(http.MethodPost, "/checkout", "application/x-www-form-urlencoded", []byte("cluster=1"))
	br = br.At(b.gw.URL)
	br.Origin = b.gw.URL
	br.Follow(br.Login(f, testUser, testPassword), http.StatusOK)
	if got := up.Submissions(); len(got) != 1 || string(got[0].Body) != "cluster=1" {
		t.Fatalf("replays: %+v", got)
	}

	// A second stash; its completion raced over both replicas.
	br = a.browser()
	f2 := br.SubmitWhileLoggedOut(http.MethodPost, "/pay", "text/plain", []byte("once"))
	// Log in without completing it, as another tab would.
	gatewaytest.ReadBody(t, br.Login(url.Values{"csrf": {f2.Get("csrf")}, "rd": {"/"}}, testUser, testPassword))
	page := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, "/.postern/login?stash="+f2.Get("stash")+"&rd=%2Fpay", "", nil), http.StatusOK)
	cont := []byte(gatewaytest.HiddenFields(page).Encode())
	gwURL, _ := url.Parse(a.gw.URL)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replica := []*env{a, b}[i%2]
			req, _ := http.NewRequest(http.MethodPost, replica.gw.URL+"/.postern/resume", bytes.NewReader(cont))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			for _, c := range br.Client.Jar.Cookies(gwURL) {
				req.AddCookie(c)
			}
			if resp, err := http.DefaultTransport.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if got := up.Submissions(); len(got) != 2 || string(got[1].Body) != "once" {
		t.Fatalf("after 20 racing completions over two replicas: %d submissions", len(got))
	}
}
