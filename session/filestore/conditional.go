package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/postern/postern/session"
)

// SetNX stores value under key for ttl unless an unexpired record is there,
// in one bbolt transaction.
func (s *Store) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if err := checkOp(ctx, key); err != nil {
		return nil, false, err
	}
	if ttl <= 0 {
		return nil, false, fmt.Errorf("setnx: ttl %s: must be positive", ttl)
	}
	now := s.now()
	var current []byte
	stored := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v, err := decodeRecord(b.Get([]byte(key)), now)
		switch {
		case err == nil:
			current = append([]byte{}, v...)
			return nil
		case !errors.Is(err, session.ErrNotFound) && !errors.Is(err, errBadEntry):
			return err
		}
		rec := make([]byte, 9, 9+len(value))
		rec[0] = formatVersion
		binary.BigEndian.PutUint64(rec[1:9], uint64(now.Add(ttl).UnixNano()))
		rec = append(rec, value...)
		current, stored = append([]byte{}, value...), true
		return b.Put([]byte(key), rec)
	})
	if err != nil {
		return nil, false, s.wrap("setnx", err)
	}
	return current, stored, nil
}

// DeleteIf removes the record under key if it holds value, in one bbolt
// transaction.
func (s *Store) DeleteIf(ctx context.Context, key string, value []byte) (bool, error) {
	if err := checkOp(ctx, key); err != nil {
		return false, err
	}
	now := s.now()
	removed := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v, err := decodeRecord(b.Get([]byte(key)), now)
		if err != nil || !bytes.Equal(v, value) {
			return nil // missing, expired or someone else's: nothing to do
		}
		removed = true
		return b.Delete([]byte(key))
	})
	if err != nil {
		return false, s.wrap("delete if", err)
	}
	return removed, nil
}
