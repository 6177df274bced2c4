package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// recordFormat is the first byte of a session record in the compact
// encoding. Records written before it are JSON, which starts with '{', and
// are still read.
const recordFormat = 2

var errRecordShort = errors.New("record truncated")

// appendRecord encodes rec compactly: the identity a request needs (user,
// email, subject, method, groups, times) first, then the tokens, each
// string with a varint length and each time as Unix nanoseconds (0 for the
// zero time). It is what a request decodes on a cache miss, so it is built
// for that: no reflection, one allocation for all the strings.
func appendRecord(b []byte, rec *Record) []byte {
	b = append(b, recordFormat)
	for _, s := range [...]string{rec.User, rec.Email, rec.Subject, rec.Method} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(rec.Groups)))
	for _, g := range rec.Groups {
		b = appendString(b, g)
	}
	for _, t := range [...]time.Time{rec.LoginAt, rec.Expires, rec.TokenExpiry} {
		b = binary.AppendVarint(b, unixNano(t))
	}
	for _, s := range [...]string{rec.AccessToken, rec.RefreshToken, rec.IDToken} {
		b = appendString(b, s)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// decodeRecord reads a record written by appendRecord, or by the JSON
// encoding that came before it.
func decodeRecord(plain []byte, rec *Record) error {
	if len(plain) > 0 && plain[0] == '{' {
		return json.Unmarshal(plain, rec)
	}
	if len(plain) == 0 || plain[0] != recordFormat {
		return errors.New("unknown record format")
	}
	d := recordDecoder{all: string(plain[1:])} // one copy; every field is a slice of it
	rec.User, rec.Email, rec.Subject, rec.Method = d.str(), d.str(), d.str(), d.str()
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.all)) {
			return errRecordShort
		}
		rec.Groups = make([]string, n)
		for i := range rec.Groups {
			rec.Groups[i] = d.str()
		}
	}
	rec.LoginAt, rec.Expires, rec.TokenExpiry = d.time(), d.time(), d.time()
	rec.AccessToken, rec.RefreshToken, rec.IDToken = d.str(), d.str(), d.str()
	if d.err != nil {
		return d.err
	}
	if len(d.all) != d.off {
		return fmt.Errorf("record: %d bytes left over", len(d.all)-d.off)
	}
	return nil
}

// recordDecoder reads fields off the record's bytes; the first error
// sticks, and later reads return zero values.
type recordDecoder struct {
	all string
	off int
	err error
}

func (d *recordDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := uvarintString(d.all[d.off:])
	if n <= 0 {
		d.err = errRecordShort
		return 0
	}
	d.off += n
	return v
}

func (d *recordDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.all)-d.off) {
		d.err = errRecordShort
		return ""
	}
	s := d.all[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *recordDecoder) time() time.Time {
	u := d.uvarint()
	// Zig-zag, as binary.AppendVarint writes it.
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return fromUnixNano(v)
}

// uvarintString is binary.Uvarint over a string, without converting it.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
