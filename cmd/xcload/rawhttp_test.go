package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		status     int
		msg        string
		keep       bool
		restBefore string // what must be left unread (the next answer)
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n{\"a\"}NEXT", 200, "", true, "NEXT"},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: v\r\n\r\nNEXT", 200, "", true, "NEXT"},
		{"error body kept", "HTTP/1.1 409 Conflict\r\ncontent-length: 14\r\n\r\n{\"error\":\"x\"}\nNEXT", 409, `{"error":"x"}`, true, "NEXT"},
		{"chunked error body", "HTTP/1.1 500 Internal\r\nTransfer-Encoding: Chunked\r\n\r\n4\r\nboom\r\n0\r\n\r\nNEXT", 500, "boom", true, "NEXT"},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, "", false, ""},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "", false, ""},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nokNEXT", 200, "", true, "NEXT"},
		{"body to EOF", "HTTP/1.1 503 Busy\r\n\r\nslow down", 503, "slow down", false, ""},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\nNEXT", 204, "", true, "NEXT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tc.in), 16) // small: bodies span refills
			status, msg, keep, err := readAnswer(br)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || msg != tc.msg || keep != tc.keep {
				t.Fatalf("got %d %q keep=%v, want %d %q keep=%v", status, msg, keep, tc.status, tc.msg, tc.keep)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tc.restBefore {
				t.Fatalf("left %q, want %q", rest, tc.restBefore)
			}
		})
	}
	for _, bad := range []string{"", "HTTP/1.1 2x0 OK\r\n\r\n", "SSH-2.0\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"} {
		if _, _, _, err := readAnswer(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
