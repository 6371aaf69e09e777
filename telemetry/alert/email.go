package alert

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/rads-lang/constellation/api"
)

// smtpTimeout bounds one SMTP conversation.
const smtpTimeout = 30 * time.Second

func headerSafe(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

// emailBody renders the RFC 5322 message.
func emailBody(rc ChannelRecord, m message, now time.Time) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", headerSafe(rc.From))
	fmt.Fprintf(&b, "To: %s\r\n", headerSafe(strings.Join(rc.To, ", ")))
	fmt.Fprintf(&b, "Subject: %s\r\n", headerSafe(m.title()))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@constellation>\r\n", hex.EncodeToString(id[:]))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	a := m.Alert
	fmt.Fprintf(&b, "%s\r\n\r\n", m.summary())
	fmt.Fprintf(&b, "Rule:   %s\r\nStatus: %s\r\nValue:  %g\r\n", m.Rule, m.Status, a.Value)
	if !a.ActiveAt.IsZero() {
		fmt.Fprintf(&b, "Since:  %s\r\n", a.ActiveAt.UTC().Format(time.RFC3339))
	}
	if m.Status == api.AlertResolved {
		fmt.Fprintf(&b, "Resolved: %s\r\n", a.ResolvedAt.UTC().Format(time.RFC3339))
	}
	b.WriteString("Labels:\r\n")
	for _, p := range sortedPairs(a.Labels) {
		fmt.Fprintf(&b, "  %s\r\n", p)
	}
	for _, p := range sortedPairs(a.Annotations) {
		if !strings.HasPrefix(p, "message=") {
			fmt.Fprintf(&b, "  %s\r\n", strings.ReplaceAll(p, "\n", "\r\n  "))
		}
	}
	fmt.Fprintf(&b, "\r\n-- constellation alerting on node %s\r\n", m.Node)
	return []byte(b.String())
}

// sendEmail delivers m over SMTP: STARTTLS (required by default), AUTH PLAIN when a
// username is set (net/smtp refuses it on an unencrypted connection except to localhost).
func sendEmail(ctx context.Context, rc ChannelRecord, m message) error {
	host, _, err := net.SplitHostPort(rc.SMTPHost)
	if err != nil {
		return permanentError{fmt.Errorf("smtp_host %q: %w", rc.SMTPHost, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", rc.SMTPHost)
	if err != nil {
		return fmt.Errorf("smtp server %s does not answer: %w", rc.SMTPHost, err)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("smtp server %s: greeting: %w", rc.SMTPHost, err)
	}
	defer c.Close()
	if err := c.Hello("constellation"); err != nil {
		return fmt.Errorf("smtp %s: EHLO: %w", rc.SMTPHost, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && rc.StartTLS != "none" {
		if err := c.StartTLS(&tls.Config{ServerName: host, InsecureSkipVerify: rc.InsecureSkipVerify, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", rc.SMTPHost, err)
		}
	} else if rc.StartTLS == "required" {
		return permanentError{fmt.Errorf("smtp %s does not offer STARTTLS and the channel requires it (set starttls to opportunistic or none to send in clear)", rc.SMTPHost)}
	}
	if rc.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanentError{fmt.Errorf("smtp %s offers no AUTH but the channel has a username", rc.SMTPHost)}
		}
		if err := c.Auth(smtp.PlainAuth("", rc.Username, rc.Password, host)); err != nil {
			return permanentError{fmt.Errorf("smtp %s: AUTH: %w", rc.SMTPHost, err)}
		}
	}
	if err := c.Mail(rc.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", rc.SMTPHost, err)
	}
	for _, to := range rc.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", rc.SMTPHost, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", rc.SMTPHost, err)
	}
	if _, err := w.Write(emailBody(rc, m, time.Now())); err != nil {
		return fmt.Errorf("smtp %s: writing the message: %w", rc.SMTPHost, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of DATA: %w", rc.SMTPHost, err)
	}
	_ = c.Quit()
	return nil
}
