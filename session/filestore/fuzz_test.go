package filestore

import (
	"reflect"
	"testing"
)

// A stash entry is decoded from bbolt on every transition; a damaged or
// foreign value never panics or reads past its end, and an accepted one
// survives a round trip.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(entryRecord{expiry: 1, meta: []byte("m"), state: []byte(`{"v":1,"s":1}`), body: "b.body"}.encode())
	f.Add(entryRecord{}.encode())
	f.Add([]byte{formatVersion, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeEntry(v)
		if err != nil {
			return
		}
		again, err := decodeEntry(r.encode())
		if err != nil {
			t.Fatalf("re-decoding an accepted entry: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the entry: %+v -> %+v", r, again)
		}
	})
}
