package distributed_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// TestTLS runs a runtime whose broker connection is amqps:// and whose PostgreSQL connection
// is sslmode=verify-full, both verified against a private CA given as a file (SECURITY.md).
// The shared servers speak plain TCP, so the test puts TLS-terminating proxies in front of
// them: one that speaks TLS from the first byte (amqps), one that answers PostgreSQL's
// SSLRequest with 'S' and then does the TLS handshake — and refuses any client that does not
// ask for TLS, so a connection that got through was encrypted. A CA that did not sign the
// servers' certificate is refused with the x509 error, by both clients.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca.pem", "xcomponent test CA")
	other := newCA(t, dir, "other-ca.pem", "another CA")
	serverCfg := &tls.Config{Certificates: []tls.Certificate{ca.serverCert(t, "127.0.0.1")}, MinVersion: tls.VersionTLS12}

	vh, plainURL := rmqtest.NewVhost(t)
	amqps := startProxy(t, serverCfg, rmqtest.BrokerAddr, false)
	pgAddr := pgHostPort(t, pgtest.AdminDSN())
	pgs := startProxy(t, serverCfg, pgAddr, true)
	dsn := pgtest.NewDatabase(t)

	brokerURL := func(caFile string) string {
		return "amqps://guest:guest@" + amqps.addr + "/" + vh + "?cacertfile=" + url.QueryEscape(caFile)
	}
	storeURL := func(caFile, mode string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = pgs.addr
		q := u.Query()
		q.Set("sslmode", mode)
		q.Set("sslrootcert", caFile)
		u.RawQuery = q.Encode()
		return u.String()
	}

	t.Run("runtime over amqps and verify-full", func(t *testing.T) {
		oc := &outcomes{n: map[string]int{}}
		distributedtest.Start(t, distributed.Config{ComponentFile: "testdata/counter.yaml", BrokerURL: brokerURL(ca.file),
			StoreSpec: storeURL(ca.file, "verify-full"), RuntimeName: "tls-1", HeartbeatInterval: time.Second,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t), OnCommand: oc.add})
		// A client on the plain port publishes; the runtime consumes and commits through TLS.
		client, err := rabbitmq.New(rabbitmq.Options{URL: plainURL, Logger: logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Counters",
			Context: map[string]any{"via": "tls"}, Timestamp: wire.Now()}, uuid.NewString())
		eventually(t, "create applied", func() bool { return oc.count(wire.ChannelCreateInstance, distributed.OutcomeApplied) == 1 })
		db, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close(context.Background())
		if n := queryInt(t, db, "SELECT count(*) FROM fsm_snapshots WHERE context->>'via' = 'tls'"); n != 1 {
			t.Fatalf("instances created through TLS = %d, want 1", n)
		}
		if amqps.handshakes() == 0 || pgs.handshakes() == 0 {
			t.Fatalf("TLS handshakes: broker %d, database %d; want both > 0", amqps.handshakes(), pgs.handshakes())
		}
	})

	t.Run("database: wrong CA refused at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, storeURL(other.file, "verify-full"), postgres.WithLogger(slog.New(slog.DiscardHandler)))
		if err == nil {
			_ = s.Close()
			t.Fatal("a server certificate from another CA was accepted")
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("want an immediate x509 error, got (after the deadline: %v) %v", ctx.Err() != nil, err)
		}
		// verify-ca with the right CA is fine; sslmode=disable is refused by the proxy (the
		// connection above really needed TLS).
		s, err = postgres.Open(ctx, storeURL(ca.file, "verify-ca"))
		if err != nil {
			t.Fatalf("verify-ca: %v", err)
		}
		_ = s.Close()
		plain := storeURL(ca.file, "disable")
		if c, err := pgx.Connect(ctx, plain); err == nil {
			_ = c.Close(ctx)
			t.Fatal("the proxy let a client through without TLS")
		}
	})

	t.Run("broker: wrong CA refused", func(t *testing.T) {
		logs := &lockedBuffer{}
		b, err := rabbitmq.New(rabbitmq.Options{URL: brokerURL(other.file), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		distributedtest.Eventually(t, timeout, "the x509 error in the log", func() bool {
			return strings.Contains(logs.String(), "certificate signed by unknown authority")
		})
		if b.Connected() {
			t.Fatal("connected through a certificate from another CA")
		}
		if strings.Contains(logs.String(), "guest:guest") {
			t.Fatalf("the log shows the broker password: %s", logs.String())
		}
	})
}

// testCA is a certificate authority made for a test; file is its certificate (PEM).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newCA(t *testing.T, dir, name, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// serverCert issues a server certificate for ip.
func (ca *testCA) serverCert(t *testing.T, ip string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsProxy terminates TLS in front of a plain TCP server.
type tlsProxy struct {
	addr string
	mu   sync.Mutex
	n    int // completed handshakes
}

func (p *tlsProxy) handshakes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// startProxy listens on 127.0.0.1 and forwards the decrypted stream of each client to target.
// postgres: the client first sends PostgreSQL's SSLRequest (answered 'S', or 'N' to a
// GSSENCRequest); a client that starts without asking for TLS is disconnected.
func startProxy(t *testing.T, cfg *tls.Config, target string, postgres bool) *tlsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var connsMu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) {
		connsMu.Lock()
		defer connsMu.Unlock()
		if add {
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		_ = ln.Close()
		connsMu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer track(c, false)
				defer c.Close()
				p.serve(c, cfg, target, postgres, track)
			}()
		}
	}()
	return p
}

const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
)

func (p *tlsProxy) serve(c net.Conn, cfg *tls.Config, target string, postgres bool, track func(net.Conn, bool)) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if postgres {
		for {
			var hdr [8]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			length, code := binary.BigEndian.Uint32(hdr[:4]), binary.BigEndian.Uint32(hdr[4:])
			if length != 8 {
				return // a startup message in clear: refused
			}
			if code == pgGSSENCRequest {
				if _, err := c.Write([]byte{'N'}); err != nil {
					return
				}
				continue
			}
			if code != pgSSLRequest {
				return
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return
			}
			break
		}
	}
	tc := tls.Server(c, cfg)
	if err := tc.Handshake(); err != nil {
		return // e.g. the client did not trust the certificate
	}
	_ = c.SetDeadline(time.Time{})
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	track(up, true)
	defer track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, tc); _ = up.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(tc, up); _ = tc.Close(); done <- struct{}{} }()
	<-done
	_ = tc.Close()
	_ = up.Close()
	<-done
}

// pgHostPort is the host:port of a PostgreSQL URL.
func pgHostPort(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("XCOMPONENT_TEST_POSTGRES is not a URL with a host: %q", dsn)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
