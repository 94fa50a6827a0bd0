package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// sender sends the event requests of one worker, one at a time.
type sender interface {
	send(id string, body []byte) (status int, msg string, err error)
	close()
}

// stdSender sends through net/http's client (shared transport, keep-alive).
type stdSender struct {
	c   *client
	ctx context.Context
}

func (s stdSender) send(id string, body []byte) (int, string, error) {
	return s.c.send(s.ctx, id, body)
}
func (stdSender) close() {}

// newSender returns the sender of one worker: a rawSender (its own keep-alive connection)
// for an http:// URL unless --client std, else net/http's client.
func (c *client) newSender(ctx context.Context) sender {
	u, err := url.Parse(c.cfg.URL)
	if c.cfg.Client == "std" || err != nil || u.Scheme != "http" {
		return stdSender{c: c, ctx: ctx}
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawSender{ctx: ctx, cfg: c.cfg, addr: addr, host: u.Host, base: u.EscapedPath(),
		paths: map[string]string{}}
}

// rawSender is a minimal HTTP/1.1 client for the event requests: one connection, the request
// written with one write from a reused buffer, the answer's status line and headers parsed
// in place and its body skipped. net/http's client costs the load generator about as much
// CPU per request as the server spends answering it (two goroutines per connection and a
// channel hand-off per request, a Request and its header map, URL parsing): on a 2-core
// machine shared with the server, that was a third of all the CPU of a run, and it is not
// what the run measures. It speaks what any HTTP/1.1 server answers: Content-Length or
// chunked bodies, Connection: close (or an HTTP/1.0 answer) closes the connection, which is
// dialled again for the next request.
type rawSender struct {
	ctx   context.Context
	cfg   *Config
	addr  string // host:port to dial
	host  string // Host header
	base  string // path of the base URL
	paths map[string]string

	conn net.Conn
	br   *bufio.Reader
	buf  []byte
	stop func() bool // unregisters the ctx watcher of conn
}

func (s *rawSender) close() {
	if s.conn != nil {
		s.stop()
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (s *rawSender) dial() error {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(s.ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	s.conn = conn
	if s.br == nil {
		s.br = bufio.NewReaderSize(conn, 4096)
	} else {
		s.br.Reset(conn)
	}
	// Ending ctx interrupts a request in flight, as it does net/http's.
	s.stop = context.AfterFunc(s.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// send posts one event; msg is the body of a non-200 answer (truncated). Any error closes
// the connection.
func (s *rawSender) send(id string, body []byte) (status int, msg string, err error) {
	if err := s.ctx.Err(); err != nil {
		return 0, "", err
	}
	if s.conn == nil {
		if err := s.dial(); err != nil {
			return 0, "", err
		}
	}
	status, msg, keep, err := s.roundTrip(id, body)
	if err != nil || !keep {
		s.close()
	}
	if err != nil && s.ctx.Err() != nil {
		err = s.ctx.Err()
	}
	return status, msg, err
}

func (s *rawSender) roundTrip(id string, body []byte) (status int, msg string, keep bool, err error) {
	path, ok := s.paths[id]
	if !ok {
		path = s.base + endpoints[s.cfg.Endpoint].path(s.cfg.Component, id)
		s.paths[id] = path
	}
	b := append(s.buf[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, s.host...)
	b = append(b, "\r\nUser-Agent: xcload\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if s.cfg.Token != "" {
		b = append(b, "\r\nAuthorization: Bearer "...)
		b = append(b, s.cfg.Token...)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	s.buf = b
	if s.cfg.Timeout > 0 {
		if err := s.conn.SetDeadline(time.Now().Add(s.cfg.Timeout)); err != nil {
			return 0, "", false, err
		}
	}
	if _, err := s.conn.Write(b); err != nil {
		return 0, "", false, err
	}
	return readAnswer(s.br)
}

var errMalformed = errors.New("malformed HTTP answer")

// readAnswer reads one HTTP/1.x answer from br: its status, the start of its body when the
// status is not 200 (up to 512 bytes), and whether the connection can be used again.
func readAnswer(br *bufio.Reader) (status int, msg string, keep bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, "", false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, "", false, fmt.Errorf("%w: status line %q", errMalformed, bytes.TrimSpace(line))
	}
	keep = line[7] == '1' // HTTP/1.0: closed after the answer unless told otherwise
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, "", false, fmt.Errorf("%w: status line %q", errMalformed, bytes.TrimSpace(line))
		}
		status = status*10 + int(c-'0')
	}
	length, chunked := int64(-1), false
	for {
		h, err := readLine(br)
		if err != nil {
			return 0, "", false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			return 0, "", false, fmt.Errorf("%w: header %q", errMalformed, h)
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return 0, "", false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			length = n
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			switch {
			case asciiEqualFold(value, "close"):
				keep = false
			case asciiEqualFold(value, "keep-alive"):
				keep = true
			}
		}
	}
	var w bytes.Buffer // the start of a non-200 body
	keepStart := func(p []byte) {
		if status != 200 && w.Len() < 512 {
			w.Write(p[:min(len(p), 512-w.Len())])
		}
	}
	switch {
	case status == 204 || status == 304 || (status >= 100 && status < 200):
	case chunked:
		for {
			line, err := readLine(br)
			if err != nil {
				return 0, "", false, err
			}
			line = bytes.TrimRight(line, "\r\n")
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil || n < 0 {
				return 0, "", false, fmt.Errorf("%w: chunk size %q", errMalformed, line)
			}
			if n == 0 {
				break
			}
			if err := skip(br, n, keepStart); err != nil {
				return 0, "", false, err
			}
			if _, err := br.Discard(2); err != nil { // the chunk's CRLF
				return 0, "", false, err
			}
		}
		for { // trailers, then the final CRLF
			line, err := readLine(br)
			if err != nil {
				return 0, "", false, err
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
	case length >= 0:
		if err := skip(br, length, keepStart); err != nil {
			return 0, "", false, err
		}
	default: // the body ends with the connection
		keep = false
		for {
			p, err := br.Peek(1)
			if len(p) == 0 || err != nil {
				break
			}
			p, _ = br.Peek(br.Buffered())
			keepStart(p)
			_, _ = br.Discard(len(p))
		}
	}
	return status, string(bytes.TrimSpace(w.Bytes())), keep, nil
}

// readLine reads up to and including '\n'. The answer's lines are read in place from br's
// buffer; one longer than the buffer is put together in a copy.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	long := append([]byte(nil), line...)
	for err == bufio.ErrBufferFull {
		if len(long) > 1<<20 {
			return nil, fmt.Errorf("%w: line longer than 1 MiB", errMalformed)
		}
		line, err = br.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

// skip reads n bytes of body from br, handing them to seen.
func skip(br *bufio.Reader, n int64, seen func([]byte)) error {
	for n > 0 {
		p, err := br.Peek(int(min(n, int64(br.Size()))))
		if len(p) == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		seen(p)
		_, _ = br.Discard(len(p))
		n -= int64(len(p))
	}
	return nil
}

// asciiEqualFold reports whether b equals s (lower case ASCII) ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
