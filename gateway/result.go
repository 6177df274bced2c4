package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/postern/postern/session"
)

// resultWait bounds how long the page at the original URL waits for a
// send that is under way (a double click, another replica) before it
// shows the "being sent" page, which reloads itself.
const resultWait = 5 * time.Second

// resultStore is what the result keeper needs of the store.
type resultStore interface {
	ReplayOf(ctx context.Context, id, owner string) (session.Stored, session.Replay, error)
	TakeAnswer(ctx context.Context, id, owner string) (session.Result, io.ReadCloser, error)
	ownerStore
}

// resultKeeper answers a GET of a URL the browser submitted to while a
// kept submission for it is on record (a ResultRef in the cookie, set when
// it was kept): the kept answer is shown once; a send under way shows a
// page that reloads itself; a send cut by a crash is taken up again (a
// lapsed lease) or put to the person (ambiguous). Otherwise the request
// goes on to the app as usual.
type resultKeeper struct {
	store    resultStore
	replayer *replayer
	cookies  *session.Cookies
	pages    *pages
	metrics  *metrics
	log      *slog.Logger
	now      func() time.Time
}

// pendingResult returns the kept submission the cookie holds for this
// request's URL, if any.
func pendingResult(ck *session.Cookie, r *http.Request) (session.ResultRef, bool) {
	if r.Method != http.MethodGet || len(ck.Results) == 0 {
		return session.ResultRef{}, false
	}
	uri := r.URL.RequestURI()
	for _, ref := range ck.Results {
		if ref.URL == uri {
			return ref, true
		}
	}
	return session.ResultRef{}, false
}

// show answers the request for the kept submission ref, or reports
// (handled false) that the request goes on to the app. who is nil when
// nobody is logged in.
func (k *resultKeeper) show(w http.ResponseWriter, r *http.Request, ck *session.Cookie, who *principal, ref session.ResultRef) (bool, error) {
	ctx := r.Context()
	var (
		rep   session.Replay
		owner string
	)
	err := asOwner(ctx, k.store, ck, func(o string) error {
		var err error
		_, rep, err = k.wait(ctx, ref.ID, o)
		owner = o
		return err
	})
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrCorrupt), errors.Is(err, session.ErrNotOwner):
		return k.forget(w, r, ck, ref)
	case ctx.Err() != nil:
		return true, nil // the browser went away
	case err != nil:
		return true, storeError(err)
	}
	now := k.now()
	switch {
	case rep.State == session.StateAnswered:
		res, body, err := k.store.TakeAnswer(ctx, ref.ID, owner)
		if errors.Is(err, session.ErrState) {
			// Shown meanwhile (another tab of this browser).
			return k.forget(w, r, ck, ref)
		}
		if err != nil {
			return true, storeError(err)
		}
		defer body.Close()
		dropRef(ck, ref.ID)
		if err := saveCookie(k.cookies, w, r, ck); err != nil {
			return true, err
		}
		k.metrics.results.WithLabelValues("shown").Inc()
		k.write(w, res, body)
		return true, nil
	case rep.State == session.StateSettled:
		return k.forget(w, r, ck, ref)
	case rep.State == session.StatePending:
		// Waiting for its login (or given back): the login sends it.
		return false, nil
	case rep.LeaseLive(now):
		k.metrics.results.WithLabelValues("sending").Inc()
		if err := saveCookie(k.cookies, w, r, ck); err != nil {
			return true, err
		}
		k.pages.sending(w, ck, ref.ID, ref.URL)
		return true, nil
	case who == nil:
		// Its sender died; the person logs in, comes back, and it is
		// taken up then.
		return false, nil
	case rep.State == session.StateLeased:
		// Its sender died before writing anything: send it now.
		k.metrics.results.WithLabelValues("recovered").Inc()
		return true, k.replayer.replay(w, r, ck, who, ref.ID, ref.URL)
	}
	// Sent, its sender gone: ask, unless the app honours the key.
	return true, k.replayer.recover(w, r, ck, who, ref.ID, ref.URL)
}

// forget drops a ref whose submission is gone or settled, and lets the
// request go on to the app.
func (k *resultKeeper) forget(w http.ResponseWriter, r *http.Request, ck *session.Cookie, ref session.ResultRef) (bool, error) {
	dropRef(ck, ref.ID)
	if err := saveCookie(k.cookies, w, r, ck); err != nil {
		return true, err
	}
	return false, nil
}

// wait reads the state of the stash id; while a send of it is under way
// (a live lease) it waits for it, within resultWait.
func (k *resultKeeper) wait(ctx context.Context, id, owner string) (session.Stored, session.Replay, error) {
	deadline := time.NewTimer(resultWait)
	defer deadline.Stop()
	delay := 20 * time.Millisecond
	for {
		stored, rep, err := k.store.ReplayOf(ctx, id, owner)
		if err != nil || !rep.LeaseLive(k.now()) {
			return stored, rep, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return stored, rep, ctx.Err()
		case <-deadline.C:
			t.Stop()
			return stored, rep, nil
		case <-t.C:
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// write writes a kept answer; it is never cached, so Back does not show a
// stale copy and Refresh asks again with a plain GET.
func (k *resultKeeper) write(w http.ResponseWriter, res session.Result, body io.Reader) {
	h := w.Header()
	for name, v := range res.Header {
		h[name] = append(h[name], v...)
	}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(res.Status)
	if _, err := io.Copy(w, body); err != nil {
		k.log.Debug("writing a kept answer stopped", slog.String("error", err.Error()))
	}
}
