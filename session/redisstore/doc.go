// Package redisstore is the Redis implementation of session.Backend, for
// running several gateway replicas against one shared store. It works with a
// single Redis server, with Redis Sentinel (automatic failover) and with Redis
// Cluster.
//
// It stores opaque bytes: session.Store seals (encrypts and authenticates)
// everything before it arrives here, so nothing in Redis is readable without
// the cookie secrets. It is not a cache and not the request path.
//
// # Connection URLs
//
// Open takes one URL. Credentials in it are never echoed in errors.
//
//	redis://[[USER]:PASS@]HOST[:PORT][/DB][?OPTIONS]
//	rediss://[[USER]:PASS@]HOST[:PORT][/DB][?OPTIONS]
//
// A single server; rediss uses TLS (server name HOST, TLS 1.2 or newer).
// PORT defaults to 6379 and DB to 0.
//
//	redis-sentinel://[[USER]:PASS@]HOST1[:PORT],HOST2[:PORT]/DB?master=NAME[&OPTIONS]
//	rediss-sentinel://...
//
// Redis Sentinel: the HOSTs are sentinels (PORT defaults to 26379), master is
// the name of the monitored master and is required. USER and PASS are the
// credentials of the Redis master and replicas; sentinels that require a
// password of their own get it from the options sentinel_username and
// sentinel_password. rediss-sentinel uses TLS for every connection.
//
//	redis-cluster://[[USER]:PASS@]HOST1[:PORT],HOST2[:PORT][?OPTIONS]
//	rediss-cluster://...
//
// Redis Cluster: the HOSTs are seed nodes (PORT defaults to 6379; one is
// enough, the rest of the cluster is discovered). A cluster has no database
// number, so the URL has no path.
//
// IPv6 hosts are written in brackets: redis://[::1]:6379/0. OPTIONS are the
// query parameters go-redis understands for that kind of client (dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries, ...); an unknown one is
// an error that names it. Use WithTLSConfig for a private CA or client
// certificates.
//
// # Key layout
//
// Every key starts with a prefix ("postern" unless WithKeyPrefix says
// otherwise), and every key has a time to live.
//
//	PREFIX:r:KEY                   a record (Set, Get, GetDelete)
//	PREFIX:e:{KEY}:s               a stash entry: a hash with its sealed
//	                               meta, plaintext replay state, sealed
//	                               answer, and its bodies' generations and
//	                               chunk counts
//	PREFIX:e:{KEY}:b:GEN           the entry's body: a hash of 64 KiB chunks
//	PREFIX:e:{KEY}:a:GEN           the entry's kept answer body, the same
//	PREFIX:b:{KEY}:m               a blob's meta: a hash with its state
//	                               (pending or taken), meta bytes, size,
//	                               chunk count and generation
//	PREFIX:b:{KEY}:c:GEN:N         the blob body's chunk N (64 KiB each)
//
// The braces are a Redis Cluster hash tag: all keys of one blob live in one
// hash slot, so the Lua scripts that commit, take, restore and delete a blob
// are atomic on a cluster too. In KEY, the characters %, { and } are written
// as %25, %7B and %7D so the tag always ends where intended. GEN is random per
// PutBlob, so a blob written again under the same key never mixes its chunks
// with the old ones.
//
// # Entries and durability
//
// Each replay transition (session.Entries.UpdateEntry, PutAnswer, PutEntry's
// commit) is one Lua script that declares every key it touches in KEYS and
// applies only if the entry is as Go read it (else Go decides again). The
// store URL option min_replicas=N makes each such script be followed by
// WAIT N wait_timeout (default 1s) on the same connection; fewer
// acknowledgements return an error wrapping session.ErrUnavailable.
//
// # Blobs
//
// PutBlob streams the body as chunk writes pipelined a few at a time (never
// the whole body in memory) and writes the meta last, in a script that also
// aligns the chunks' expiry with the meta's: an incomplete blob is never
// visible. TakeBlob is one script that turns pending into taken, so of any
// number of callers across any number of processes exactly one wins; its
// reader then fetches one chunk at a time.
package redisstore
