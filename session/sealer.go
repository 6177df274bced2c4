package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/minio/sio"
)

// ErrCorrupt means a sealed value or body did not open: it was tampered with,
// moved to another entry, truncated, or sealed with a secret that is no
// longer configured. Callers test it with errors.Is.
var ErrCorrupt = errors.New("sealed data corrupt or from an unknown key")

// MinSecretLen is the shortest cookie secret NewSealer and NewCookies accept.
const MinSecretLen = 32

const (
	// sealVersion is the first byte of every sealed value and stream, so the
	// format can change without guessing.
	sealVersion = 1
	kidLen      = 4
	headerLen   = 1 + kidLen

	// HKDF info strings: one per purpose, so no two uses share a key.
	infoKeyID  = "postern/v1 key id"
	infoValue  = "postern/v1 seal value"
	infoStream = "postern/v1 seal stream\x00" // followed by the entry name
	infoHash   = "postern/v1 cookie hash"
	infoBlock  = "postern/v1 cookie block"
	infoTag    = "postern/v1 tag"

	// streamFormat is the first plaintext byte inside every sealed stream.
	// DARE encrypts an empty input to nothing, which would make an empty
	// body indistinguishable from a truncated one; the prefix byte means no
	// sealed stream is ever empty, so truncation always fails to open.
	streamFormat = 1
)

// Sealer encrypts and authenticates everything written to a Backend, with keys
// derived (HKDF-SHA256) from the cookie secrets: the first secret seals, every
// secret opens (rotation). Each entry's key is bound to the entry's name, so a
// sealed value moved to another key does not open.
//
// Small values are sealed with AES-256-GCM (random nonce, entry name as
// associated data); streams with DARE 2.0 (github.com/minio/sio, AES-256-GCM)
// under a key derived from the secret and the entry name. Both start with a
// version byte and a 4-byte key id that names the secret that sealed them.
// A Sealer is safe for concurrent use.
type Sealer struct {
	keys []sealKey // newest first
}

type sealKey struct {
	id     [kidLen]byte
	secret []byte
	value  cipher.AEAD
	tag    []byte // HMAC-SHA256 key of Tag
}

