package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The TCP API is served over TLS 1.3 with a self-signed certificate the node generates once
// and keeps in its data dir. Clients do not trust it through a CA: they pin the SHA-256 of
// the certificate (its DER bytes), written by the node to <data-dir>/api.fingerprint and
// shown by `constellation status`. The pin is checked during the TLS handshake, so a request
// (and its bearer token) goes out only to a server holding the pinned certificate's key.

// FingerprintFile is the file in a node's data dir holding its TCP API certificate's
// fingerprint.
const FingerprintFile = "api.fingerprint"

// fingerprintPrefix starts every fingerprint; the rest is 64 lowercase hex digits.
const fingerprintPrefix = "sha256:"

// Fingerprint is the pin of a certificate: "sha256:" and the lowercase hex SHA-256 of its
// DER bytes (what `openssl x509 -noout -fingerprint -sha256` prints, without the colons).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint reads a fingerprint as users paste it: "sha256:" (optional, any case)
// and 64 hex digits, in any case, with or without colons between the bytes (openssl's
// "AB:CD:..."). It returns the canonical form "sha256:<64 lowercase hex>".
func ParseFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	if len(h) >= len(fingerprintPrefix) && strings.EqualFold(h[:len(fingerprintPrefix)], fingerprintPrefix) {
		h = h[len(fingerprintPrefix):]
	}
	if strings.Contains(h, ":") {
		parts := strings.Split(h, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return "", fmt.Errorf("api: fingerprint %q: colons must separate two-digit bytes; want sha256: followed by 64 hex digits (the SHA-256 of the certificate, as in <data-dir>/%s)", s, FingerprintFile)
			}
		}
		h = strings.Join(parts, "")
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("api: fingerprint %q: want sha256: followed by 64 hex digits (the SHA-256 of the certificate, as in <data-dir>/%s or 'constellation status' on the node)", s, FingerprintFile)
	}
	return fingerprintPrefix + hex.EncodeToString(b), nil
}

// ErrUnverified means the server did not prove it is the node: its certificate is not the
// pinned one, no pin is known for it, or it does not speak TLS. Nothing was sent to it.
var ErrUnverified = errors.New("api: server not verified")

// PinError is a TLS API server whose certificate no pin accepts. The request, and its
// token, were not sent.
type PinError struct {
	Addr string // host:port as dialled
	Got  string // the presented certificate's fingerprint
	// Want is the pin the certificate failed ("" when none is known for Addr).
	Want string
	// Source names where Want came from ("--api-fingerprint", a file and line).
	Source string
	// Changed is set when a known_nodes entry for Addr names another certificate.
	Changed bool
	// KnownNodes is the trust-on-first-use file (for the advice).
	KnownNodes string
}

func (e *PinError) Error() string {
	switch {
	case e.Changed:
		return fmt.Sprintf("api: the TLS certificate of %s HAS CHANGED: it presents %s, but %s pins %s. Someone may be impersonating the node, or its certificate was regenerated (its %s was lost). The token was not sent. If the change is expected, check the new fingerprint on the node itself ('constellation status' there) and replace that line of %s",
			e.Addr, e.Got, e.Source, e.Want, "api.crt/api.key", e.KnownNodes)
	case e.Want != "":
		return fmt.Sprintf("api: the TLS API at %s presents certificate %s, not the pinned %s (from %s); the token was not sent. Check the fingerprint on the node ('constellation status' there, or its <data-dir>/%s)",
			e.Addr, e.Got, e.Want, e.Source, FingerprintFile)
	}
	return fmt.Sprintf("api: no fingerprint is known for the TLS API at %s (it presents %s); the token was not sent. Pass --api-fingerprint with the fingerprint the node shows ('constellation status' there, or its <data-dir>/%s), --data-dir of that node, or --trust to record the presented one in %s on first use",
		e.Addr, e.Got, FingerprintFile, e.KnownNodes)
}

// Unwrap classes the error as ErrUnverified.
func (e *PinError) Unwrap() error { return ErrUnverified }

// pinner checks a TLS server's certificate against the pins known for one address.
type pinner struct {
	addr        string // canonical host:port (the known_nodes key)
	explicit    string // --api-fingerprint: when set, the only pin
	dataDirFile string // <data-dir>/api.fingerprint: the local node's certificate
	knownNodes  string // trust-on-first-use file
	trust       bool   // record an unknown address's fingerprint in knownNodes
	onTrust     func(addr, fingerprint, file string)
}

// handshakeTimeout bounds a TLS handshake (a server that accepts and says nothing).
const handshakeTimeout = 10 * time.Second

// dialTLS connects to the node and completes the TLS handshake, with the pin checked, before
// the transport may write a request: every failure here means nothing was sent. A failure
// to connect stays a *net.OpError "dial" (no node there); the others are ErrUnverified.
func (p *pinner) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName(addr),
		// The certificate is self-signed, so no CA chain is checked; VerifyConnection checks
		// the pin instead, on every handshake, before it completes.
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
	})
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, p.handshakeError(ctx, err)
	}
	return tc, nil
}

