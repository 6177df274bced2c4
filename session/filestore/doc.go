// Package filestore is the embedded session.Backend: one bbolt database file
// on local disk, for a gateway running as a single node (postern demo, small
// installs). Entries survive a restart; a background sweeper removes expired
// ones.
//
// Stash entries (session.Entries) keep only small records in bbolt; each
// body is its own file in the folder PATH.bodies beside the database file
// (temp file, fsync, rename, folder fsync), removed when the entry settles
// or expires, and files no entry names are removed at Open. Blobs (the API
// before the replay state machine) keep their bodies as 64 KiB chunks in
// bbolt. Bodies are written and read in pieces, never whole in memory. TakeBlob is atomic within the
// process that holds the file (bbolt allows one writer process per file);
// for several replicas use the Redis backend instead.
//
// It stores opaque bytes and does no encryption of its own: package session
// seals everything before it reaches a Backend.
package filestore
