package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/gateway/gatewaytest"
	"github.com/postern/postern/session/redisstore/redistest"
)

// replicas starts two gateway processes sharing one Redis, as two replicas
// behind a load balancer: same secret, users, upstream and public URL.
func replicas(t *testing.T) (a, b *gatewayProc, up *gatewaytest.Upstream) {
	t.Helper()
	up = newRecorder(t)
	s := newSetup(t, up.URL, redistest.URLForTest(t))
	return s.start(t), s.start(t), up
}

// TestReplicasStashOnOneCompleteOnOther: a submission stashed by replica A
// is completed by the login on replica B, replayed once, and its kept
// answer is shown by replica A: stash, session and answer live in Redis.
func TestReplicasStashOnOneCompleteOnOther(t *testing.T) {
	a, b, up := replicas(t)
	br := newBrowser(t)
	body := []byte("item=Green+mug&quantity=2")
	f := br.At(a.base).SubmitWhileLoggedOut(http.MethodPost, "/checkout?cart=7", formType, body)
	if n := len(up.Submissions()); n != 0 {
		t.Fatalf("the upstream got %d submissions before the login", n)
	}

	resp := br.At(b.base).Login(f, procUser, procPassword)
	gatewaytest.ReadBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/checkout?cart=7" {
		t.Fatalf("login on replica B: status %d, Location %q; want 303 to /checkout?cart=7", resp.StatusCode, resp.Header.Get("Location"))
	}
	got := up.Submissions()
	if len(got) != 1 {
		t.Fatalf("replayed %d times, want once", len(got))
	}
	if s := got[0]; s.Method != http.MethodPost || s.URI != "/checkout?cart=7" || string(s.Body) != string(body) ||
		s.Header.Get("X-Forwarded-User") != procUser || s.Header.Get("X-Postern-Replayed") != "true" {
		t.Errorf("upstream saw %+v", s)
	}

	page := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, a.base+"/checkout?cart=7", "", nil), http.StatusOK)
	if !strings.Contains(page, "app answer #1: POST /checkout?cart=7 user=alice replayed=true") {
		t.Errorf("replica A did not show the kept answer:\n%.600s", page)
	}
	// Shown once: the next visit is a plain GET through to the app.
	again := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, a.base+"/checkout?cart=7", "", nil), http.StatusOK)
	if !strings.Contains(again, "GET /checkout?cart=7") {
		t.Errorf("second visit:\n%.600s", again)
	}
	if n := len(up.Submissions()); n != 1 {
		t.Errorf("%d submissions upstream after the visits, want 1", n)
	}
}

// TestReplicasConcurrentCompletionsReplayOnce: 50 completions of one stash
// racing over both replicas replay it exactly once.
func TestReplicasConcurrentCompletionsReplayOnce(t *testing.T) {
	a, b, up := replicas(t)
	br := newBrowser(t)
	f := br.At(a.base).SubmitWhileLoggedOut(http.MethodPost, "/pay", formType, []byte("amount=100"))
	loginOnly(t, br.At(b.base))
	cont := continueFields(t, br.At(a.base), f)

	const n = 50
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	statuses := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		base := a.base
		if i%2 == 1 {
			base = b.base
		}
		wg.Go(func() {
			resp, err := br.Send(ctx, http.MethodPost, base+"/.postern/resume", formType, strings.NewReader(string(cont)), int64(len(cont)))
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("completion %d: %v", i, err)
		}
	}
	if got := len(up.Submissions()); got != 1 {
		t.Fatalf("%d racing completions on two replicas replayed %d times, want 1 (statuses %v)", n, got, statuses)
	}
	for i, s := range statuses {
		if s != http.StatusSeeOther {
			t.Errorf("completion %d answered %d, want 303 to the result", i, s)
		}
	}
	page := gatewaytest.ExpectStatus(t, br.Do(http.MethodGet, b.base+"/pay", "", nil), http.StatusOK)
	if !strings.Contains(page, "app answer #1: POST /pay user=alice replayed=true") {
		t.Errorf("the result page:\n%.600s", page)
	}
}
