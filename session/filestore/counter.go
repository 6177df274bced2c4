package filestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/postern/postern/session"
)

var _ session.Counters = (*Store)(nil)

// counterPrefix puts counters in the records bucket under keys no record
// can have (record keys are printable ASCII), so they expire and are swept
// like records. A counter's value is its slots: pairs of big-endian int64
// slot number and value.
const counterPrefix = "\x01counter:"

// AddCounter implements session.Counters in one write transaction.
func (s *Store) AddCounter(ctx context.Context, key string, slot, oldest, delta, limit int64, ttl time.Duration) (int64, bool, error) {
	if err := checkOp(ctx, key); err != nil {
		return 0, false, err
	}
	if ttl <= 0 {
		return 0, false, fmt.Errorf("add counter: ttl %s: must be positive", ttl)
	}
	now := s.now()
	k := []byte(counterPrefix + key)
	var sum int64
	var added bool
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		var slots [][2]int64
		expiry := now.Add(ttl).UnixNano()
		if v := b.Get(k); len(v) >= 9 && v[0] == formatVersion && !expired(v[1:9], now) {
			expiry = max(expiry, int64(binary.BigEndian.Uint64(v[1:9])))
			for p := v[9:]; len(p) >= 16; p = p[16:] {
				sl, n := int64(binary.BigEndian.Uint64(p)), int64(binary.BigEndian.Uint64(p[8:]))
				if sl >= oldest {
					slots = append(slots, [2]int64{sl, n})
					sum += n
				}
			}
		}
		if delta > 0 && limit >= 0 && sum+delta > limit {
			return nil
		}
		added = true
		if delta == 0 || slot < oldest {
			return nil
		}
		sum += delta
		found := false
		for i := range slots {
			if slots[i][0] == slot {
				slots[i][1] += delta
				found = true
			}
		}
		if !found {
			slots = append(slots, [2]int64{slot, delta})
		}
		rec := make([]byte, 9, 9+16*len(slots))
		rec[0] = formatVersion
		binary.BigEndian.PutUint64(rec[1:9], uint64(expiry))
		for _, sl := range slots {
			rec = binary.BigEndian.AppendUint64(rec, uint64(sl[0]))
			rec = binary.BigEndian.AppendUint64(rec, uint64(sl[1]))
		}
		return b.Put(k, rec)
	})
	if err != nil {
		return 0, false, s.wrap("add counter", err)
	}
	return sum, added, nil
}

// DeleteCounter implements session.Counters.
func (s *Store) DeleteCounter(ctx context.Context, key string) error {
	if err := checkOp(ctx, key); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRecords).Delete([]byte(counterPrefix + key))
	})
	return s.wrap("delete counter", err)
}
