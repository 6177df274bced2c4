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

const (
	// resultTTL is how long a replay's answer waits to be shown.
	resultTTL = 5 * time.Minute
	// resultWait bounds how long the page at the original URL waits for an
	// answer that another completion (a double click) is still fetching.
	resultWait = 30 * time.Second
)

// resultStore is what the result keeper needs of the store.
type resultStore interface {
	ReplayStateOf(ctx context.Context, id string) (session.ReplayMark, error)
	TakeResult(ctx context.Context, id string) (session.Result, io.ReadCloser, error)
	DeleteResult(ctx context.Context, id string) error
	Owns(ctx context.Context, browser, owner string) (bool, error)
}

// resultKeeper shows a replay's kept answer once, at the URL the person
// submitted to, to the browser that submitted it.
type resultKeeper struct {
	store   resultStore
	cookies *session.Cookies
	metrics *metrics
	log     *slog.Logger
}

// pendingResult takes from the cookie the kept answer waiting at this
// request's URL, if any.
func pendingResult(ck *session.Cookie, r *http.Request) (session.ResultRef, bool) {
	if r.Method != http.MethodGet || len(ck.Results) == 0 {
		return session.ResultRef{}, false
	}
	return ck.TakeResult(r.URL.RequestURI())
}

// show shows a kept answer once, at the URL it belongs to.
func (k *resultKeeper) show(w http.ResponseWriter, r *http.Request, ck *session.Cookie, ref session.ResultRef) error {
	ctx := r.Context()
	res, body, err := k.wait(ctx, ref.ID)
	if err == nil {
		defer func() {
			body.Close()
			_ = k.store.DeleteResult(context.WithoutCancel(ctx), ref.ID)
		}()
		if owned, oerr := k.store.Owns(ctx, ck.BrowserID, res.Owner); oerr != nil || !owned {
			err = session.ErrNotFound
		}
	}
	if serr := saveCookie(k.cookies, w, r, ck); serr != nil {
		return serr
	}
	switch {
	case err == nil:
		k.metrics.results.WithLabelValues("shown").Inc()
		k.write(w, res, body)
		return nil
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrTaken), errors.Is(err, session.ErrCorrupt):
		k.metrics.results.WithLabelValues("gone").Inc()
		he := &httpError{Status: http.StatusGone, Code: "result_gone", Title: "Your submission was sent",
			BackURL: r.URL.RequestURI(),
			Message: "Your submission reached the application once. Its answer is no longer available here; it will not be sent again."}
		if state, serr := k.store.ReplayStateOf(ctx, ref.ID); serr == nil && state == session.NotReplayed {
			// Taken for sending, but no answer was ever recorded: the
			// sending was interrupted (a gateway restart), or is still
			// under way. Say only what is known.
			he.Code, he.Title = "result_unknown", "Your submission is not confirmed"
			he.Message = "Your submission was taken for sending, but no answer from the application was recorded: " +
				"the sending may have been interrupted. It will not be sent again; check in the application whether it arrived."
		}
		return he
	case ctx.Err() != nil:
		// The browser went away.
		return nil
	}
	return storeError(err)
}

// wait takes a kept answer once the replay that keeps it has settled. If
// another completion (a double click) is still replaying, it waits for it,
// within resultWait.
func (k *resultKeeper) wait(ctx context.Context, id string) (session.Result, io.ReadCloser, error) {
	deadline := time.NewTimer(resultWait)
	defer deadline.Stop()
	delay := 20 * time.Millisecond
	for {
		state, err := k.store.ReplayStateOf(ctx, id)
		if err != nil {
			return session.Result{}, nil, err
		}
		if state == session.Settled {
			return k.store.TakeResult(ctx, id)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return session.Result{}, nil, ctx.Err()
		case <-deadline.C:
			t.Stop()
			return session.Result{}, nil, session.ErrNotFound
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