// NewSealer returns a Sealer for the given secrets, newest first. Each secret
// must be at least 32 bytes.
func NewSealer(secrets [][]byte) (*Sealer, error) {
	if err := checkSecrets(secrets); err != nil {
		return nil, err
	}
	s := &Sealer{}
	for _, secret := range secrets {
		k := sealKey{secret: bytes.Clone(secret)}
		id, err := hkdf.Key(sha256.New, secret, nil, infoKeyID, kidLen)
		if err != nil {
			return nil, fmt.Errorf("derive key id: %w", err)
		}
		copy(k.id[:], id)
		vk, err := hkdf.Key(sha256.New, secret, nil, infoValue, 32)
		if err != nil {
			return nil, fmt.Errorf("derive value key: %w", err)
		}
		if k.value, err = newGCM(vk); err != nil {
			return nil, err
		}
		if k.tag, err = hkdf.Key(sha256.New, secret, nil, infoTag, 32); err != nil {
			return nil, fmt.Errorf("derive tag key: %w", err)
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

func checkSecrets(secrets [][]byte) error {
	if len(secrets) == 0 {
		return errors.New("no cookie secret: give at least one")
	}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return fmt.Errorf("cookie secret %d is %d bytes: it must be at least %d", i+1, len(s), MinSecretLen)
		}
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// Seal encrypts and authenticates plaintext for the entry called name.
func (s *Sealer) Seal(name string, plaintext []byte) ([]byte, error) {
	k := &s.keys[0]
	ns := k.value.NonceSize()
	out := make([]byte, headerLen+ns, headerLen+ns+len(plaintext)+k.value.Overhead())
	out[0] = sealVersion
	copy(out[1:headerLen], k.id[:])
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return k.value.Seal(out, out[headerLen:], plaintext, valueAD(out[:headerLen], name)), nil
}

// Open returns the plaintext of a value sealed by Seal for the entry called
// name, or an error wrapping ErrCorrupt.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < headerLen || sealed[0] != sealVersion {
		return nil, fmt.Errorf("open %q: bad header: %w", name, ErrCorrupt)
	}
	for i := range s.keys {
		k := &s.keys[i]
		if !bytes.Equal(k.id[:], sealed[1:headerLen]) {
			continue
		}
		ns := k.value.NonceSize()
		if len(sealed) < headerLen+ns+k.value.Overhead() {
			break
		}
		nonce := sealed[headerLen : headerLen+ns]
		plain, err := k.value.Open(nil, nonce, sealed[headerLen+ns:], valueAD(sealed[:headerLen], name))
		if err == nil {
			return plain, nil
		}
		// Key ids are short and may collide: try the next matching key.
	}
	return nil, fmt.Errorf("open %q: %w", name, ErrCorrupt)
}

// Tag returns a keyed hash (HMAC-SHA256 under a key derived from the newest
// secret) of data for the entry called name: it lets a plaintext record name
// a secret value (a browser id, a lease token) without revealing it, and
// without letting anyone who lacks the secrets forge it.
func (s *Sealer) Tag(name, data string) []byte {
	return s.keys[0].mac(name, data)
}

// CheckTag reports, in constant time per key, whether tag is Tag(name, data)
// under any configured secret (so a tag made before a rotation still checks).
func (s *Sealer) CheckTag(name, data string, tag []byte) bool {
	ok := false
	for i := range s.keys {
		if hmac.Equal(s.keys[i].mac(name, data), tag) {
			ok = true
		}
	}
	return ok
}

func (k *sealKey) mac(name, data string) []byte {
	m := hmac.New(sha256.New, k.tag)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return m.Sum(nil)
}

// valueAD binds a sealed value to its header and the entry it is stored under.
func valueAD(header []byte, name string) []byte {
	ad := make([]byte, 0, len(header)+len(name))
	ad = append(ad, header...)
	return append(ad, name...)
}

func (k *sealKey) streamConfig(name string) (sio.Config, error) {
	key, err := hkdf.Key(sha256.New, k.secret, nil, infoStream+name, 32)
	if err != nil {
		return sio.Config{}, fmt.Errorf("derive stream key: %w", err)
	}
	return sio.Config{
		MinVersion:   sio.Version20,
		MaxVersion:   sio.Version20,
		CipherSuites: []byte{sio.AES_256_GCM},
		Key:          key,
	}, nil
}

// SealStream returns a reader of the sealed form of everything read from r,
// for the entry called name. Errors from r pass through unchanged.
func (s *Sealer) SealStream(name string, r io.Reader) (io.Reader, error) {
	k := &s.keys[0]
	cfg, err := k.streamConfig(name)
	if err != nil {
		return nil, err
	}
	enc, err := sio.EncryptReader(io.MultiReader(bytes.NewReader([]byte{streamFormat}), r), cfg)
	if err != nil {
		return nil, fmt.Errorf("seal stream: %w", err)
	}
	header := make([]byte, 0, headerLen)
	header = append(header, sealVersion)
	header = append(header, k.id[:]...)
	return io.MultiReader(bytes.NewReader(header), enc), nil
}

// SealedSize returns the length of the sealed stream of n plaintext bytes.
func SealedSize(n int64) int64 {
	size, err := sio.EncryptedSize(uint64(n) + 1)
	if err != nil {
		// Only for sizes beyond 2^48 bytes, far past any stash limit.
		return -1
	}
	return headerLen + int64(size)
}

// OpenStream returns a reader of the plaintext of a stream sealed by
// SealStream for the entry called name. It reads the header lazily, on the
// first Read. Data that does not authenticate, and a stream cut short, fail
// with an error wrapping ErrCorrupt; no unauthenticated byte is returned.
// Errors from r pass through unchanged.
func (s *Sealer) OpenStream(name string, r io.Reader) io.Reader {
	return &openReader{s: s, name: name, src: r}
}

type openReader struct {
	s    *Sealer
	name string
	src  io.Reader
	dec  io.Reader // nil until the header was read
	err  error
}

func (o *openReader) Read(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.dec == nil {
		if o.err = o.start(); o.err != nil {
			return 0, o.err
		}
	}
	n, err := o.dec.Read(p)
	if err != nil && err != io.EOF {
		var sioErr sio.Error
		if errors.As(err, &sioErr) {
			err = fmt.Errorf("open stream %q: %w", o.name, ErrCorrupt)
		}
		o.err = err
	}
	return n, err
}

// start reads the header, picks the key it names, and checks the format byte.
func (o *openReader) start() error {
	var header [headerLen]byte
	if _, err := io.ReadFull(o.src, header[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("open stream %q: short header: %w", o.name, ErrCorrupt)
		}
		return err
	}
	if header[0] != sealVersion {
		return fmt.Errorf("open stream %q: bad header: %w", o.name, ErrCorrupt)
	}
	// Unlike values, a stream can only be tried with one key (it cannot be
	// rewound), so the first secret with a matching id is used. Ids are
	// derived, so a collision between configured secrets is vanishingly rare.
	for i := range o.s.keys {
		k := &o.s.keys[i]
		if !bytes.Equal(k.id[:], header[1:]) {
			continue
		}
		cfg, err := k.streamConfig(o.name)
		if err != nil {
			return err
		}
		dec, err := sio.DecryptReader(o.src, cfg)
		if err != nil {
			return fmt.Errorf("open stream %q: %w", o.name, err)
		}
		o.dec = dec
		var format [1]byte
		if _, err := io.ReadFull(o, format[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("open stream %q: empty: %w", o.name, ErrCorrupt)
			}
			return err
		}
		if format[0] != streamFormat {
			return fmt.Errorf("open stream %q: unknown format: %w", o.name, ErrCorrupt)
		}
		return nil
	}
	return fmt.Errorf("open stream %q: unknown key: %w", o.name, ErrCorrupt)
}
