package filestore

import (
	"context"
	"encoding/binary"
	"time"

	"go.etcd.io/bbolt"
)

// sweepBatch bounds how many entries one write transaction removes, so a
// long sweep does not hold the writer lock for long.
const sweepBatch = 128

// Sweep removes every record, blob and abandoned upload that has expired
// (an upload expires at its ttl, so one cut short by a crash goes too). It
// returns how many entries it removed. The background sweeper calls it;
// tests may call it directly.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	var records, blobs, uploads, entries [][]byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if len(v) < 9 || expired(v[1:9], now) {
				records = append(records, append([]byte{}, k...))
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			if h, _, err := decodeBlob(v); err != nil || now.UnixNano() >= h.expiry {
				blobs = append(blobs, append([]byte{}, k...))
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			if len(v) < 9 || expired(v[1:9], now) {
				entries = append(entries, append([]byte{}, k...))
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketUploads).ForEach(func(k, v []byte) error {
			if len(v) != 8 || expired(v, now) {
				uploads = append(uploads, append([]byte{}, k...))
			}
			return nil
		})
	})
	if err != nil {
		return 0, s.wrap("sweep", err)
	}

	removed := 0
	// Each entry is checked again inside the write transaction: it may have
	// been replaced (Set, PutBlob) since the scan.
	sweepKeys := func(keys [][]byte, remove func(tx *bbolt.Tx, k []byte) (bool, error)) error {
		for len(keys) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			batch := keys[:min(len(keys), sweepBatch)]
			keys = keys[len(batch):]
			n := 0
			err := s.db.Update(func(tx *bbolt.Tx) error {
				n = 0
				for _, k := range batch {
					ok, err := remove(tx, k)
					if err != nil {
						return err
					}
					if ok {
						n++
					}
				}
				return nil
			})
			if err != nil {
				return s.wrap("sweep", err)
			}
			removed += n
		}
		return nil
	}
	err = sweepKeys(records, func(tx *bbolt.Tx, k []byte) (bool, error) {
		b := tx.Bucket(bucketRecords)
		v := b.Get(k)
		if v == nil || (len(v) >= 9 && !expired(v[1:9], now)) {
			return false, nil
		}
		return true, b.Delete(k)
	})
	if err == nil {
		err = sweepKeys(blobs, func(tx *bbolt.Tx, k []byte) (bool, error) {
			v := tx.Bucket(bucketBlobs).Get(k)
			if v == nil {
				return false, nil
			}
			if h, _, err := decodeBlob(v); err == nil && now.UnixNano() < h.expiry {
				return false, nil
			}
			return true, deleteBlobTx(tx, string(k))
		})
	}
	var freed []string
	if err == nil {
		err = sweepKeys(entries, func(tx *bbolt.Tx, k []byte) (bool, error) {
			b := tx.Bucket(bucketEntries)
			v := b.Get(k)
			if v == nil || (len(v) >= 9 && !expired(v[1:9], now)) {
				return false, nil
			}
			if r, err := decodeEntry(v); err == nil {
				freed = append(freed, r.body, r.ansBody)
			}
			return true, b.Delete(k)
		})
		// After the commits: a file is removed only once no entry names it.
		s.removeBodies(freed...)
	}
	if err == nil {
		err = sweepKeys(uploads, func(tx *bbolt.Tx, k []byte) (bool, error) {
			v := tx.Bucket(bucketUploads).Get(k)
			if v == nil || (len(v) == 8 && !expired(v, now)) {
				return false, nil
			}
			return true, dropUploadTx(tx, binary.BigEndian.Uint64(k))
		})
	}
	return removed, err
}

// sweepLoop sweeps on every tick until ctx is done.
func (s *Store) sweepLoop(ctx context.Context, tick <-chan time.Time) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("filestore: sweeping expired entries failed", "err", err)
			}
			if s.hooks.onSweep != nil {
				s.hooks.onSweep(n, err)
			}
		}
	}
}
