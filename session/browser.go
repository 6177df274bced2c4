package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Browser ids change at every login (so a cookie planted before the login
// is worth nothing after it). Two records in the store tie the ids of one
// browser together:
//
//   - retired:<old> names the id that replaced old and the person whose
//     login did it. It is written once (SetNX): an id is retired by one login
//     only, and from then on it owns nothing by itself.
//   - heir:<new> lists the ids new took over, so what was bound to them
//     (the submissions waiting for the login, in every tab) now belongs to
//     new, and only to new.
const (
	nsRetired = "retired:"
	nsHeir    = "heir:"
	// maxInherited bounds how many earlier ids one browser id carries.
	maxInherited = 8
)

type retiredBrowser struct {
	Successor string `json:"s"`
	Person    string `json:"p"`
}

// RetireBrowser replaces browser id old by successor at a login of person
// (a stable name of who logged in, such as "oidc:"+subject), for ttl (at
// least as long as anything bound to old may still be used). It returns the
// id the browser carries on with:
//
//   - successor, which now owns everything old owned;
//   - the successor recorded by an earlier login of the same person with
//     the same old id (a double click, or two tabs logging in at once): the
//     browser adopts it;
//   - "" when another person's login retired old: this cookie is a copy
//     (planted, or stolen) and carries nothing over; the caller gives it a
//     fresh id.
func (st *Store) RetireBrowser(ctx context.Context, old, successor, person string, ttl time.Duration) (string, error) {
	if successor == "" || person == "" {
		return "", errors.New("retire browser: empty successor or person")
	}
	key, err := entryKey(nsRetired, old)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	inherited, err := st.inherited(ctx, old)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	sealed, err := st.seal(key, retiredBrowser{Successor: successor, Person: person})
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	cur, stored, err := st.b.SetNX(ctx, key, sealed, ttl)
	if err != nil {
		return "", fmt.Errorf("retire browser: %w", err)
	}
	if !stored {
		var rec retiredBrowser
		if err := st.open(key, cur, &rec); err != nil {
			return "", fmt.Errorf("retire browser: %w", err)
		}
		if rec.Person != person {
			return "", nil
		}
		return rec.Successor, nil
	}
	heirs := append([]string{old}, inherited...)
	if len(heirs) > maxInherited {
		heirs = heirs[:maxInherited]
	}
	if err := st.setRecord(ctx, nsHeir, successor, heirs, ttl); err != nil {
		// old is retired, but its submissions could not be handed over:
		// they are lost to everyone (never given to a copy of the cookie).
		return "", fmt.Errorf("retire browser: %w", err)
	}
	return successor, nil
}

// Owns reports whether the browser with id browser owns what was bound to
// browser id owner: owner is browser itself and was not retired by a login,
// or one of the ids browser took over at a login.
func (st *Store) Owns(ctx context.Context, browser, owner string) (bool, error) {
	if owner == "" || browser == "" {
		return false, nil
	}
	if owner == browser {
		key, err := entryKey(nsRetired, browser)
		if err != nil {
			return false, nil
		}
		switch _, err := st.b.Get(ctx, key); {
		case errors.Is(err, ErrNotFound):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("browser owner: %w", err)
		}
		return false, nil // retired: a copy of a cookie from before a login
	}
	inherited, err := st.inherited(ctx, browser)
	if err != nil {
		return false, fmt.Errorf("browser owner: %w", err)
	}
	return slices.Contains(inherited, owner), nil
}

// Owners returns the browser ids whose stashes and answers the browser
// with id browser owns (see Owns): browser itself unless a login retired
// it, then the ids it took over at logins, newest first. The replay state
// machine checks an owner id; a caller tries these in turn.
func (st *Store) Owners(ctx context.Context, browser string) ([]string, error) {
	if browser == "" {
		return nil, nil
	}
	var out []string
	own, err := st.Owns(ctx, browser, browser)
	if err != nil {
		return nil, err
	}
	if own {
		out = append(out, browser)
	}
	inherited, err := st.inherited(ctx, browser)
	if err != nil {
		return nil, fmt.Errorf("browser owners: %w", err)
	}
	return append(out, inherited...), nil
}

// inherited returns the ids browser took over at logins, newest first.
func (st *Store) inherited(ctx context.Context, browser string) ([]string, error) {
	key, err := entryKey(nsHeir, browser)
	if err != nil {
		return nil, nil
	}
	sealed, err := st.b.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var ids []string
	if err := st.open(key, sealed, &ids); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, nil
		}
		return nil, err
	}
	return ids, nil
}
