package xcomponent

import (
	"encoding/hex"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// idGen makes UUIDv7 strings: a millisecond timestamp, then a 12-bit sequence that keeps ids
// of one process strictly increasing within a millisecond, then 62 random bits. Sorting ids
// sorts by creation. Cheaper than a crypto/rand read per id, which the hot path cannot afford.
type idGen struct {
	last atomic.Int64 // ms<<12 | sequence of the last id
}

func (g *idGen) next() string {
	now := time.Now().UnixMilli() << 12
	var v int64
	for {
		old := g.last.Load()
		v = now
		if v <= old {
			v = old + 1
		}
		if g.last.CompareAndSwap(old, v) {
			break
		}
	}
	ms, seq := uint64(v>>12), uint64(v&0xfff)
	r := rand.Uint64()
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = 0x70 | byte(seq>>8)
	b[7] = byte(seq)
	b[8] = 0x80 | byte(r>>56)&0x3f
	for i := 9; i < 16; i++ {
		b[i] = byte(r >> (8 * (15 - i)))
	}
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
