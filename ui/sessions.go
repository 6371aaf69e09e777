package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"sync"
	"time"
)

// Session is a logged-in browser: its cookie's random ID (never the token), the CSRF
// token its mutating requests must carry, and the bearer token it stands for (empty for
// `constellation ui`'s sessions, which reach the node's socket).
type Session struct {
	ID      string
	CSRF    string
	Bearer  string
	Created time.Time
	Expires time.Time
}

// Defaults of a session store.
const (
	DefaultSessionTTL = 12 * time.Hour
	DefaultMaxSession = 4096
	// LoginCodeTTL is how long a one-time login code of `constellation ui` is valid.
	LoginCodeTTL = 60 * time.Second
)

// Sessions is the server-side store of dashboard sessions and one-time login codes. Its
// clock and randomness are injected; it holds nothing but memory (a node restart logs
// every browser out).
type Sessions struct {
	now  func() time.Time
	rand io.Reader
	ttl  time.Duration
	max  int

	mu    sync.Mutex
	byID  map[string]*Session
	codes map[string]code
}

type code struct {
	bearer  string
	expires time.Time
}

// SessionsConfig configures a store; zero fields take the defaults (time.Now,
// crypto/rand, DefaultSessionTTL, DefaultMaxSession).
type SessionsConfig struct {
	Now  func() time.Time
	Rand io.Reader
	TTL  time.Duration
	Max  int
}

// NewSessions returns an empty store.
func NewSessions(cfg SessionsConfig) *Sessions {
	s := &Sessions{now: cfg.Now, rand: cfg.Rand, ttl: cfg.TTL, max: cfg.Max,
		byID: map[string]*Session{}, codes: map[string]code{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.max <= 0 {
		s.max = DefaultMaxSession
	}
	return s
}

func (s *Sessions) random() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// New opens a session for bearer. Expired sessions are dropped; when the store is full the
// session closest to its end goes.
func (s *Sessions) New(bearer string) (Session, error) {
	id, err := s.random()
	if err != nil {
		return Session{}, err
	}
	csrf, err := s.random()
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	ss := &Session{ID: id, CSRF: csrf, Bearer: bearer, Created: now, Expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.byID) >= s.max {
		var oldest *Session
		for _, o := range s.byID {
			if oldest == nil || o.Expires.Before(oldest.Expires) {
				oldest = o
			}
		}
		delete(s.byID, oldest.ID)
	}
	s.byID[id] = ss
	return *ss, nil
}

func (s *Sessions) expireLocked(now time.Time) {
	for id, o := range s.byID {
		if !now.Before(o.Expires) {
			delete(s.byID, id)
		}
	}
	for c, e := range s.codes {
		if !now.Before(e.expires) {
			delete(s.codes, c)
		}
	}
}

// Get returns the live session with the ID.
func (s *Sessions) Get(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.byID[id]
	if o == nil {
		return Session{}, false
	}
	if !s.now().Before(o.Expires) {
		delete(s.byID, id)
		return Session{}, false
	}
	return *o, true
}

// Delete ends the session (logout).
func (s *Sessions) Delete(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// DeleteBearer ends every session standing for bearer (a token that no longer
// authenticates).
func (s *Sessions) DeleteBearer(bearer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.byID {
		if o.Bearer == bearer {
			delete(s.byID, id)
		}
	}
}

// Len is the number of sessions held.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// NewCode makes a one-time login code for bearer, valid LoginCodeTTL.
func (s *Sessions) NewCode(bearer string) (string, error) {
	c, err := s.random()
	if err != nil {
		return "", err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.codes) >= s.max {
		return "", errTooManyCodes
	}
	s.codes[c] = code{bearer: bearer, expires: now.Add(LoginCodeTTL)}
	return c, nil
}

// Exchange spends a one-time code for a new session; a used, expired or unknown code
// fails (ok false).
func (s *Sessions) Exchange(c string) (Session, bool, error) {
	s.mu.Lock()
	e, found := s.codes[c]
	delete(s.codes, c)
	s.mu.Unlock()
	if !found || !s.now().Before(e.expires) {
		return Session{}, false, nil
	}
	ss, err := s.New(e.bearer)
	return ss, err == nil, err
}

// CSRFOK reports whether header is the session's CSRF token (constant time).
func (ss Session) CSRFOK(header string) bool {
	return header != "" && subtle.ConstantTimeCompare([]byte(header), []byte(ss.CSRF)) == 1
}
