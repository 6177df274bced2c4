// Package filestore is a TEMP stand-in so cmd/postern compiles before the
// file backend lands. Drop this file (and its commit) at merge.
package filestore

import "github.com/postern/postern/session"

// Store is a stand-in.
type Store struct{ session.Backend }

// Open is a stand-in.
func Open(path string) (*Store, error) { panic("unimplemented") }
