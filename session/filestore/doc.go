// Package filestore is the embedded session.Backend: one bbolt database file
// on local disk, for a gateway running as a single node (postern demo, small
// installs). Entries survive a restart; a background sweeper removes expired
// ones.
//
// Blob bodies are kept as 64 KiB chunks and written and read chunk by chunk,
// so a large body is never whole in memory. TakeBlob is atomic within the
// process that holds the file (bbolt allows one writer process per file);
// for several replicas use the Redis backend instead.
//
// It stores opaque bytes and does no encryption of its own: package session
// seals everything before it reaches a Backend.
package filestore
