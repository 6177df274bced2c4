// Package redisstore is a TEMP stand-in so cmd/postern compiles before the
// Redis backend lands. Drop this file (and its commit) at merge.
package redisstore

import (
	"context"

	"github.com/postern/postern/session"
)

// Store is a stand-in.
type Store struct{ session.Backend }

// Open is a stand-in.
func Open(ctx context.Context, url string) (*Store, error) { panic("unimplemented") }