// handshakeError explains a failed handshake; the caller's own cancellation stays what it is.
func (p *pinner) handshakeError(ctx context.Context, err error) error {
	if errors.Is(err, ErrUnverified) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return fmt.Errorf("%w: %s does not speak TLS (%s): a node's TCP API is served over TLS, so this is not a node of this version; the token was not sent", ErrUnverified, p.addr, rh.Msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s did not complete a TLS handshake in %v; the token was not sent", ErrUnverified, p.addr, handshakeTimeout)
	}
	return fmt.Errorf("%w: the TLS handshake with %s failed (%v; a node's API speaks TLS 1.3); the token was not sent", ErrUnverified, p.addr, err)
}

// serverName is the SNI of addr: its host, unless that is an IP (SNI carries names only).
func serverName(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	if net.ParseIP(host) != nil {
		return ""
	}
	return host
}

// verify is the tls.Config.VerifyConnection of a pinned client: it runs during the handshake,
// before any request byte is written.
func (p *pinner) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: the TLS API at %s presented no certificate", ErrUnverified, p.addr)
	}
	got := Fingerprint(cs.PeerCertificates[0].Raw)
	if p.explicit != "" {
		if got == p.explicit {
			return nil
		}
		return &PinError{Addr: p.addr, Got: got, Want: p.explicit, Source: "--api-fingerprint or $CONSTELLATION_API_FINGERPRINT"}
	}
	// Each pin names a key this client trusts with the token: the local node's (from its data
	// dir) or one recorded for this address. A certificate matching any of them is the node.
	local, localErr := readFingerprintFile(p.dataDirFile)
	if localErr == nil && got == local {
		return nil
	}
	known, err := lookupKnownNode(p.knownNodes, p.addr)
	if err != nil {
		return fmt.Errorf("%w (%s): %w", ErrUnverified, p.addr, err)
	}
	for _, k := range known {
		if got == k.fingerprint {
			return nil
		}
	}
	if len(known) > 0 {
		k := known[0]
		return &PinError{Addr: p.addr, Got: got, Want: k.fingerprint, Changed: true,
			Source: fmt.Sprintf("line %d of %s", k.line, p.knownNodes), KnownNodes: p.knownNodes}
	}
	if p.trust {
		if err := appendKnownNode(p.knownNodes, p.addr, got); err != nil {
			return fmt.Errorf("%w (%s): recording its fingerprint %s: %w", ErrUnverified, p.addr, got, err)
		}
		if p.onTrust != nil {
			p.onTrust(p.addr, got, p.knownNodes)
		}
		return nil
	}
	if localErr == nil {
		return &PinError{Addr: p.addr, Got: got, Want: local, Source: p.dataDirFile}
	}
	return &PinError{Addr: p.addr, Got: got, KnownNodes: p.knownNodes}
}

// readFingerprintFile reads a node's api.fingerprint.
func readFingerprintFile(path string) (string, error) {
	b, err := readLimited(path, 1<<10)
	if err != nil {
		return "", err
	}
	fp, err := ParseFingerprint(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return fp, nil
}

// ---- known nodes (trust on first use) ----

// KnownNodesPath is the trust-on-first-use file: $CONSTELLATION_KNOWN_NODES, else
// known_nodes in the user's config dir ($XDG_CONFIG_HOME/constellation, by default
// ~/.config/constellation). One "HOST:PORT sha256:<hex>" line per trusted node; '#' starts
// a comment.
func KnownNodesPath() string {
	if p := os.Getenv("CONSTELLATION_KNOWN_NODES"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "constellation", "known_nodes")
}

// maxKnownNodesBytes bounds the known_nodes file a client reads.
const maxKnownNodesBytes = 1 << 20

type knownNode struct {
	fingerprint string
	line        int
}

// lookupKnownNode returns the entries for addr (none when the file does not exist). A
// malformed line is an error naming it: the file holds trust decisions, so it is never
// half-read.
func lookupKnownNode(path, addr string) ([]knownNode, error) {
	b, err := readLimited(path, maxKnownNodesBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseKnownNodes(b, path, addr)
}

// parseKnownNodes is lookupKnownNode on the file's content b.
func parseKnownNodes(b []byte, path, addr string) ([]knownNode, error) {
	var out []knownNode
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxKnownNodesBytes)
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s line %d: %q: want 'HOST:PORT sha256:<64 hex digits>'", path, line, sc.Text())
		}
		host, err := canonicalHostPort(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		fp, err := ParseFingerprint(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if host == addr {
			out = append(out, knownNode{fingerprint: fp, line: line})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// appendKnownNode records addr's fingerprint, as ssh records a host key: one line appended
// in a single write (with a newline first when the file lacks a final one), then fsynced.
func appendKnownNode(path, addr, fp string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	line := addr + " " + fp + "\n"
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return nil
}

// canonicalHostPort is the known_nodes key of an address: lowercase host, IPv6 in brackets.
func canonicalHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("address %q: want HOST:PORT (IPv6 as [::1]:7947)", s)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// readLimited reads a small file, refusing one over max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %d bytes", path, max)
	}
	return b, nil
}
