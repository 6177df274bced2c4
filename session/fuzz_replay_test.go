package session

import (
	"errors"
	"reflect"
	"testing"
)

// A stash's replay state record is read back from the store on every
// transition; whatever bytes are there, decoding never panics, refuses
// anything it did not write with ErrCorrupt, and what it accepts survives
// a round trip.
func FuzzDecodeReplay(f *testing.F) {
	f.Add(replayRecord{State: StatePending}.encode())
	f.Add(replayRecord{State: StateSent, Token: []byte("t"), Expires: 1, SentAt: 2, Attempts: 1}.encode())
	f.Add([]byte(`{"v":1,"s":9}`))
	f.Add([]byte(`{"v":2,"s":1}`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReplay(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeReplay error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := decodeReplay(r.encode())
		if err != nil {
			t.Fatalf("re-decoding an accepted record: %v", err)
		}
		r.V = replayRecordVersion
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, again)
		}
	})
}
